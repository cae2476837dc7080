"""Tier 3 through Cog's real HTTP server: from text, from an image URL, from a data URI."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import re
import threading

import pytest
from PIL import Image

from scripts.cog_server import PROGRESS_REGEX, decode_data_uri
from tests.support.video_facts import read_video

# Run and counted by `python -m bench.reliability` (bench/reports/RELIABILITY.md).
pytestmark = pytest.mark.reliability

SMALL = dict(tier=3, width=128, height=64, num_frames=8, num_inference_steps=2, seed=5)


def png_bytes(size=(300, 200), colour=(30, 120, 220)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_host(tmp_path_factory):
    """A local HTTP server on 127.0.0.1 serving a start image."""
    folder = tmp_path_factory.mktemp("images")
    (folder / "start.png").write_bytes(png_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def check_video(result, tmp_path, num_frames=8, fps=6):
    assert result["status"] == "succeeded", result.get("error")
    _, video = decode_data_uri(result["output"])
    path = tmp_path / "out.mp4"
    path.write_bytes(video)
    facts = read_video(path)
    assert (facts.codec, facts.pixel_format, facts.width, facts.height) == (
        "h264",
        "yuv420p",
        128,
        64,
    )
    assert facts.num_frames == num_frames and facts.fps == fps
    percentages = [
        int(m.group(1))
        for line in result["logs"].splitlines()
        if (m := re.match(PROGRESS_REGEX, line))
    ]
    assert percentages[-1] == 100 and percentages == sorted(percentages)
    return result["logs"]


def test_tier3_from_text(server, tmp_path):
    logs = check_video(
        server.predict({**SMALL, "prompt": "a red tram crossing a bridge"}), tmp_path
    )
    assert "keyframe" in logs and "animating" in logs and "an SDXL keyframe" in logs


def test_tier3_from_an_image_url(server, image_host, tmp_path):
    logs = check_video(
        server.predict({**SMALL, "image": f"{image_host}/start.png", "fps": 10}), tmp_path, fps=10
    )
    assert "the caller's image" in logs and "keyframe" not in logs.replace("SDXL keyframe", "")


def test_tier3_from_a_data_uri_without_prompt(server, tmp_path):
    uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    check_video(server.predict({**SMALL, "image": uri, "num_frames": 12}), tmp_path, num_frames=12)


@pytest.mark.parametrize(
    "image, message",
    [
        ("file:///etc/passwd", "local paths and file:// are not read"),
        ("/etc/hostname", "local paths and file:// are not read"),
        (
            "data:image/png;base64," + base64.b64encode(b"not an image").decode(),
            "not a readable image file",
        ),
        (
            "data:image/png;base64," + base64.b64encode(png_bytes()[:-30]).decode(),
            "could not be decoded",
        ),
    ],
    ids=["file URL", "local path", "text as png", "truncated"],
)
def test_bad_image_fails_naming_image_and_server_stays_ready(
    each_server, image_host, image, message
):
    # The schema lets each through (a string, as its `format: uri` allows): our check refuses it.
    result = each_server.predict({**SMALL, "image": image})
    assert result["status"] == "failed"
    assert "InputError: image" in result["error"] and message in result["error"]
    each_server.wait_until_ready(timeout=10)


def test_missing_image_url_is_reported(each_server, image_host):
    # Cog downloads URL inputs declared as Path itself (schema or not), so this error is Cog's.
    url = f"{image_host}/nothing-here.png"
    result = each_server.predict({**SMALL, "image": url})
    assert result["status"] == "failed"
    assert "Input validation error: 404" in result["error"] and url in result["error"]
    each_server.wait_until_ready(timeout=10)


@pytest.mark.parametrize(
    "bad, message",
    [
        # Within run()'s declared 8–96 (tier 2's range), past tier 3's 25.
        ({"num_frames": 30}, "num_frames must be from 8 to 25 for tier 3; got 30"),
        # Within the declared 64–1024, not a multiple of 8.
        (
            {"width": 500},
            "width must be a multiple of 8 (the VAE works on 8×8 blocks); got 500, nearest "
            "allowed: 496 or 504",
        ),
        (
            {"height": 500},
            "height must be a multiple of 8 (the VAE works on 8×8 blocks); got 500, nearest "
            "allowed: 496 or 504",
        ),
    ],
    ids=["num_frames=30", "width=500", "height=500"],
)
def test_a_tier3_limit_the_schema_cannot_express_is_ours(each_server, bad, message):
    result = each_server.predict({**SMALL, "prompt": "a kite", **bad})
    assert result["status"] == "failed"
    assert f"InputError: {message}" in result["error"]
    each_server.wait_until_ready(timeout=10)


def test_image_with_tier2_is_an_error(each_server, image_host):
    result = each_server.predict(
        {**SMALL, "tier": 2, "prompt": "x", "image": f"{image_host}/start.png"}
    )
    assert result["status"] == "failed"
    assert "image is only used by tier 3" in result["error"]
