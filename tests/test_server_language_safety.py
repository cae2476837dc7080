"""Through Cog's real server: Thai prompts translated, logged and used; scripts CLIP cannot read
refused naming the field; the safety checker on by default, refusing a flagged clip with no
output, and off with disable_safety_checker; tier 3's keyframe at SDXL's training size."""

from __future__ import annotations

import base64
import io
import re
import shutil

import pytest
from PIL import Image

from scripts.cog_server import (
    REFUSED_BY_SCHEMA,
    CogServer,
    decode_data_uri,
    failure_text,
    refused_fields,
)
from scripts.make_tiny_weights import make_safety_checker
from tests.support.video_facts import read_video
from weights_build import write_lock
from weights_lock import VERIFIED_CACHE

THAI = "ฉากกลางคืน ฝนตกบนถนนในเมือง"  # "night scene, rain on a city street"
MIXED = "ฉากกลางคืน, neon signs, slow dolly in, ฝนตก"
TIER2 = dict(width=64, height=64, num_frames=8, num_inference_steps=2, seed=11)
TIER3 = dict(tier=3, width=128, height=64, num_frames=8, num_inference_steps=2, seed=11)
TRANSLATED = re.compile(r"^(\w+) translated from Thai; the model reads: '(.*)'$", re.MULTILINE)


def translations(logs: str) -> dict[str, str]:
    return dict(TRANSLATED.findall(logs))


def succeeded(result: dict) -> dict:
    assert result["status"] == "succeeded", failure_text(result)
    return result


@pytest.mark.parametrize("inputs", [TIER2, TIER3], ids=["tier 2", "tier 3"])
def test_a_thai_prompt_is_translated_logged_and_used(server, inputs):
    thai = succeeded(server.predict({**inputs, "prompt": THAI, "negative_prompt": "ภาพเบลอ"}))
    english = translations(thai["logs"])
    assert set(english) == {"prompt", "negative_prompt"}
    assert all(text.strip() and not re.search("[\u0e00-\u0e7f]", text) for text in english.values())
    # Used: the same request in that English, untranslated, gives the very same video.
    replay = succeeded(server.predict({**inputs, **english, "translate_prompt": False}))
    assert replay["output"] == thai["output"] and not translations(replay["logs"])
    # ... and the Thai as written would have given another one.
    as_written = succeeded(
        server.predict(
            {**inputs, "prompt": THAI, "negative_prompt": "ภาพเบลอ", "translate_prompt": False}
        )
    )
    assert as_written["output"] != thai["output"]
    assert (
        "prompt contains Thai and translate_prompt=false: CLIP reads it as written."
        in as_written["logs"]
    )


def test_mixed_thai_and_english_keeps_the_english_as_written(server):
    result = succeeded(server.predict({**TIER2, "prompt": MIXED}))
    english = translations(result["logs"])["prompt"]
    # Two Thai runs translated in place; the English between them untouched.
    head, tail = english.split(", neon signs, slow dolly in, ")
    assert head.strip() and tail.strip() and not re.search("[\u0e00-\u0e7f]", english)


def test_english_is_not_translated(server):
    result = succeeded(server.predict({**TIER2, "prompt": "a paper boat on a rainy street"}))
    assert not translations(result["logs"]) and "translate_prompt=false" not in result["logs"]


@pytest.mark.parametrize(
    "field, text",
    [
        ("prompt", "مشهد على الشاطئ عند الغروب"),  # Arabic
        ("prompt", "Ночная сцена, дождь на улице города"),  # Russian
        ("negative_prompt", "夜景，城市街道上的雨"),  # Chinese
    ],
    ids=["arabic prompt", "russian prompt", "chinese negative_prompt"],
)
def test_a_script_clip_cannot_read_fails_naming_the_field(each_server, field, text):
    inputs = {**TIER2, "prompt": "a paper boat", field: text}
    result = each_server.predict(inputs)
    # No schema can say this: our check refuses it, naming the field and the supported languages.
    assert result["status"] == "failed", result
    message = result["error"].split("InputError: ", 1)[1]
    assert message.startswith(f"{field} must be in a language the model reads: got ")
    assert "Supported: English, and Thai" in message and "Traceback" not in result["error"]
    each_server.wait_until_ready(timeout=10)
    # Sent as written on purpose, it runs.
    assert each_server.predict({**inputs, "translate_prompt": False})["status"] == "succeeded"


def test_tier3_with_an_image_reads_no_text_so_checks_none(server):
    uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    result = succeeded(server.predict({**TIER3, "image": uri, "prompt": "مشهد على الشاطئ"}))
    assert not translations(result["logs"])


@pytest.mark.parametrize(
    "field, value",
    [
        ("translate_prompt", "yes"),
        ("translate_prompt", 1),
        ("disable_safety_checker", "true"),
        ("disable_safety_checker", 0),
    ],
)
def test_a_switch_takes_true_or_false_only(each_server, field, value):
    result = each_server.predict({**TIER2, "prompt": "a kite", field: value})
    if each_server.schema is not None:
        assert result["status"] == REFUSED_BY_SCHEMA and refused_fields(result) == [field], result
    else:
        assert (
            result["status"] == "failed"
            and f"InputError: {field} must be true or false" in result["error"]
        )
    each_server.wait_until_ready(timeout=10)


def test_the_keyframe_renders_at_sdxls_training_size_and_the_video_keeps_its_size(server, tmp_path):
    result = succeeded(server.predict({**TIER3, "prompt": "a red tram crossing a bridge"}))
    # 128×64 is 2:1: SDXL's 1408×704 bucket, at half size for the tiny UNet (sample_size 64 × 8).
    assert (
        "Keyframe: 704×352 (SDXL's training size for this aspect ratio), scaled to 128×64"
        in result["logs"]
    )
    video = tmp_path / "out.mp4"
    video.write_bytes(decode_data_uri(result["output"])[1])
    assert (read_video(video).width, read_video(video).height) == (128, 64)


# The safety checker. The tiny checker's thresholds never flag (the default weights, every server
# above) or flag every image (the server below): a flagged clip refused, an unflagged one passing.


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 90, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def flagging_server(tiny_weights_dir, tmp_path_factory, schema):
    """Cog's server, with the schema, on the tiny weights with a safety checker that flags every
    image."""
    weights = tmp_path_factory.mktemp("flagging") / "weights"
    shutil.copytree(tiny_weights_dir, weights)
    make_safety_checker(weights, flags_every_image=True)
    write_lock(weights)
    (weights / VERIFIED_CACHE).unlink(missing_ok=True)
    cog = CogServer(weights, weights.parent / "server.log", schema=schema)
    try:
        cog.wait_until_ready()
        yield cog
    finally:
        cog.stop()


def stages(logs: str) -> set[str]:
    """The stages named at the end of the progress lines (`..., 4.33it/s, decoding]`)."""
    return set(re.findall(r", (\w+)\]$", logs or "", re.MULTILINE))


def test_the_checker_runs_by_default_and_an_unflagged_clip_passes(server):
    tier2 = succeeded(server.predict({**TIER2, "prompt": "a kite"}))
    assert "Safety checker: frames 1, 5, 8 of 8 passed." in tier2["logs"]
    tier3 = succeeded(server.predict({**TIER3, "prompt": "a kite"}))
    assert "Safety checker: the start frame (the SDXL keyframe) passed." in tier3["logs"]
    assert "Safety checker: frames 1, 5, 8 of 8 passed." in tier3["logs"]


def predict_with_logs(server, webhook, inputs: dict) -> tuple[dict, str]:
    """The final state of a prediction, and its logs as the webhooks delivered them (Cog's sync
    answer to a failed prediction carries no logs)."""
    server.start_async(inputs, webhook.url, events=("start", "logs", "completed"))
    events = webhook.wait_for_terminal(timeout=300)
    return events[-1], max((event.get("logs") or "" for event in events), key=len)


def test_a_flagged_tier2_clip_fails_before_encoding_with_no_output(flagging_server, webhook):
    result, logs = predict_with_logs(flagging_server, webhook, {**TIER2, "prompt": "a kite"})
    assert result["status"] == "failed" and result.get("output") is None
    assert (
        "UnsafeContentError: the safety checker flagged frames 1, 5, 8 of 8 as possibly not safe "
        "for work; "
        "no video is returned."
    ) in result["error"]
    assert "disable_safety_checker=true" in result["error"]
    assert {"denoising", "decoding"} <= stages(logs) and "encoding" not in stages(logs)
    flagging_server.wait_until_ready(timeout=10)


@pytest.mark.parametrize("start, source", [("text", "the SDXL keyframe"), ("image", "your image")])
def test_a_flagged_start_frame_is_never_animated(flagging_server, webhook, start, source):
    inputs = (
        {**TIER3, "prompt": "a kite"}
        if start == "text"
        else {**TIER3, "image": "data:image/png;base64," + base64.b64encode(png_bytes()).decode()}
    )
    result, logs = predict_with_logs(flagging_server, webhook, inputs)
    assert result["status"] == "failed" and result.get("output") is None
    assert (
        f"UnsafeContentError: the safety checker flagged the start frame ({source})"
        in result["error"]
    )
    assert "animating" not in stages(logs)
    assert ("keyframe" in stages(logs)) == (start == "text")
    flagging_server.wait_until_ready(timeout=10)


def test_disable_safety_checker_skips_it(flagging_server):
    for inputs in ({**TIER2, "prompt": "a kite"}, {**TIER3, "prompt": "a kite"}):
        result = succeeded(flagging_server.predict({**inputs, "disable_safety_checker": True}))
        assert "Safety checker: off (disable_safety_checker=true)." in result["logs"]
        assert "passed" not in result["logs"] and result["output"].startswith("data:video/mp4")
