"""Where every weight set lives on disk and whether it is all there.

One manifest (`WEIGHT_SETS`) names each set the model uses: the Hub repository it comes from, the
files the model needs from it (fp16 safetensors variants where the repo publishes them, nothing
else), and the folder under the weights directory that holds them. The loading code in
`pipelines/` reads from these folders with diffusers' `from_pretrained`, whether they hold the real
weights or the tiny random ones that `scripts/make_tiny_weights.py` writes in the same layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

# The environment variable that points the model at a weights directory (real or tiny).
WEIGHTS_DIR_ENV = "WEIGHTS_DIR"
# Where a container built by `cog build` finds the weights when WEIGHTS_DIR is not set.
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Written by scripts/make_tiny_weights.py, so a run on random weights can never pass for a real one.
TINY_MARKER = "TINY_RANDOM_WEIGHTS.json"
# Size and sha256 of every required file (scripts/lock_weights.py): trusted on first download, then
# every later setup refuses a file that differs.
LOCK_FILE = "weights.lock.json"
# Hashes already checked, keyed on size and mtime, so a warm start does not re-read 15 GB.
VERIFIED_CACHE = ".verified.json"

# The SD 1.5 pipeline folders AnimateDiff reads; tokenizer files as the real repo ships them.
_SD_TOKENIZER = (
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
)


@dataclass(frozen=True)
class WeightSet:
    """One model repository, as much of it as the model needs."""

    folder: str  # under the weights directory
    repo: str  # Hugging Face Hub repository it comes from
    variant: str | None  # diffusers' `variant=` for the .fp16.safetensors files, None if unsplit
    files: tuple[str, ...]  # paths inside the folder that must all be present
    tier: int
    # A branch, tag or commit. A branch is resolved to its commit on the first download and the
    # lock records that commit, so every later fetch takes the same files (and the lock pins their
    # content). A commit is written here only where `main` itself will not do (see "opus_mt_th_en").
    revision: str = "main"

    def path(self, weights_dir: Path) -> Path:
        return weights_dir / self.folder


WEIGHT_SETS: dict[str, WeightSet] = {
    "sd15": WeightSet(
        folder="stable-diffusion-v1-5",
        repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
        variant="fp16",
        files=(
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.fp16.safetensors",
            *_SD_TOKENIZER,
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.fp16.safetensors",
            # The Stable Diffusion safety checker published with SD 1.5 (a CLIP ViT-L/14 image
            # encoder and concept embeddings), run on both tiers' frames: pipelines/safety.py.
            "feature_extractor/preprocessor_config.json",
            "safety_checker/config.json",
            "safety_checker/model.fp16.safetensors",
        ),
        tier=2,
    ),
    "animatediff": WeightSet(
        folder="animatediff-motion-adapter-v1-5-3",
        repo="guoyww/animatediff-motion-adapter-v1-5-3",
        # The adapter repo publishes one safetensors file, in fp32 (about 1.67 GB: 417 M parameters),
        # and no fp16 variant; it is cast to the model's dtype when loaded.
        variant=None,
        files=("config.json", "diffusion_pytorch_model.safetensors"),
        tier=2,
    ),
    "sdxl": WeightSet(
        folder="stable-diffusion-xl-base-1.0",
        repo="stabilityai/stable-diffusion-xl-base-1.0",
        variant="fp16",
        # No vae/: SDXL's own VAE produces NaNs (black frames) in fp16; "sdxl_vae" replaces it.
        files=(
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.fp16.safetensors",
            "text_encoder_2/config.json",
            "text_encoder_2/model.fp16.safetensors",
            *_SD_TOKENIZER,
            *(name.replace("tokenizer/", "tokenizer_2/") for name in _SD_TOKENIZER),
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
        ),
        tier=3,
    ),
    "sdxl_vae": WeightSet(
        folder="sdxl-vae-fp16-fix",
        repo="madebyollin/sdxl-vae-fp16-fix",
        variant=None,
        files=("config.json", "diffusion_pytorch_model.safetensors"),
        tier=3,
    ),
    "svd": WeightSet(
        folder="stable-video-diffusion-img2vid-xt-1-1",
        repo="stabilityai/stable-video-diffusion-img2vid-xt-1-1",
        variant="fp16",
        files=(
            "model_index.json",
            "feature_extractor/preprocessor_config.json",
            "image_encoder/config.json",
            "image_encoder/model.fp16.safetensors",
            "scheduler/scheduler_config.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.fp16.safetensors",
        ),
        tier=3,
    ),
    # Draft mode (pipelines/draft.py). AnimateDiff-Lightning's 4-step motion module, distilled from
    # AnimateDiff v2 (so it has v2's mid-block motion module): one fp16 file of MotionAdapter's
    # state dict at the repo's top level (908 MB), which the model card loads with
    # `MotionAdapter().load_state_dict(load_file(...))`; the repo has no config.json.
    "animatediff_lightning": WeightSet(
        folder="animatediff-lightning",
        repo="ByteDance/AnimateDiff-Lightning",
        variant=None,
        files=("animatediff_lightning_4step_diffusers.safetensors",),
        tier=2,
    ),
    # AnimateDiff's camera-move LoRAs (rank 64, fp32, 77.4 MB each) in diffusers' format; they
    # were trained on the v2 motion module, so they apply to the Lightning one, not to v3.
    **{
        f"motion_lora_{move.replace('-', '_')}": WeightSet(
            folder=f"animatediff-motion-lora-{move}",
            repo=f"guoyww/animatediff-motion-lora-{move}",
            variant=None,
            files=("diffusion_pytorch_model.safetensors",),
            tier=2,
        )
        for move in (
            "zoom-in",
            "zoom-out",
            "pan-left",
            "pan-right",
            "tilt-up",
            "tilt-down",
            "rolling-clockwise",
            "rolling-anticlockwise",
        )
    },
    # Thai to English for prompts (pipelines/prompts.py), used by both tiers and fetched with tier 2.
    # The repository's main branch holds its weights as pytorch_model.bin (a pickle) and
    # tf_model.h5; its safetensors exist on the pull request the Hub's conversion bot opened,
    # refs/pr/3 ("Adding `safetensors` variant of this model", SFconvertbot, 24 Aug 2023), whose
    # commit is pinned here.
    "opus_mt_th_en": WeightSet(
        folder="opus-mt-th-en",
        repo="Helsinki-NLP/opus-mt-th-en",
        variant=None,  # one fp32 model.safetensors, 307 MB
        files=(
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "source.spm",
            "target.spm",
            "tokenizer_config.json",
            "vocab.json",
        ),
        tier=2,
        revision="134b8e85ad253e644c66e30fdfbbf20050a4bc68",
    ),
}


class WeightsError(RuntimeError):
    """Weights are missing or unusable; the message says which file and what to do."""


def weights_dir() -> Path:
    """The weights directory this process uses: $WEIGHTS_DIR, else ./weights next to this file."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else DEFAULT_WEIGHTS_DIR


def _missing(weights_dir: Path, tier: int | None):
    """(weight set, file) for every required file of `tier` (all tiers if None) not on disk."""
    for weight_set in WEIGHT_SETS.values():
        if tier is None or weight_set.tier == tier:
            for name in weight_set.files:
                if not (weight_set.path(weights_dir) / name).is_file():
                    yield weight_set, name


def missing_files(weights_dir: Path, tier: int | None = None) -> list[Path]:
    """Every required file of the sets for `tier` (all tiers if None) that is not on disk."""
    return [weight_set.path(weights_dir) / name for weight_set, name in _missing(weights_dir, tier)]


# Formats that torch loads with pickle, which can run arbitrary code from a tampered file.
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")


def pickle_files(weights_dir: Path, tier: int | None = None) -> list[Path]:
    """Every pickle-format file inside the folders of the sets for `tier` (all tiers if None)."""
    return sorted(
        path
        for weight_set in WEIGHT_SETS.values()
        if (tier is None or weight_set.tier == tier) and weight_set.path(weights_dir).is_dir()
        for path in weight_set.path(weights_dir).rglob("*")
        if path.suffix.lower() in PICKLE_SUFFIXES
    )


def require_weights(weights_dir: Path, tier: int) -> None:
    """Fail with an actionable message unless every file the tier needs is present, and refuse
    pickle-format weights outright: only safetensors are ever loaded."""
    unsafe = pickle_files(weights_dir, tier)
    if unsafe:
        raise WeightsError(
            f"Refusing pickle-format weights (they can run code when loaded): {unsafe[0]}"
            + (f" and {len(unsafe) - 1} more" if len(unsafe) > 1 else "")
            + ". Only .safetensors files are loaded; delete these files."
        )
    missing = missing_files(weights_dir, tier)
    if missing:
        shown = "\n  ".join(str(path) for path in missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise WeightsError(
            f"Tier {tier} weights are incomplete in {weights_dir} ({len(missing)} files missing):\n  "
            f"{shown}{more}\n"
            f"Set {WEIGHTS_DIR_ENV} to a complete weights directory, or write tiny random test "
            f"weights with `python scripts/make_tiny_weights.py DIR` and set {WEIGHTS_DIR_ENV}=DIR."
        )


def tiny_weights_info(weights_dir: Path) -> dict | None:
    """The tiny-weights marker's contents when `weights_dir` holds random test weights, else None."""
    marker = weights_dir / TINY_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def required_files(tier: int | None = None):
    """Every file the sets for `tier` (all tiers if None) need, as paths under the weights directory."""
    for weight_set in WEIGHT_SETS.values():
        if tier is None or weight_set.tier == tier:
            for name in weight_set.files:
                yield f"{weight_set.folder}/{name}"


def read_lock(weights_dir: Path) -> dict:
    """{relative path: {"size", "sha256", and "revision" (the Hub commit) when fetched from the Hub}}."""
    lock_path = weights_dir / LOCK_FILE
    return json.loads(lock_path.read_text()) if lock_path.is_file() else {}


def write_lock(weights_dir: Path) -> Path:
    """Record size and sha256 of every required file present in `weights_dir`, keeping the Hub
    commit already recorded for a file whose content is unchanged."""
    previous = read_lock(weights_dir)
    entries = {}
    for name in required_files(None):
        path = weights_dir / name
        if path.is_file():
            entry = {"size": path.stat().st_size, "sha256": file_sha256(path)}
            if (
                previous.get(name, {}).get("sha256") == entry["sha256"]
                and "revision" in previous[name]
            ):
                entry["revision"] = previous[name]["revision"]
            entries[name] = entry
    return _save_lock(weights_dir, entries)


def _save_lock(weights_dir: Path, entries: dict) -> Path:
    lock = weights_dir / LOCK_FILE
    lock.write_text(json.dumps(entries, indent=1, sort_keys=True))
    return lock


def verify_weights(weights_dir: Path, tier: int) -> int | None:
    """Check the tier's files against the lock: size first, then sha256 (skipped for a file already
    verified at the same size and mtime). Returns how many files were hashed, or None when there
    is no lock. Raises WeightsError naming the first file that differs."""
    lock_path = weights_dir / LOCK_FILE
    if not lock_path.is_file():
        return None
    lock = read_lock(weights_dir)
    cache = _read_verified(weights_dir)
    hashed = 0
    for name in required_files(tier):
        path, expected = weights_dir / name, lock.get(name)
        if expected is None:
            raise WeightsError(
                f"{path} is not in {lock_path}; re-run scripts/lock_weights.py after checking it"
            )
        stat = path.stat()
        if stat.st_size != expected["size"]:
            raise WeightsError(
                f"{path} is {stat.st_size} bytes; {lock_path} says {expected['size']}: corrupt or replaced"
            )
        if _still_verified(cache.get(name), path, expected["sha256"]):
            continue
        hashed += 1
        if file_sha256(path) != expected["sha256"]:
            raise WeightsError(
                f"{path} does not match its sha256 in {lock_path}: corrupt or replaced"
            )
        cache[name] = _stamp(path, expected["sha256"])
    _write_verified(weights_dir, cache)
    return hashed


def _stamp(path: Path, sha256: str) -> list:
    """What a verified file looked like: a later size or mtime change means hash it again."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, sha256]


def _still_verified(cached: list | None, path: Path, sha256: str) -> bool:
    """The file is as it was when hashed. A tar round trip (an image layer built from a verified
    directory) keeps whole seconds of the mtime only, so a whole-second mtime within the cached
    second counts as unchanged too: the image need not be hashed again at every cold start."""
    if cached is None:
        return False
    size, mtime_ns, _ = now = _stamp(path, sha256)
    if now == cached:
        return True
    return (
        [size, sha256] == [cached[0], cached[2]]
        and mtime_ns % 10**9 == 0
        and mtime_ns // 10**9 == cached[1] // 10**9
    )


def _read_verified(weights_dir: Path) -> dict:
    path = weights_dir / VERIFIED_CACHE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_verified(weights_dir: Path, cache: dict) -> None:
    try:
        (weights_dir / VERIFIED_CACHE).write_text(json.dumps(cache))
    except OSError:
        pass  # a read-only weights directory (baked into an image) just verifies again next boot


def write_archive(weights_dir: Path, archive: Path, tier: int | None = None) -> int:
    """Pack the required files of `tier` (all if None) into one uncompressed tar (safetensors do not
    compress; pget unpacks a plain tar as it streams): what a CDN serves as $WEIGHTS_URL. Every file
    is checked against the lock first. Returns the number of files packed."""
    for each in (tier,) if tier else sorted({s.tier for s in WEIGHT_SETS.values()}):
        require_weights(weights_dir, each)
        if verify_weights(weights_dir, each) is None:
            raise WeightsError(
                f"{weights_dir} has no {LOCK_FILE}: write it with scripts/lock_weights.py first"
            )
    names = list(required_files(tier))
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tar.gettarinfo(weights_dir / name, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(weights_dir / name, "rb") as handle:
                tar.addfile(info, handle)
    os.replace(partial, archive)
    return len(names)


# Fetching. Downloads land in .partial/ under the weights directory and are moved into place one
# file at a time, only once complete and matching the lock, so a failure never leaves half-written
# weights in place; .partial/ is removed whatever happens.
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
    lock = read_lock(weights_dir)
    wanted = list(_missing(weights_dir, tier))
    if not wanted:
        return []
    staging = weights_dir / PARTIAL_DIR
    fetched: list[str] = []
    try:
        if base_url and _is_archive(base_url):
            _fetch_from_archive(base_url, wanted, weights_dir, lock, fetched, report, progress)
        else:
            _fetch_each_file(
                wanted, weights_dir, lock, fetched, base_url, endpoint, token, report, progress
            )
    finally:
        if fetched:  # what was installed before a failure is recorded, so it is never fetched twice
            _save_lock(weights_dir, lock)
            # Hashed on arrival: the setup that follows need not read them again.
            verified = _read_verified(weights_dir)
            verified.update(
                {name: _stamp(weights_dir / name, lock[name]["sha256"]) for name in fetched}
            )
            _write_verified(weights_dir, verified)
        shutil.rmtree(staging, ignore_errors=True)
    return fetched


def _fetch_from_archive(
    url: str,
    wanted: list,
    weights_dir: Path,
    lock: dict,
    fetched: list[str],
    report,
    progress: bool,
) -> None:
    unpacked = _fetch_archive(url, weights_dir / PARTIAL_DIR, report, progress)
    for weight_set, name in wanted:
        relative = f"{weight_set.folder}/{name}"
        if not (unpacked / relative).is_file():
            raise WeightsError(
                f"{_shown(url)} does not contain {relative}; rebuild the archive from a complete weights directory"
            )
        _install(unpacked / relative, weights_dir, relative, lock, None)
        fetched.append(relative)


def _fetch_each_file(
    wanted: list,
    weights_dir: Path,
    lock: dict,
    fetched: list[str],
    base_url: str | None,
    endpoint: str | None,
    token: str | None,
    report,
    progress: bool,
) -> None:
    """From a mirror folder, or from the Hub at each repository's one commit."""
    staging = weights_dir / PARTIAL_DIR
    snapshots: dict[str, tuple[str, dict[str, str]]] = {}
    for weight_set, name in wanted:
        relative = f"{weight_set.folder}/{name}"
        partial = staging / relative
        partial.parent.mkdir(parents=True, exist_ok=True)
        report(f"Fetching {relative}")
        if base_url:
            _download_url(f"{base_url.rstrip('/')}/{relative}", partial, progress)
            revision, published = None, None
        else:
            if weight_set.folder not in snapshots:
                names = [other for owner, other in wanted if owner is weight_set]
                snapshots[weight_set.folder] = _hub_snapshot(
                    weight_set, names, lock, endpoint, token
                )
            revision, hashes = snapshots[weight_set.folder]
            published = hashes.get(name)
            _download_hub(weight_set, name, revision, partial, staging / ".hub", endpoint, token)
        _install(partial, weights_dir, relative, lock, revision, published)
        fetched.append(relative)


def _install(
    source: Path,
    weights_dir: Path,
    relative: str,
    lock: dict,
    revision: str | None,
    published: str | None = None,
) -> None:
    """Move a downloaded file into place if it matches the lock; record it if the lock is silent.
    A file new to the lock must at least match the sha256 the Hub publishes for it, if any."""
    size, sha256 = source.stat().st_size, file_sha256(source)
    expected = lock.get(relative)
    if expected is not None and (size, sha256) != (expected["size"], expected["sha256"]):
        source.unlink()
        raise WeightsError(f"downloaded {relative} does not match {LOCK_FILE}: refused and deleted")
    if expected is None and published is not None and sha256 != published:
        source.unlink()
        raise WeightsError(
            f"downloaded {relative} does not match the sha256 the Hub publishes for it: refused and deleted"
        )
    target = weights_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    if expected is None:
        lock[relative] = {
            "size": size,
            "sha256": sha256,
            **({"revision": revision} if revision else {}),
        }


def _is_archive(url: str) -> bool:
    return _shown(url).endswith(".tar")


def _fetch_archive(url: str, staging: Path, report, progress: bool) -> Path:
    """Unpack a tar archive of the weights directory into staging/archive: with pget when it is on
    PATH (parallel ranges, extracted as it streams), else a resumable download and Python's tarfile."""
    unpacked = staging / "archive"
    shutil.rmtree(unpacked, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    pget = shutil.which("pget")
    if pget:
        report(f"Fetching {_shown(url)} with pget")
        result = subprocess.run([pget, "-x", url, str(unpacked)], capture_output=True, text=True)
        if result.returncode:
            detail = (result.stderr or result.stdout).strip().replace(url, _shown(url))[-500:]
            raise WeightsError(
                f"pget could not fetch {_shown(url)} (exit {result.returncode}): {detail}"
            )
        return unpacked
    report(f"Fetching {_shown(url)} (pget is not on PATH: one stream with resume, then unpacking)")
    archive = staging / "weights.tar"
    _download_url(url, archive, progress)
    try:
        with tarfile.open(archive) as tar:
            # "data": no absolute paths, no "..", no links out of the folder, no device files.
            tar.extractall(unpacked, filter="data")
    except (tarfile.TarError, EOFError) as error:
        raise WeightsError(f"{_shown(url)} is not a readable tar archive ({error})") from error
    archive.unlink()
    return unpacked


def _shown(url: str) -> str:
    """A URL as it may appear in a message: without its query (signed CDN URLs carry credentials)."""
    return url.split("?", 1)[0]


def _access_error(status: int, where: str, repo: str | None) -> WeightsError:
    if status in (401, 403) and repo:
        return WeightsError(
            f"{where}: access refused (HTTP {status}). {repo} is gated: accept its licence on "
            f"https://huggingface.co/{repo} with your account, then set {HF_TOKEN_ENV} to a token of "
            f"that account (a missing or rejected token gives this error)."
        )
    if status in (401, 403):
        return WeightsError(
            f"{where}: access refused (HTTP {status}); check that the mirror URL is current (signed URLs expire)"
        )
    if status == 404:
        return WeightsError(f"{where}: not found (HTTP 404); check the repository and file name")
    return WeightsError(f"{where}: HTTP {status}")


def _download_url(url: str, partial: Path, progress: bool) -> None:
    """A plain HTTP download with resume. No credentials are sent: the Hub token stays with the Hub."""
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
    except (
        Exception
    ) as error:  # no network, DNS, offline mode, a timeout: the HTTP client's own types
        raise WeightsError(
            f"{where}: could not be downloaded ({type(error).__name__}). Pre-fetch with "
            f"scripts/download_weights.py, or set {WEIGHTS_URL_ENV} to a mirror."
        ) from error


def _hub_snapshot(
    weight_set: WeightSet, names: list[str], lock: dict, endpoint: str | None, token: str | None
) -> tuple[str, dict[str, str]]:
    """The one commit a repository's files come from, and the sha256 the Hub publishes for each of
    its large (LFS) files at that commit. The commit is the lock's when it records one, else the
    manifest's revision when that is a commit, else that branch or tag resolved now. The Hub is
    asked only when a commit must be resolved or a file is new to the lock."""
    prefix = f"{weight_set.folder}/"
    recorded = {
        entry["revision"]
        for name, entry in lock.items()
        if name.startswith(prefix) and "revision" in entry
    }
    if len(recorded) > 1:
        raise WeightsError(
            f"{LOCK_FILE} records files of {weight_set.repo} from several commits: {sorted(recorded)}"
        )
    pinned = next(
        iter(recorded), weight_set.revision if _COMMIT.fullmatch(weight_set.revision) else None
    )
    if pinned and all(prefix + name in lock for name in names):
        return pinned, {}
    from huggingface_hub import HfApi

    asked = pinned or weight_set.revision
    with _hub_errors(f"{weight_set.repo}@{asked}", weight_set.repo):
        info = HfApi(endpoint=endpoint, token=token or None).model_info(
            weight_set.repo, revision=asked, files_metadata=True
        )
    published = {
        sibling.rfilename: sibling.lfs.sha256 for sibling in info.siblings or [] if sibling.lfs
    }
    return pinned or info.sha, published


def _download_hub(
    weight_set: WeightSet,
    name: str,
    revision: str,
    partial: Path,
    hub_staging: Path,
    endpoint: str | None,
    token: str | None,
) -> None:
    from huggingface_hub import hf_hub_download

    with _hub_errors(f"{weight_set.repo}/{name}", weight_set.repo):
        downloaded = hf_hub_download(
            weight_set.repo,
            name,
            revision=revision,
            local_dir=hub_staging / weight_set.folder,
            token=token or None,
            endpoint=endpoint,
        )
    os.replace(downloaded, partial)
