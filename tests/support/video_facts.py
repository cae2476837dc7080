"""Read back what a user would check about a video file, with PyAV."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass
class VideoFacts:
    codec: str
    pixel_format: str
    width: int
    height: int
    fps: Fraction
    num_frames: int
    frames: np.ndarray  # decoded RGB frames


def read_video(path: Path) -> VideoFacts:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
        return VideoFacts(
            codec=stream.codec_context.name,
            pixel_format=stream.codec_context.pix_fmt,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=Fraction(stream.average_rate),
            num_frames=len(frames),
            frames=frames,
        )


def top_level_boxes(path: Path) -> list[str]:
    """The MP4 box types in file order; `moov` before `mdat` means it streams ("faststart")."""
    data = Path(path).read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size == 0:
            break
        offset += size
    return boxes


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
