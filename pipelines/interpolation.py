"""Film-rate playback: frames made between the generated ones, so a clip generated at 8 fps plays
at 24 for the same duration.

The frames between come from ffmpeg's motion-compensated `minterpolate` filter, run by the ffmpeg
that imageio-ffmpeg ships (no weights). A learned interpolator (RIFE, FILM) would need its weights
pinned as safetensors under a licence that allows commercial use and a network written from its
paper and checked against the published weights' shapes; minterpolate needs no weights, so it is
the one used (docs/LONG_SHOTS.md, "Film-rate playback", has the quality measured for both this and
plain frame repetition).

Every generated frame is kept exactly: the playback rate is a whole multiple of the generation
rate (pipelines/inputs.py), so generated frame k is played frame k × ratio, and this module yields
the generated frame itself there, not ffmpeg's copy of it. After the last generated frame, it is
held for the rest of its own duration, so the video lasts exactly as long as without
interpolation.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

import imageio_ffmpeg
import numpy as np

# mci: motion-compensated interpolation (not blending or repeating); aobmc: overlapped blocks whose
# weights adapt to how well the motion fits; bidir: motion searched from both neighbours; vsbmc:
# smaller blocks where the motion field breaks up (0.1-0.4 dB better than ffmpeg's defaults on
# three of bench/interpolation_quality.py's four clips, 0.1 worse on one). scd=fdiff: at a cut
# (a large frame difference) the filter repeats a frame instead of warping one shot into the next.
MINTERPOLATE = "minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=fdiff"
# minterpolate works in YUV; full-resolution chroma, so colour detail is not halved on the way.
WORKING_PIXEL_FORMAT = "yuv444p"


def interpolate(frames: np.ndarray, fps: int, playback_fps: int) -> Iterator[np.ndarray]:
    """Yield the clip at `playback_fps` (a whole multiple of `fps`), frame by frame, as it comes out
    of ffmpeg: num_frames × (playback_fps // fps) uint8 frames, generated frame k at k × ratio.
    Close the generator to stop early: ffmpeg is then killed and waited for."""
    num_frames, height, width, _ = frames.shape
    ratio = playback_fps // fps
    if ratio * fps != playback_fps or ratio < 1:
        raise ValueError(
            f"playback_fps must be a whole multiple of fps ({fps}), got {playback_fps}"
        )
    if ratio == 1:
        yield from frames
        return
    last_made = (num_frames - 1) * ratio  # the last generated frame; after it, it is held
    frame_bytes = height * width * 3
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-framerate",
        str(fps),
        "-i",
        "pipe:0",
        "-vf",
        f"format={WORKING_PIXEL_FORMAT},{MINTERPOLATE.format(fps=playback_fps)}",
        # Every frame the filter makes, none dropped or repeated to fit a rate.
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
        feeder = threading.Thread(target=_feed, args=(process.stdin, frames), daemon=True)
        feeder.start()
        try:
            for index in range(last_made + 1):
                made = process.stdout.read(frame_bytes)
                if len(made) < frame_bytes:
                    break
                original, offset = divmod(index, ratio)
                yield (
                    frames[original]
                    if offset == 0
                    else np.frombuffer(made, np.uint8).reshape(height, width, 3)
                )
            else:
                process.stdout.read()  # the rest (frames past the last generated one) is not used
                if process.wait() == 0:
                    for _ in range(ratio - 1):
                        yield frames[-1]
                    return
            process.wait()
            stderr.seek(0)
            message = stderr.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(
                f"ffmpeg's minterpolate stopped before frame {last_made + 1} of "
                f"{num_frames * ratio} (exit code {process.returncode}): "
                f"{message or 'no message'}"
            )
        finally:
            # Stopped early (cancelled, or the encoder failed): end ffmpeg now rather than let it
            # run on, and reap it so no process is left behind.
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
            feeder.join()


def _feed(stdin: BinaryIO, frames: np.ndarray) -> None:
    """Write every frame, and the last one once more: minterpolate holds back its last input frame
    (it needs a frame after it to interpolate towards), so the extra one brings the real last
    frame out."""
    try:
        for frame in frames:
            stdin.write(np.ascontiguousarray(frame).tobytes())
        stdin.write(np.ascontiguousarray(frames[-1]).tobytes())
    except (BrokenPipeError, ValueError, OSError):
        pass  # ffmpeg ended (killed after a cancel, or failed, which the reader reports)
    finally:
        with contextlib.suppress(OSError):
            stdin.close()
