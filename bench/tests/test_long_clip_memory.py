"""bench/long_clip_memory.py: each clip measured in its own process, its section of a Markdown
file written (and rewritten) without touching the rest."""

from __future__ import annotations

import subprocess
import sys

from scripts import REPO


def test_measures_short_and_long_clips_and_rewrites_only_its_section(tiny_weights_dir, tmp_path):
    document = tmp_path / "BENCHMARKS.md"
    document.write_text("# Benchmarks\n\nBefore.\n\n## Another section\n\nKept.\n")
    for frames in (
        ["16"],
        ["16", "33", "--both"],
    ):  # the second run replaces the first one's section
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.long_clip_memory",
                "--size",
                "64",
                "--weights",
                str(tiny_weights_dir),
                "--out",
                str(document),
                "--frames",
                *frames,
            ],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=900,
        )
    text = document.read_text()
    assert text.startswith(
        "# Benchmarks\n\nBefore.\n\n## Another section\n\nKept.\n\n## Long tier-2 clips"
    )
    assert text.count("## Long tier-2 clips") == 1
    rows = [
        line.split(" | ")
        for line in text.splitlines()
        if line.startswith("| 16 ") or line.startswith("| 33 ")
    ]
    # 16 frames run as ever; 33 go through FreeNoise, with and without split inference.
    assert [row[:3] for row in rows] == [
        ["| 16", "no", "no"],
        ["| 33", "yes", "yes"],
        ["| 33", "yes", "no"],
    ]
    for row in rows:
        loaded, denoising, whole, frames = (float(value) for value in row[3:7])
        assert loaded > 100 and 0 < denoising <= whole and frames > 0
