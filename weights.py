"""Where every weight set lives on disk and whether it is all there.

One manifest (`WEIGHT_SETS`) names each set the model uses: the Hub repository it comes from, the
files the model needs from it (fp16 safetensors variants where the repo publishes them, nothing
else), and the folder under the weights directory that holds them. The loading code in
`pipelines/` reads from these folders with diffusers' `from_pretrained`, whether they hold the real
weights or the tiny random ones that `scripts/make_tiny_weights.py` writes in the same layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
    # Not pinned to a commit (none could be verified offline): the lock file pins every file's
    # content instead, and refuses whatever a later download changes.
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
        ),
        tier=2,
    ),
    "animatediff": WeightSet(
        folder="animatediff-motion-adapter-v1-5-3",
        repo="guoyww/animatediff-motion-adapter-v1-5-3",
        # The adapter repo publishes one safetensors file (already half precision), no variants.
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
}


class WeightsError(RuntimeError):
    """Weights are missing or unusable; the message says which file and what to do."""


def weights_dir() -> Path:
    """The weights directory this process uses: $WEIGHTS_DIR, else ./weights next to this file."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else DEFAULT_WEIGHTS_DIR


def missing_files(weights_dir: Path, tier: int | None = None) -> list[Path]:
    """Every required file of the sets for `tier` (all tiers if None) that is not on disk."""
    return [
        weight_set.path(weights_dir) / name
        for weight_set in WEIGHT_SETS.values()
        if tier is None or weight_set.tier == tier
        for name in weight_set.files
        if not (weight_set.path(weights_dir) / name).is_file()
    ]


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


def _required(tier: int | None):
    for weight_set in WEIGHT_SETS.values():
        if tier is None or weight_set.tier == tier:
            for name in weight_set.files:
                yield f"{weight_set.folder}/{name}"


def write_lock(weights_dir: Path) -> Path:
    """Record size and sha256 of every required file present in `weights_dir`."""
    entries = {
        name: {"size": (weights_dir / name).stat().st_size, "sha256": file_sha256(weights_dir / name)}
        for name in _required(None)
        if (weights_dir / name).is_file()
    }
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
    lock = json.loads(lock_path.read_text())
    cache_path = weights_dir / VERIFIED_CACHE
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    hashed = 0
    for name in _required(tier):
        path, expected = weights_dir / name, lock.get(name)
        if expected is None:
            raise WeightsError(f"{path} is not in {lock_path}; re-run scripts/lock_weights.py after checking it")
        stat = path.stat()
        if stat.st_size != expected["size"]:
            raise WeightsError(f"{path} is {stat.st_size} bytes; {lock_path} says {expected['size']}: corrupt or replaced")
        stamp = [stat.st_size, stat.st_mtime_ns, expected["sha256"]]
        if cache.get(name) == stamp:
            continue
        hashed += 1
        if file_sha256(path) != expected["sha256"]:
            raise WeightsError(f"{path} does not match its sha256 in {lock_path}: corrupt or replaced")
        cache[name] = stamp
    try:
        cache_path.write_text(json.dumps(cache))
    except OSError:
        pass  # a read-only weights directory (baked into an image) just verifies again next boot
    return hashed


# Fetching. Downloads land in .partial/ under the weights directory and are moved into place only
# once complete and matching the lock, so a failure never leaves half-written weights in place.
PARTIAL_DIR = ".partial"
HF_TOKEN_ENV = "HF_TOKEN"  # read by huggingface_hub too; never printed
WEIGHTS_URL_ENV = "WEIGHTS_URL"  # a mirror laid out like the weights directory (a CDN, say)
DOWNLOAD_TRIES = 5  # a dropped connection resumes where it stopped (HTTP Range)


def fetch_missing(
    weights_dir: Path,
    tier: int | None = None,
    *,
    base_url: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    report=print,
) -> list[str]:
    """Download every required file of `tier` (all if None) that is not on disk, from `base_url`
    (files at {base_url}/{folder}/{file}) or else from the Hugging Face Hub (`endpoint`, default
    huggingface.co). Returns the files fetched. New files are added to the lock (trust on first
    download); a file the lock already names must match it or is refused."""
    lock_path = weights_dir / LOCK_FILE
    lock = json.loads(lock_path.read_text()) if lock_path.is_file() else {}
    fetched = []
    for weight_set in WEIGHT_SETS.values():
        if tier is not None and weight_set.tier != tier:
            continue
        for name in weight_set.files:
            relative = f"{weight_set.folder}/{name}"
            target = weights_dir / relative
            if target.is_file():
                continue
            partial = weights_dir / PARTIAL_DIR / relative
            partial.parent.mkdir(parents=True, exist_ok=True)
            report(f"Fetching {relative}")
            if base_url:
                _download_url(f"{base_url.rstrip('/')}/{relative}", partial, token)
            else:
                _download_hub(weight_set, name, partial, endpoint, token)
            _check_download(partial, lock.get(relative), relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
            lock.setdefault(relative, {"size": target.stat().st_size, "sha256": file_sha256(target)})
            fetched.append(relative)
    if fetched:
        lock_path.write_text(json.dumps(lock, indent=1, sort_keys=True))
    shutil.rmtree(weights_dir / PARTIAL_DIR, ignore_errors=True)  # only left behind by a failure
    return fetched


def _check_download(path: Path, expected: dict | None, relative: str) -> None:
    if expected is None:
        return
    if path.stat().st_size != expected["size"] or file_sha256(path) != expected["sha256"]:
        path.unlink()
        raise WeightsError(f"downloaded {relative} does not match {LOCK_FILE}: refused and deleted")


def _access_error(status: int, where: str, repo: str) -> WeightsError:
    if status in (401, 403):
        return WeightsError(
            f"{where}: access refused (HTTP {status}). {repo} may be gated: accept its licence on "
            f"https://huggingface.co/{repo} with your account, then set {HF_TOKEN_ENV} to a token of "
            f"that account (a missing or rejected token gives this error)."
        )
    if status == 404:
        return WeightsError(f"{where}: not found (HTTP 404); check the repository and file name")
    return WeightsError(f"{where}: HTTP {status}")


def _download_url(url: str, partial: Path, token: str | None) -> None:
    import requests

    repo = url.split("://", 1)[-1]
    last_error: Exception | None = None
    for _ in range(DOWNLOAD_TRIES):
        start = partial.stat().st_size if partial.is_file() else 0
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            with requests.get(url, headers=headers, stream=True, timeout=(10, 60)) as response:
                if response.status_code >= 400:
                    raise _access_error(response.status_code, url, repo)
                resumed = start and response.status_code == 206
                with open(partial, "ab" if resumed else "wb") as handle:
                    for block in response.iter_content(chunk_size=1 << 20):
                        handle.write(block)
            return
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            last_error = error  # the connection dropped mid-file: resume from what arrived
    raise WeightsError(f"{url}: the download kept breaking off ({DOWNLOAD_TRIES} tries)") from last_error


def _download_hub(weight_set: WeightSet, name: str, partial: Path, endpoint: str | None, token: str | None) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    staging = partial.parent / ".hub"
    try:
        downloaded = hf_hub_download(
            weight_set.repo, name, revision=weight_set.revision, local_dir=staging, token=token or None,
            endpoint=endpoint,
        )
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        raise _access_error(status, f"{weight_set.repo}/{name}", weight_set.repo) from error
    except (OSError, ValueError) as error:  # no network, DNS, offline mode, a timeout
        raise WeightsError(
            f"{weight_set.repo}/{name}: could not be downloaded ({type(error).__name__}). Pre-fetch with "
            f"scripts/download_weights.py, or set {WEIGHTS_URL_ENV} to a mirror."
        ) from error
    os.replace(downloaded, partial)
