"""Whether the weights on disk are the ones pinned: the lock (each required file's size and sha256)
and its check at setup, with a cache of the hashes already checked so a warm start does not re-read
15 GB. The lock is written by `weights_build.write_lock`, and by `weights_fetch` as files arrive.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from weights import WeightsError, required_files

# Size and sha256 of every required file (scripts/lock_weights.py): trusted on first download, then
# every later setup refuses a file that differs.
LOCK_FILE = "weights.lock.json"
# Hashes already checked, keyed on size and mtime, so a warm start does not re-read 15 GB.
VERIFIED_CACHE = ".verified.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


# hashlib lets go of the GIL while it hashes a block, so threads hash files side by side: a first
# boot reads tens of GB (every tier's weights) at the disk's speed, not one core's sha256 speed.
HASH_THREADS = min(8, os.cpu_count() or 1)


def files_sha256(paths: list[Path]) -> list[str]:
    """Each file's sha256, in the order given, hashed HASH_THREADS at a time."""
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        return list(pool.map(file_sha256, paths))


def read_lock(weights_dir: Path) -> dict:
    """{relative path: {"size", "sha256", and "revision" (the Hub commit) when fetched from the
    Hub}}."""
    lock_path = weights_dir / LOCK_FILE
    return json.loads(lock_path.read_text()) if lock_path.is_file() else {}


def save_lock(weights_dir: Path, entries: dict) -> Path:
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
    verified = VerifiedFiles(weights_dir)
    to_hash = []
    for name in required_files(tier):
        path, expected = weights_dir / name, lock.get(name)
        if expected is None:
            raise WeightsError(
                f"{path} is not in {lock_path}; re-run python -m scripts.lock_weights after "
                "checking it"
            )
        size = path.stat().st_size
        if size != expected["size"]:
            raise WeightsError(
                f"{path} is {size} bytes; {lock_path} says {expected['size']}: corrupt or replaced"
            )
        if not verified.still_verified(name, expected["sha256"]):
            to_hash.append(name)
    # Every size is checked before any file is read; the first file (in the manifest's order)
    # that differs is the one named.
    for name, digest in zip(to_hash, files_sha256([weights_dir / name for name in to_hash])):
        if digest != lock[name]["sha256"]:
            raise WeightsError(
                f"{weights_dir / name} does not match its sha256 in {lock_path}: corrupt or "
                "replaced"
            )
        verified.record(name, digest)
    verified.save()
    return len(to_hash)


class VerifiedFiles:
    """DIR/.verified.json: {relative path: [size, mtime_ns, sha256]}, what each file looked like
    when it was hashed and matched the lock. A later size or mtime change means hash it again."""

    def __init__(self, weights_dir: Path):
        self.weights_dir = weights_dir
        path = weights_dir / VERIFIED_CACHE
        self.entries: dict[str, list] = json.loads(path.read_text()) if path.is_file() else {}

    def still_verified(self, name: str, sha256: str) -> bool:
        """The file is as it was when hashed. A tar round trip (an image layer built from a verified
        directory) keeps whole seconds of the mtime only, so a whole-second mtime within the cached
        second counts as unchanged too: the image need not be hashed again at every cold start."""
        cached = self.entries.get(name)
        if cached is None:
            return False
        size, mtime_ns, _ = now = self._stamp(name, sha256)
        if now == cached:
            return True
        return (
            [size, sha256] == [cached[0], cached[2]]
            and mtime_ns % 10**9 == 0
            and mtime_ns // 10**9 == cached[1] // 10**9
        )

    def record(self, name: str, sha256: str) -> None:
        """`name` was just hashed and matched `sha256`."""
        self.entries[name] = self._stamp(name, sha256)

    def save(self) -> None:
        # A read-only weights directory (baked into an image) just verifies again next boot.
        with contextlib.suppress(OSError):
            (self.weights_dir / VERIFIED_CACHE).write_text(json.dumps(self.entries))

    def _stamp(self, name: str, sha256: str) -> list:
        stat = (self.weights_dir / name).stat()
        return [stat.st_size, stat.st_mtime_ns, sha256]
