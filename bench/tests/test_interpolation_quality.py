"""bench/interpolation_quality.py: on its own camera pan, ffmpeg's minterpolate (as
pipelines/interpolation.py uses it) rebuilds the frames between better than showing each kept
frame twice."""

from __future__ import annotations

from bench.interpolation_quality import REPETITION, clips, quality


def test_interpolation_beats_frame_repetition_on_the_quality_scripts_pan():
    pan = next(clip for name, clip in clips().items() if name.startswith("camera pan"))
    ours = quality(pan, "minterpolate, as used (pipelines/interpolation.py)")
    assert ours > quality(pan, REPETITION) + 6
