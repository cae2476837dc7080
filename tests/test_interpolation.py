"""Film-rate playback (pipelines/interpolation.py): the generated frames kept exactly, new ones made
between them by ffmpeg's minterpolate, the same duration, and ffmpeg never left running."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from pipelines.interpolation import interpolate
from pipelines.video import write_video
from tests.support.video_facts import psnr, read_video


def moving_square(
    num_frames: int = 9, height: int = 96, width: int = 128, step: int = 6
) -> np.ndarray:
    """A yellow square moving right over a textured background."""
    rng = np.random.default_rng(3)
    background = (rng.random((height // 8, width // 8, 3)) * 120 + 20).repeat(8, 0).repeat(8, 1)
    frames = np.repeat(background[None], num_frames, axis=0).astype(np.uint8)
    for k in range(num_frames):
        frames[k, 30:62, 10 + k * step : 42 + k * step] = (230, 200, 40)
    return frames


def ffmpeg_children() -> list[str]:
    """ffmpeg processes this test process started that are still running (not yet reaped is
    fine)."""
    import os

    rows = subprocess.run(
        ["ps", "-o", "stat=,comm=", "--ppid", str(os.getpid())], capture_output=True, text=True
    ).stdout
    return [
        row for row in rows.splitlines() if "ffmpeg" in row and not row.lstrip().startswith("Z")
    ]


@pytest.mark.parametrize("fps, playback_fps", [(8, 24), (6, 24), (8, 16), (30, 60)])
def test_every_generated_frame_is_kept_exactly_where_it_plays(fps, playback_fps):
    frames = moving_square()
    ratio = playback_fps // fps
    played = list(interpolate(frames, fps, playback_fps))
    assert (
        len(played) == len(frames) * ratio
    )  # the same duration: 9 frames at fps, 9 × ratio at the new rate
    for k, frame in enumerate(frames):
        np.testing.assert_array_equal(played[k * ratio], frame)
    # The last generated frame is held for the rest of its own time, as it would be shown at fps.
    for frame in played[(len(frames) - 1) * ratio :]:
        np.testing.assert_array_equal(frame, frames[-1])
    # And the frames between are new: neither neighbour repeated.
    for k in range(len(frames) - 1):
        for offset in range(1, ratio):
            between = played[k * ratio + offset]
            assert not np.array_equal(between, frames[k]) and not np.array_equal(
                between, frames[k + 1]
            )


def test_frames_between_follow_the_motion():
    """Rebuilding every other frame of a moving square: the square is where it was, not repeated
    (PSNR against the dropped frame, far above showing the previous frame again)."""
    frames = moving_square(num_frames=17, step=3)
    kept, dropped = frames[0::2], frames[1::2]
    made = list(interpolate(kept, 12, 24))[1::2][: len(dropped)]
    for truth, rebuilt, previous in zip(dropped, made, kept):
        assert psnr(rebuilt, truth) > psnr(previous, truth) + 4


def test_the_frames_between_come_in_order():
    """ffmpeg's frames are taken in step with the generated ones: of the two made between frames k
    and k + 1 (at 3× the rate), the first is nearer frame k and the second nearer frame k + 1. Read
    one frame off, and one of them would be ffmpeg's copy of a neighbour, in the wrong place."""
    frames = moving_square()
    played = list(interpolate(frames, 8, 24))
    for k in range(len(frames) - 1):
        first, second = played[3 * k + 1], played[3 * k + 2]
        assert psnr(first, frames[k]) > psnr(first, frames[k + 1])
        assert psnr(second, frames[k + 1]) > psnr(second, frames[k])


def test_a_rate_that_is_not_a_multiple_is_refused():
    with pytest.raises(ValueError, match="whole multiple of fps"):
        next(interpolate(moving_square(), 8, 20))


def test_the_same_rate_yields_the_frames_as_they_are():
    frames = moving_square()
    played = list(interpolate(frames, 8, 8))
    assert len(played) == len(frames) and all(np.array_equal(a, b) for a, b in zip(played, frames))
    assert not ffmpeg_children()


def test_stopping_early_ends_ffmpeg():
    frames = moving_square(num_frames=40, height=256, width=256)
    played = interpolate(frames, 8, 56)
    next(played)
    assert ffmpeg_children()
    played.close()  # what a cancel or a failed encode does (predict.py closes it)
    assert not ffmpeg_children()


def test_an_ffmpeg_failure_is_an_error_with_its_message():
    # minterpolate needs frames of at least 32×32 (our sizes start at 64).
    with pytest.raises(
        RuntimeError, match=r"ffmpeg's minterpolate stopped .*exit code .*Height or width < 32"
    ):
        list(interpolate(np.zeros((4, 16, 16, 3), np.uint8), 8, 24))
    assert not ffmpeg_children()


@pytest.mark.parametrize("output_format", ["mp4", "webm"])
def test_the_video_plays_at_the_new_rate_for_the_same_duration(tmp_path, output_format):
    frames = moving_square(num_frames=16)
    plain = read_video(
        write_video(frames, tmp_path / f"plain.{output_format}", fps=8, output_format=output_format)
    )
    ticks = []
    smooth = read_video(
        write_video(
            interpolate(frames, 8, 24),
            tmp_path / f"smooth.{output_format}",
            fps=24,
            output_format=output_format,
            on_frame=lambda: ticks.append(1),
        )
    )
    assert smooth.fps == 24 and smooth.num_frames == 48 == len(ticks)
    assert smooth.num_frames / smooth.fps == plain.num_frames / plain.fps == 2
    # Where a generated frame plays, the video shows it as well as the plain video does.
    for k in range(16):
        assert psnr(smooth.frames[3 * k], frames[k]) > 30
        assert psnr(smooth.frames[3 * k], plain.frames[k]) > 30
