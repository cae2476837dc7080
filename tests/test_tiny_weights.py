"""The tiny weights carry the real repositories' metadata files, byte for byte, as recorded in
scripts/hub_metadata/SOURCES.md; only weights, vocabulary and architecture sizes are tiny."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from scripts.make_tiny_weights import HUB_METADATA
from weights import required_files


def git_blob_id(data: bytes) -> str:
    """The id git (and the Hub, for a small file) gives these bytes: `git hash-object`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def published_files() -> list[Path]:
    return sorted(path.relative_to(HUB_METADATA) for path in HUB_METADATA.rglob("*.json"))


def test_every_published_file_is_in_the_tiny_weights_byte_for_byte(tiny_weights_dir):
    assert len(published_files()) == 13
    for name in published_files():
        assert (tiny_weights_dir / name).read_bytes() == (HUB_METADATA / name).read_bytes(), name


def test_sources_table_names_every_file_with_its_git_blob_id():
    table = dict(
        re.findall(
            r"^\| `([^`]+)` \|.*\| `([0-9a-f]{40})` \|$",
            (HUB_METADATA / "SOURCES.md").read_text(),
            flags=re.MULTILINE,
        )
    )
    assert set(table) == {str(name) for name in published_files()}
    for name, blob in table.items():
        assert git_blob_id((HUB_METADATA / name).read_bytes()) == blob, name


def test_every_published_file_is_one_production_downloads_and_locks():
    assert {str(name) for name in published_files()} <= set(required_files())
