"""Tier 4 through Cog's real HTTP server: text to video, image to video, its own limits refused
naming the field, and a cancel that leaves the next prediction as it would have been."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from scripts.cog_server import decode_data_uri
from tests.support.video_facts import read_video
from tests.test_server_reliability import CANCEL_BOUND_S, cancel_in_stage, stages_in

SMALL = dict(tier=4, width=96, height=64, num_frames=9, num_inference_steps=2, seed=7)


def png_uri(size=(300, 200), colour=(30, 120, 220)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def video_of(result, tmp_path, width=96, height=64, num_frames=9):
    assert result["status"] == "succeeded", result.get("error")
    path = tmp_path / "out.mp4"
    path.write_bytes(decode_data_uri(result["output"])[1])
    facts = read_video(path)
    # The published 24 fps is tier 4's default.
    assert (facts.width, facts.height, facts.num_frames, facts.fps) == (
        width,
        height,
        num_frames,
        24,
    )
    return facts


def test_tier4_text_to_video(server, tmp_path):
    result = server.predict({**SMALL, "prompt": "a red tram crossing a bridge"})
    video_of(result, tmp_path)
    assert "Wan 2.2 TI2V-5B: text to video" in result["logs"]
    assert "Safety checker: frames" in result["logs"]


def test_tier4_image_to_video_portrait_without_prompt(server, tmp_path):
    result = server.predict({**SMALL, "width": 64, "height": 96, "image": png_uri()})
    video_of(result, tmp_path, width=64, height=96)
    assert "image to video from the caller's image" in result["logs"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"num_frames": 12}, "num_frames must be 4k+1 for tier 4"),
        ({"width": 80}, "width must be a multiple of 32 for tier 4"),
        ({"height": 1000}, "height must be a multiple of 32 for tier 4"),
        ({"width": 1280, "height": 1280}, "width × height must be at most 1280×704"),
        ({"prompt_schedule": "0: a | 4: b"}, "prompt_schedule is only used by tier 2"),
        ({"motion_bucket_id": 40}, "motion_bucket_id is only used by tier 3"),
        ({"camera_motion": "zoom_in"}, "camera_motion needs tier 2's draft mode"),
        ({"prompt": ""}, "prompt must describe the clip for tier 4"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_a_tier4_limit_is_refused_naming_its_field(each_server, bad, message):
    result = each_server.predict({**SMALL, "prompt": "a kite", **bad})
    assert result["status"] == "failed"
    assert f"InputError: {message}" in result["error"], result["error"]
    each_server.wait_until_ready(timeout=10)


def test_cancel_while_denoising_leaves_the_next_prediction_unchanged(server, tmp_path):
    quick = {**SMALL, "prompt": "a lighthouse at dusk"}
    before = server.predict(quick)
    assert before["status"] == "succeeded", before.get("error")
    # 100 steps over 448 latent patches: seconds of denoising on tiny weights, so the cancel lands
    # in it even when the logs webhook lags on a loaded machine.
    slow = {**quick, "num_inference_steps": 100, "width": 256, "height": 256, "num_frames": 25}
    final, took = cancel_in_stage(server, "denoising", {**slow, "seed": 8})
    assert final["status"] == "canceled" and not final.get("output")
    assert stages_in(final["logs"])[-1] == "denoising" and took < CANCEL_BOUND_S
    after = server.predict(quick)
    # Same seed, same inputs: the same file, byte for byte.
    assert after["output"] == before["output"]


def test_tier4_draft_through_the_server(server, tmp_path):
    result = server.predict({**SMALL, "prompt": "a red tram", "draft": True})
    video_of(result, tmp_path)
    assert "Draft (FastWan 2.2, DMD): 3 steps, guidance 1.0" in result["logs"]
