"""The caller's start image for tier 3: fetched, checked and turned into an RGB frame of the
requested size before any model runs.

Cog's server hands `image` over as a local file it downloaded (a `cog.Path`, when the model's schema
is built) or as the string the caller sent (no schema). A string must be an http(s) URL or a
`data:` URI: local paths and `file://` URLs are refused, so a request can never read the server's
files. Everything else that can go wrong — too large, not an image, truncated, a decompression
bomb — fails with an `InputError` naming `image`.
"""

from __future__ import annotations

import base64
import binascii
import io
import pathlib
import tempfile
import warnings
from collections.abc import Callable

import numpy as np
import requests
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.inputs import InputError

MAX_IMAGE_BYTES = 25 * 1024 * 1024  # a 4K PNG is ~20 MB; anything larger is not a start frame
MAX_IMAGE_PIXELS = 40_000_000  # ~ 8K × 5K; decoding more would take seconds and gigabytes
DOWNLOAD_TIMEOUT_S = (5, 30)  # connect, read
# Transparent areas are composited on white: what a browser shows for a transparent PNG on a page.
BACKGROUND = (255, 255, 255)

# Called on a start frame before it is animated, with where it came from ("your image", "the SDXL
# keyframe"); raising refuses the request (the safety checker's `check_start_frame`).
FrameCheck = Callable[[Image.Image, str], None]


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _not_read(value) -> InputError:
    return InputError(
        "image must be an http(s) URL or a data: URI (local paths and file:// are not read); "
        f"got {_shown(str(value))}"
    )


def read_image_bytes(value) -> bytes:
    """The image's bytes from a cog.Path / local file handed over by Cog, a URL or a data URI."""
    if isinstance(value, pathlib.Path):  # downloaded by Cog itself into the prediction's folder
        # Cog writes what it downloads under the temp folder. Anything else would be a path the
        # caller chose (if a schema ever made Cog turn a local path into a file), never read.
        if not value.resolve().is_relative_to(pathlib.Path(tempfile.gettempdir()).resolve()):
            raise _not_read(value)
        if value.stat().st_size > MAX_IMAGE_BYTES:
            raise InputError(
                f"image must be at most {MAX_IMAGE_BYTES // 2**20} MB; "
                f"got {value.stat().st_size} bytes"
            )
        return value.read_bytes()
    if not isinstance(value, str):
        raise InputError(f"image must be an http(s) URL or a data: URI; got {type(value).__name__}")
    if value.startswith("data:"):
        return _decode_data_uri(value)
    if value.startswith(("http://", "https://")):
        return _download(value)
    raise _not_read(value)


def _decode_data_uri(uri: str) -> bytes:
    header, comma, payload = uri.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InputError(
            f"image data URI must be base64 (data:image/png;base64,...); got {_shown(uri)}"
        )
    # base64 grows data by 4/3: refuse before decoding rather than after.
    if len(payload) * 3 // 4 > MAX_IMAGE_BYTES:
        raise InputError(
            f"image must be at most {MAX_IMAGE_BYTES // 2**20} MB; "
            f"got a data URI of {len(payload)} characters"
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InputError(f"image data URI is not valid base64: {error}") from error


def _download(url: str) -> bytes:
    try:
        with requests.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT_S) as response:
            if response.status_code != 200:
                raise InputError(f"image URL {_shown(url)} answered HTTP {response.status_code}")
            received = bytearray()
            for chunk in response.iter_content(chunk_size=1 << 16):
                received += chunk
                if len(received) > MAX_IMAGE_BYTES:
                    raise InputError(
                        f"image at {_shown(url)} is over {MAX_IMAGE_BYTES // 2**20} MB"
                    )
            return bytes(received)
    except requests.RequestException as error:
        raise InputError(
            f"image URL {_shown(url)} could not be fetched: {type(error).__name__}"
        ) from error


def decode_image(data: bytes) -> Image.Image:
    """Decode to an upright RGB image; refuse what is not a complete image within the limits."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            # Image.open reads only the header: check the declared size before decoding pixels.
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InputError(
                    f"image must have at most {MAX_IMAGE_PIXELS:,} pixels; got {width}×{height}"
                )
            image.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow's own guard fires while reading the header of a size far past ours.
        raise InputError(f"image must have at most {MAX_IMAGE_PIXELS:,} pixels; {error}") from error
    except UnidentifiedImageError as error:
        raise InputError(
            "image is not a readable image file (PNG, JPEG, WebP, GIF, BMP, TIFF...)"
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"image could not be decoded ({error}); is the file complete?") from error
    image = ImageOps.exif_transpose(image)  # phones store rotation in EXIF, not in the pixels
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Every PIL mode to 8-bit RGB, deliberately: 16-bit scaled down, alpha composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale the 0–65535 range to 0–255 (a plain convert would clip).
        levels = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(levels / 257.0, 0, 255).round().astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(
            np.clip(np.asarray(image), 0, 255).round().astype(np.uint8), mode="L"
        )
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGB


def fit_to_size(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover width×height, then crop the centre: no distortion, no borders."""
    return ImageOps.fit(
        image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5)
    )


def load_start_image(value, width: int, height: int) -> Image.Image:
    return fit_to_size(decode_image(read_image_bytes(value)), width, height)
