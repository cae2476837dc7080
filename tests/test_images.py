"""The caller's start image: every awkward kind converted correctly or refused with its message."""

from __future__ import annotations

import base64
import io
import pathlib
import struct
import zlib

import cog
import numpy as np
import pytest
from PIL import Image

from pipelines.images import (
    MAX_IMAGE_BYTES,
    decode_image,
    fit_to_size,
    load_start_image,
    read_image_bytes,
)
from pipelines.inputs import InputError

# Run and counted by `python -m bench.reliability` (bench/reports/RELIABILITY.md).
pytestmark = pytest.mark.reliability


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_exif_rotation_is_applied():
    # A 40×20 image, left half red and right half blue, stored with "rotate 90° clockwise" (6).
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = decode_image(encode(Image.fromarray(pixels), "JPEG", exif=exif.tobytes(), quality=95))
    assert upright.size == (20, 40)
    top, bottom = np.asarray(upright)[5, 10], np.asarray(upright)[35, 10]
    assert top[0] > 200 and top[2] < 60  # red is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_alpha_is_composited_on_white_not_dropped():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (0, 0, 0)  # pure black colour channels...
    rgba[:, :4, 3] = 0  # ...fully transparent on the left
    rgba[:, 4:, 3] = 255  # opaque on the right
    rgb = np.asarray(decode_image(encode(Image.fromarray(rgba, "RGBA"))))
    assert (rgb[:, :4] == 255).all()  # transparent -> white background, not black garbage
    assert (rgb[:, 4:] == 0).all()


def test_palette_with_transparency():
    palette_image = Image.new("P", (6, 6), 0)
    palette_image.putpalette([255, 0, 0] + [0, 255, 0] + [0] * 762)
    palette_image.paste(1, (3, 0, 6, 6))
    rgb = np.asarray(decode_image(encode(palette_image, transparency=0)))
    assert (rgb[:, :3] == 255).all()  # index 0 is transparent -> white
    assert (rgb[:, 3:] == (0, 255, 0)).all()


def test_cmyk_becomes_rgb():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    rgb = decode_image(encode(cmyk, "JPEG", quality=100))
    assert rgb.mode == "RGB"
    red, green, blue = np.asarray(rgb)[2, 2]
    assert red > 240 and green < 20 and blue < 20


def test_16_bit_greyscale_is_scaled_not_clipped():
    levels = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    rgb = np.asarray(decode_image(encode(Image.fromarray(levels))))
    assert rgb[0, :, 0].tolist() == [0, 64, 128, 255]
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_greyscale_becomes_grey_rgb():
    rgb = np.asarray(decode_image(encode(Image.new("L", (3, 3), 77))))
    assert (rgb == 77).all() and rgb.shape == (3, 3, 3)


def test_a_1x1_image_fills_the_frame():
    frame = load_start_image(data_uri(encode(Image.new("RGB", (1, 1), (10, 20, 30)))), 128, 64)
    assert frame.size == (128, 64)
    assert (np.asarray(frame) == (10, 20, 30)).all()


def test_other_aspect_ratios_are_centre_cropped_not_stretched():
    # A square with a 1-pixel red border around a blue centre: cropping to 2:1 cuts top and bottom.
    square = np.zeros((100, 100, 3), np.uint8)
    square[...] = (0, 0, 255)
    square[:10], square[-10:] = (255, 0, 0), (255, 0, 0)
    frame = np.asarray(fit_to_size(Image.fromarray(square), 200, 100))
    assert frame.shape == (100, 200, 3)
    assert frame[50, 100, 2] > 250 and frame[0, 100, 0] < 5  # the red bands were cropped away


def test_a_declared_size_past_our_limit_but_under_pillows_is_refused_before_decoding():
    with pytest.raises(
        InputError, match=r"^image must have at most 40,000,000 pixels; got 8000×6000$"
    ):
        load_start_image(data_uri(png_header_only(8000, 6000)), 64, 64)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size (a decompression bomb's signature) with almost no data."""

    def chunk(kind, payload):
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "value, message",
    [
        (
            data_uri(png_header_only(100_000, 100_000)),
            "image must have at most 40,000,000 pixels; ",
        ),
        (
            data_uri(encode(Image.new("RGB", (64, 64), (1, 2, 3)))[:-40]),
            "image could not be decoded",
        ),
        (
            data_uri(b"this is not a picture, just text named .png"),
            "image is not a readable image file",
        ),
        (
            "/etc/passwd",
            "image must be an http(s) URL or a data: URI (local paths and file:// are not read); "
            "got '/etc/passwd'",
        ),
        (
            "file:///etc/passwd",
            "image must be an http(s) URL or a data: URI (local paths and file:// are not read)",
        ),
        ("ftp://example.com/x.png", "image must be an http(s) URL or a data: URI"),
        ("data:image/png,notbase64", "image data URI must be base64"),
        ("data:image/png;base64,!!!!", "image data URI is not valid base64"),
        (
            "data:image/png;base64," + "A" * (MAX_IMAGE_BYTES * 4 // 3 + 8),
            "image must be at most 25 MB",
        ),
        (12345, "image must be an http(s) URL or a data: URI; got int"),
    ],
    ids=[
        "decompression bomb",
        "truncated",
        "text file",
        "local path",
        "file URL",
        "ftp",
        "not base64 form",
        "bad base64",
        "oversized data URI",
        "number",
    ],
)
def test_refused_with_a_message_naming_image(value, message):
    with pytest.raises(InputError) as error:
        load_start_image(value, 128, 64)
    assert str(error.value).startswith(message), str(error.value)


def test_a_text_file_named_png_on_disk_is_refused(tmp_path):
    fake = tmp_path / "picture.png"
    fake.write_text("hello")
    with pytest.raises(InputError, match="image is not a readable image file"):
        load_start_image(pathlib.Path(fake), 64, 64)


def test_a_cog_path_is_read(tmp_path):
    path = tmp_path / "frame.webp"
    path.write_bytes(encode(Image.new("RGB", (32, 16), (0, 200, 0)), "WEBP", lossless=True))
    assert read_image_bytes(path) == path.read_bytes()
    assert (np.asarray(load_start_image(path, 64, 32)) == (0, 200, 0)).all()


@pytest.mark.parametrize("outside", ["/etc/hostname", "/proc/self/environ"])
def test_a_file_path_outside_the_temp_folder_is_never_read(outside, tmp_path):
    """Cog downloads into the temp folder; a Path anywhere else could only be the caller's
    choice."""
    with pytest.raises(InputError, match="local paths and file:// are not read"):
        read_image_bytes(cog.Path(outside))
    # Nor through a link placed in the temp folder.
    link = tmp_path / "innocent.png"
    link.symlink_to(outside)
    with pytest.raises(InputError, match="local paths and file:// are not read"):
        read_image_bytes(cog.Path(link))
