"""Build-time tools for the weights directory, run by a publisher and never by `setup()`: pin the
files in a lock (`scripts/lock_weights.py`, and the tiny weights' writer), and pack a verified
directory into the tar archive a CDN serves as $WEIGHTS_URL (`scripts/pack_weights.py`).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from weights import WEIGHT_TIERS, WeightsError, require_weights, required_files
from weights_lock import LOCK_FILE, files_sha256, read_lock, save_lock, verify_weights


def write_lock(weights_dir: Path) -> Path:
    """Record size and sha256 of every required file present in `weights_dir`, keeping the Hub
    commit already recorded for a file whose content is unchanged."""
    previous = read_lock(weights_dir)
    present = [name for name in required_files(None) if (weights_dir / name).is_file()]
    digests = files_sha256([weights_dir / name for name in present])
    entries = {}
    for name, digest in zip(present, digests):
        entry = {"size": (weights_dir / name).stat().st_size, "sha256": digest}
        if previous.get(name, {}).get("sha256") == digest and "revision" in previous[name]:
            entry["revision"] = previous[name]["revision"]
        entries[name] = entry
    return save_lock(weights_dir, entries)


def write_archive(weights_dir: Path, archive: Path, tier: int | None = None) -> int:
    """Pack the required files of `tier` (all if None) into one uncompressed tar (safetensors do not
    compress; pget unpacks a plain tar as it streams): what a CDN serves as $WEIGHTS_URL. Every file
    is checked against the lock first. Returns the number of files packed."""
    for each in (tier,) if tier else WEIGHT_TIERS:
        require_weights(weights_dir, each)
        if verify_weights(weights_dir, each) is None:
            raise WeightsError(
                f"{weights_dir} has no {LOCK_FILE}: write it with python -m scripts.lock_weights "
                "first"
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
