"""Encode frames into the video file a prediction returns.

mp4 and webm go through imageio-ffmpeg's bundled ffmpeg (a maintained wrapper that raises when
ffmpeg fails, instead of a hand-built command whose exit code nobody reads); gif goes through
Pillow. The file is written under a temporary name and renamed into place only when complete, so
a failed or cancelled encode never leaves a truncated video behind.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

OUTPUT_FORMATS = ("mp4", "gif", "webm")

# ffmpeg settings per container. H.264 High in yuv420p with the index ("moov") at the front plays
# in every browser straight from a URL; VP9 in WebM is the open alternative. CRF values keep
# visually clean output; `realtime`/`cpu-used 8` make libvpx-vp9 fast enough for a request path.
_FFMPEG = {
    "mp4": dict(
        codec="libx264",
        output_params=["-preset", "medium", "-crf", "18", "-movflags", "+faststart"],
    ),
    "webm": dict(
        codec="libvpx-vp9",
        output_params=[
            "-crf",
            "32",
            "-b:v",
            "0",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-row-mt",
            "1",
        ],
    ),
}


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] to 8-bit, rounded the way diffusers' `numpy_to_pil` rounds.

    A NaN or infinity (a numerical overflow, typically in half precision: the reason SDXL needs its
    fp16-fix VAE) would turn into black pixels without a word; it fails the prediction instead."""
    finite = np.isfinite(frames)
    if not finite.all():
        raise FloatingPointError(
            f"the model produced {finite.size - np.count_nonzero(finite)} NaN or infinite values "
            f"among {finite.size} in the frames (a numerical overflow); MODEL_DTYPE=bfloat16 or "
            f"float32 avoids it"
        )
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


def write_video(
    frames: np.ndarray | Iterable[np.ndarray],
    path: Path,
    fps: int,
    output_format: str,
    on_frame: Callable[[], None] = lambda: None,
) -> Path:
    """Write `frames` to `path`; call `on_frame` per frame. `frames`: uint8, num_frames × height ×
    width × 3, or any iterable of height × width × 3 frames, written as they come (so interpolated
    frames are never all held at once)."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    if isinstance(frames, np.ndarray) and (
        frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3
    ):
        raise ValueError(
            f"expected uint8 frames of shape (F, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    frames = _same_shape(frames)
    path = Path(path)
    # Same extension, so ffmpeg picks the same container for the partial file.
    partial = path.with_name(f".partial-{path.name}")
    try:
        if output_format == "gif":
            _write_gif(frames, partial, fps, on_frame)
        else:
            _write_ffmpeg(frames, partial, fps, on_frame, **_FFMPEG[output_format])
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _same_shape(frames: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    """The frames, each checked against the first: uint8 height × width × 3."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None or first.dtype != np.uint8 or first.ndim != 3 or first.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 frames of shape (H, W, 3), got "
            f"{None if first is None else (first.dtype, first.shape)}"
        )
    for frame in itertools.chain([first], frames):
        if frame.dtype != first.dtype or frame.shape != first.shape:
            raise ValueError(
                f"every frame must be {first.dtype} {first.shape}, got {frame.dtype} {frame.shape}"
            )
        yield frame


def _write_ffmpeg(frames, path, fps, on_frame, codec, output_params) -> None:
    first = next(frames)
    height, width = first.shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec=codec,
        pix_fmt_out="yuv420p",
        quality=None,  # the CRF in output_params decides quality
        macro_block_size=2,  # yuv420p needs even sides; never let ffmpeg rescale beyond that
        ffmpeg_log_level="error",
        output_params=output_params,
    )
    writer.send(None)  # start ffmpeg
    try:
        for frame in itertools.chain([first], frames):
            writer.send(np.ascontiguousarray(frame))
            on_frame()
    finally:
        writer.close()  # waits for ffmpeg and raises if it failed


def _write_gif(frames, path, fps, on_frame) -> None:
    """Pillow takes the frames one at a time as it converts each to a 256-colour palette frame (1
    byte a pixel), which it keeps until the file is written: a gif holds a third of its frames'
    RGB size, and of the RGB frames only the first and the one arriving (tests/test_video.py)."""

    def images():
        for frame in frames:
            yield Image.fromarray(frame)
            on_frame()

    sequence = images()
    first = next(sequence)
    # GIF stores frame durations in hundredths of a second, so fps is kept to that precision.
    first.save(
        path,
        format="GIF",
        save_all=True,
        append_images=sequence,
        duration=round(1000 / fps),
        loop=0,
    )
