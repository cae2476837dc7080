"""The video file: codec, pixel format, frame count, fps and size, read back from the file."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.video import to_uint8, write_video
from tests.support.video_facts import psnr, read_video, top_level_boxes


def smooth_frames(num_frames=12, height=72, width=88):
    """A moving gradient: compressible like real video, so quality can be checked by PSNR."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [
        np.stack([(x * 3 + t * 5) % 256, (y * 3) % 256, np.full_like(x, 40 + 10 * t)], axis=-1)
        for t in range(num_frames)
    ]
    return np.asarray(frames, dtype=np.uint8)


@pytest.mark.parametrize(
    "output_format, codec",
    [("mp4", "h264"), ("webm", "vp9")],
)
def test_ffmpeg_formats_keep_every_frame_at_the_requested_rate(tmp_path, output_format, codec):
    frames = smooth_frames()
    ticks = []
    path = write_video(
        frames,
        tmp_path / f"clip.{output_format}",
        fps=8,
        output_format=output_format,
        on_frame=lambda: ticks.append(1),
    )
    facts = read_video(path)
    assert facts.codec == codec
    assert facts.pixel_format == "yuv420p"
    assert (facts.width, facts.height) == (88, 72)
    assert facts.num_frames == 12
    assert facts.fps == 8
    assert len(ticks) == 12
    assert psnr(facts.frames, frames) > 30
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"clip.{output_format}"]


def test_mp4_is_faststart_h264_high(tmp_path):
    path = write_video(smooth_frames(), tmp_path / "clip.mp4", fps=8, output_format="mp4")
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    import av

    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.profile == "High"


def test_gif_has_every_frame_and_loops(tmp_path):
    from PIL import Image

    frames = smooth_frames(num_frames=10)
    path = write_video(frames, tmp_path / "clip.gif", fps=10, output_format="gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 10
        assert gif.size == (88, 72)
        assert gif.info["loop"] == 0
        assert gif.info["duration"] == 100  # ms per frame at 10 fps


def test_a_gif_is_written_as_its_frames_arrive(tmp_path):
    """Frames come one at a time (as film-rate playback makes them); while the gif is written, two
    RGB frames at most are alive, however many were sent: the first (the image Pillow saves from)
    and the one arriving (Pillow keeps each as a palette frame, a third of its size). The file is
    byte for byte Pillow's from the whole list at once."""
    import gc

    from PIL import Image

    frames = smooth_frames(num_frames=12)
    alive = []

    def arriving():
        for frame in frames:
            gc.collect()
            rgb = [o for o in gc.get_objects() if isinstance(o, Image.Image) and o.mode == "RGB"]
            alive.append(len(rgb))
            del rgb
            yield frame.copy()

    path = write_video(arriving(), tmp_path / "clip.gif", fps=10, output_format="gif")
    # Counted against the RGB images alive before the first frame came (others of the process's).
    assert len(alive) == 12 and max(alive) - alive[0] <= 2, alive

    images = [Image.fromarray(frame) for frame in frames]
    reference = tmp_path / "reference.gif"
    images[0].save(
        reference, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0
    )
    assert path.read_bytes() == reference.read_bytes()


def test_failed_encode_leaves_no_file(tmp_path):
    def fail_midway():
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        write_video(
            smooth_frames(), tmp_path / "clip.mp4", fps=8, output_format="mp4", on_frame=fail_midway
        )
    assert list(tmp_path.iterdir()) == []


def test_to_uint8_rounds_like_diffusers():
    values = np.array([0.0, 0.5, 1.0, 1.2, -0.1, 0.998], dtype=np.float32)
    assert to_uint8(values).tolist() == [0, 128, 255, 255, 0, 254]
