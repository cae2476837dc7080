"""Downloading the weight files that are missing, by one of three transports: the Hugging Face Hub
(through huggingface_hub, at one pinned commit per repository), a mirror folder (plain HTTP with
Range resume), or one tar archive of the weights directory (with pget when it is on PATH).

Downloads land in .partial/ under the weights directory and are moved into place one file at a
time, only once complete and matching the lock, so a failure never leaves half-written weights in
place; .partial/ is removed whatever happens. A file the lock does not know yet is recorded in it:
trust on first download, pinned from then on.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from weights import (
    WEIGHT_TIERS,
    WeightsError,
    WeightSet,
    missing_by_set,
    require_weights,
)
from weights_lock import (
    LOCK_FILE,
    VerifiedFiles,
    file_sha256,
    read_lock,
    save_lock,
    verify_weights,
)

PARTIAL_DIR = ".partial"
HF_TOKEN_ENV = "HF_TOKEN"  # read by huggingface_hub too; sent to the Hub only, never printed
# A mirror of the weights directory: a folder of files ({url}/{folder}/{file}) or one tar archive
# of it (a URL ending in .tar, as a CDN serves it for a Replicate deployment; fetched with pget).
WEIGHTS_URL_ENV = "WEIGHTS_URL"
DOWNLOAD_TRIES = 5  # a dropped connection resumes where it stopped (HTTP Range)
_COMMIT = re.compile(r"[0-9a-f]{40}")


def fetch_missing(
    weights_dir: Path,
    tier: int | None = None,
    *,
    base_url: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    report=print,
    progress: bool = False,
) -> list[str]:
    """Download every required file of `tier` (all if None) that is not on disk, and return them.

    From `base_url` when given (a folder of files, or a .tar archive of the weights directory),
    otherwise from the Hugging Face Hub (`endpoint`, default huggingface.co) at one commit per
    repository: the commit the lock recorded, else the manifest's revision resolved to a commit and
    recorded. A file the lock names must match it or is refused; a new one is added to the lock
    (trust on first download, pinned from then on)."""
    wanted = list(missing_by_set(weights_dir, tier))
    if not wanted:
        return []
    with Fetch(
        weights_dir, endpoint=endpoint, token=token, report=report, progress=progress
    ) as fetch:
        if base_url and _is_archive(base_url):
            fetch.from_archive(base_url, wanted)
        elif base_url:
            fetch.from_mirror(base_url, wanted)
        else:
            fetch.from_hub(wanted)
    return fetch.fetched


def fetch_and_verify(weights_dir: Path, tier: int | None = None, **fetch_options) -> list[str]:
    """`fetch_missing`, then every file of `tier` (all if None) required present and checked against
    the lock: a pre-fetch, so that setup finds everything in place. Returns the files fetched."""
    fetched = fetch_missing(weights_dir, tier, **fetch_options)
    for each in (tier,) if tier else WEIGHT_TIERS:
        require_weights(weights_dir, each)
        verify_weights(weights_dir, each)
    return fetched


class Fetch:
    """One run of `fetch_missing`: where files are staged and installed, the lock they are checked
    against and recorded in, and the files installed so far. On leaving its `with` block, a failure
    included, what was installed is recorded in the lock (so it is never fetched twice) and in the
    verified-files cache (it was hashed on arrival), and the staging folder is removed."""

    def __init__(
        self,
        weights_dir: Path,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        report=print,
        progress: bool = False,
    ):
        self.weights_dir = weights_dir
        self.staging = weights_dir / PARTIAL_DIR
        self.lock = read_lock(weights_dir)
        self.endpoint, self.token = endpoint, token  # the Hub's; never sent anywhere else
        self.report, self.progress = report, progress
        self.fetched: list[str] = []

    def __enter__(self) -> Fetch:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.fetched:  # what was installed before a failure is recorded: never fetched twice
            save_lock(self.weights_dir, self.lock)
            # Hashed on arrival: the setup that follows need not read them again.
            verified = VerifiedFiles(self.weights_dir)
            for name in self.fetched:
                verified.record(name, self.lock[name]["sha256"])
            verified.save()
        shutil.rmtree(self.staging, ignore_errors=True)

    def from_archive(self, url: str, wanted: list[tuple[WeightSet, str]]) -> None:
        """Only the manifest's files are taken from the archive, whatever else it holds."""
        unpacked = self._unpack_archive(url)
        for weight_set, name in wanted:
            relative = f"{weight_set.folder}/{name}"
            if not (unpacked / relative).is_file():
                raise WeightsError(
                    f"{_shown(url)} does not contain {relative}; rebuild the archive from a "
                    "complete weights directory"
                )
            self._install(unpacked / relative, relative)

    def from_mirror(self, base_url: str, wanted: list[tuple[WeightSet, str]]) -> None:
        """Each file from {base_url}/{folder}/{file}, with no credentials."""
        for weight_set, name in wanted:
            relative = f"{weight_set.folder}/{name}"
            partial = self._staged(relative)
            _download_url(f"{base_url.rstrip('/')}/{relative}", partial, self.progress)
            self._install(partial, relative)

    def from_hub(self, wanted: list[tuple[WeightSet, str]]) -> None:
        """Each file from its repository at that repository's one commit, looked up on its first
        file."""
        snapshots: dict[str, tuple[str, dict[str, str]]] = {}
        for weight_set, name in wanted:
            relative = f"{weight_set.folder}/{name}"
            partial = self._staged(relative)
            if weight_set.folder not in snapshots:
                names = [other for owner, other in wanted if owner is weight_set]
                snapshots[weight_set.folder] = self._hub_snapshot(weight_set, names)
            revision, published = snapshots[weight_set.folder]
            self._download_from_hub(weight_set, name, revision, partial)
            self._install(partial, relative, revision, published.get(name))

    def _staged(self, relative: str) -> Path:
        """Where `relative` is downloaded to before it is checked; announced."""
        partial = self.staging / relative
        partial.parent.mkdir(parents=True, exist_ok=True)
        self.report(f"Fetching {relative}")
        return partial

    def _install(
        self,
        source: Path,
        relative: str,
        revision: str | None = None,
        published: str | None = None,
    ) -> None:
        """Move a downloaded file into place if it matches the lock; record it if the lock is
        silent. A file new to the lock must at least match the sha256 the Hub publishes for it, if
        any."""
        size, sha256 = source.stat().st_size, file_sha256(source)
        expected = self.lock.get(relative)
        if expected is not None and (size, sha256) != (expected["size"], expected["sha256"]):
            source.unlink()
            raise WeightsError(
                f"downloaded {relative} does not match {LOCK_FILE}: refused and deleted"
            )
        if expected is None and published is not None and sha256 != published:
            source.unlink()
            raise WeightsError(
                f"downloaded {relative} does not match the sha256 the Hub publishes for it: "
                "refused and deleted"
            )
        target = self.weights_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        if expected is None:
            self.lock[relative] = {
                "size": size,
                "sha256": sha256,
                **({"revision": revision} if revision else {}),
            }
        self.fetched.append(relative)

    def _unpack_archive(self, url: str) -> Path:
        """Unpack a tar archive of the weights directory into staging/archive: with pget when it is
        on PATH (parallel ranges, extracted as it streams), else a resumable download and Python's
        tarfile."""
        unpacked = self.staging / "archive"
        shutil.rmtree(unpacked, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        pget = shutil.which("pget")
        if pget:
            self.report(f"Fetching {_shown(url)} with pget")
            result = subprocess.run(
                [pget, "-x", url, str(unpacked)], capture_output=True, text=True
            )
            if result.returncode:
                detail = (result.stderr or result.stdout).strip().replace(url, _shown(url))[-500:]
                raise WeightsError(
                    f"pget could not fetch {_shown(url)} (exit {result.returncode}): {detail}"
                )
            return unpacked
        self.report(
            f"Fetching {_shown(url)} (pget is not on PATH: one stream with resume, then unpacking)"
        )
        archive = self.staging / "weights.tar"
        _download_url(url, archive, self.progress)
        try:
            with tarfile.open(archive) as tar:
                # "data": no absolute paths, no "..", no links out of the folder, no device files.
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, EOFError) as error:
            raise WeightsError(f"{_shown(url)} is not a readable tar archive ({error})") from error
        archive.unlink()
        return unpacked

    def _hub_snapshot(self, weight_set: WeightSet, names: list[str]) -> tuple[str, dict[str, str]]:
        """The one commit a repository's files come from, and the sha256 the Hub publishes for each
        of its large (LFS) files at that commit. The commit is the lock's when it records one, else
        the manifest's revision when that is a commit, else that branch or tag resolved now. The
        Hub is asked only when a commit must be resolved or a file is new to the lock."""
        prefix = f"{weight_set.folder}/"
        recorded = {
            entry["revision"]
            for name, entry in self.lock.items()
            if name.startswith(prefix) and "revision" in entry
        }
        if len(recorded) > 1:
            raise WeightsError(
                f"{LOCK_FILE} records files of {weight_set.repo} from several commits: "
                f"{sorted(recorded)}"
            )
        manifest_commit = weight_set.revision if _COMMIT.fullmatch(weight_set.revision) else None
        pinned = next(iter(recorded), manifest_commit)
        if pinned and all(prefix + name in self.lock for name in names):
            return pinned, {}
        from huggingface_hub import HfApi

        asked = pinned or weight_set.revision
        with _hub_errors(f"{weight_set.repo}@{asked}", weight_set.repo):
            info = HfApi(endpoint=self.endpoint, token=self.token or None).model_info(
                weight_set.repo, revision=asked, files_metadata=True
            )
        published = {
            sibling.rfilename: sibling.lfs.sha256 for sibling in info.siblings or [] if sibling.lfs
        }
        return pinned or info.sha, published

    def _download_from_hub(
        self, weight_set: WeightSet, name: str, revision: str, partial: Path
    ) -> None:
        from huggingface_hub import hf_hub_download

        with _hub_errors(f"{weight_set.repo}/{name}", weight_set.repo):
            downloaded = hf_hub_download(
                weight_set.repo,
                name,
                revision=revision,
                local_dir=self.staging / ".hub" / weight_set.folder,
                token=self.token or None,
                endpoint=self.endpoint,
            )
        os.replace(downloaded, partial)


def _is_archive(url: str) -> bool:
    return _shown(url).endswith(".tar")


def _shown(url: str) -> str:
    """A URL as it may appear in a message: without its query (signed CDN URLs carry
    credentials)."""
    return url.split("?", 1)[0]


def _access_error(status: int, where: str, repo: str | None) -> WeightsError:
    if status in (401, 403) and repo:
        return WeightsError(
            f"{where}: access refused (HTTP {status}). {repo} is gated: accept its licence on "
            f"https://huggingface.co/{repo} with your account, then set {HF_TOKEN_ENV} to a token "
            "of that account (a missing or rejected token gives this error)."
        )
    if status in (401, 403):
        return WeightsError(
            f"{where}: access refused (HTTP {status}); check that the mirror URL is current "
            "(signed URLs expire)"
        )
    if status == 404:
        return WeightsError(f"{where}: not found (HTTP 404); check the repository and file name")
    return WeightsError(f"{where}: HTTP {status}")


def _download_url(url: str, partial: Path, progress: bool) -> None:
    """A plain HTTP download with resume. No credentials are sent: the Hub token stays with the
    Hub."""
    import requests
    from tqdm import tqdm

    last_error: Exception | None = None
    for _ in range(DOWNLOAD_TRIES):
        start = partial.stat().st_size if partial.is_file() else 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        try:
            with requests.get(url, headers=headers, stream=True, timeout=(10, 60)) as response:
                if response.status_code >= 400:
                    raise _access_error(response.status_code, _shown(url), None)
                resumed = bool(start) and response.status_code == 206
                total = int(response.headers.get("Content-Length", 0)) + (start if resumed else 0)
                with (
                    open(partial, "ab" if resumed else "wb") as handle,
                    tqdm(
                        total=total or None,
                        initial=start if resumed else 0,
                        unit="B",
                        unit_scale=True,
                        desc=partial.name,
                        disable=not progress,
                    ) as bar,
                ):
                    for block in response.iter_content(chunk_size=1 << 20):
                        handle.write(block)
                        bar.update(len(block))
            return
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            last_error = error  # the connection dropped mid-file: resume from what arrived
    raise WeightsError(
        f"{_shown(url)}: the download kept breaking off ({DOWNLOAD_TRIES} tries)"
    ) from last_error


@contextlib.contextmanager
def _hub_errors(where: str, repo: str):
    """Turn huggingface_hub's exceptions into messages that say what to do (never the token)."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        yield
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        raise _access_error(status, where, repo) from error
    except WeightsError:
        raise
    # No network, DNS, offline mode, a timeout: the HTTP client's own types.
    except Exception as error:
        raise WeightsError(
            f"{where}: could not be downloaded ({type(error).__name__}). Pre-fetch with "
            f"python -m scripts.download_weights, or set {WEIGHTS_URL_ENV} to a mirror."
        ) from error
