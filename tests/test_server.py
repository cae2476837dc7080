"""Tier 2 through Cog's real HTTP server (coglet), as the frontend and Replicate talk to it."""

from __future__ import annotations

import re

import pytest

from scripts.cog_server import (
    PROGRESS_REGEX,
    REFUSED_BY_SCHEMA,
    decode_data_uri,
    failure_text,
    refused_fields,
)
from tests.support.declared_inputs import declared_inputs, refused_by_schema
from tests.support.video_facts import read_video, top_level_boxes

# Run and counted by `python -m bench.reliability` (bench/reports/RELIABILITY.md).
pytestmark = pytest.mark.reliability

DECLARED = declared_inputs()

SMALL = dict(
    prompt="a paper boat drifting down a rainy street",
    width=64,
    height=64,
    num_frames=16,
    num_inference_steps=2,
    seed=42,
)


def progress_percentages(logs: str) -> list[int]:
    return [int(m.group(1)) for line in logs.splitlines() if (m := re.match(PROGRESS_REGEX, line))]


def test_health_check_is_ready(server):
    assert server.health()["status"] == "READY"


def test_sync_prediction_returns_the_video(server, tmp_path):
    result = server.predict({**SMALL, "fps": 12})
    assert result["status"] == "succeeded", result.get("error")
    mime, video = decode_data_uri(result["output"])
    assert mime == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(video)
    facts = read_video(path)
    assert (facts.codec, facts.pixel_format, facts.width, facts.height) == (
        "h264",
        "yuv420p",
        64,
        64,
    )
    assert facts.num_frames == 16 and facts.fps == 12
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat")

    logs = result["logs"]
    assert "Seed: 42" in logs
    assert "TINY RANDOM" in logs
    percentages = progress_percentages(logs)
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert len(percentages) >= 2 + 16  # denoising steps and every encoded frame


@pytest.mark.parametrize(
    "output_format, mime, codec", [("webm", "video/webm", "vp9"), ("gif", "image/gif", "gif")]
)
def test_other_formats(server, tmp_path, output_format, mime, codec):
    result = server.predict({**SMALL, "num_frames": 8, "output_format": output_format})
    assert result["status"] == "succeeded", result.get("error")
    got_mime, video = decode_data_uri(result["output"])
    assert got_mime == mime
    path = tmp_path / f"out.{output_format}"
    path.write_bytes(video)
    facts = read_video(path)
    assert (
        facts.codec == codec and facts.num_frames == 8 and (facts.width, facts.height) == (64, 64)
    )


def test_same_seed_gives_the_same_video_and_no_seed_prints_one(server):
    first = server.predict(SMALL)
    second = server.predict(SMALL)
    assert first["output"] == second["output"]

    random = server.predict({name: value for name, value in SMALL.items() if name != "seed"})
    seed = int(re.search(r"Seed: (\d+) \(random", random["logs"]).group(1))
    replay = server.predict({**SMALL, "seed": seed})
    assert replay["output"] == random["output"]


def test_a_null_input_is_refused_by_the_schema_and_taken_as_left_out_without_it(
    server, server_without_schema
):
    """coglet 0.23.1 does not honour the schema's `nullable`: with the schema, `"seed": null` is a
    422 naming seed (README "Inputs": leave an input out instead). Without a schema, null means
    left out."""
    refused = server.predict({**SMALL, "seed": None})
    assert refused["status"] == REFUSED_BY_SCHEMA and refused_fields(refused) == ["seed"]
    assert "null" in failure_text(refused)
    random = server_without_schema.predict(
        {**SMALL, "tier": None, "seed": None, "num_frames": 8, "num_inference_steps": 1}
    )
    assert random["status"] == "succeeded" and "(random;" in random["logs"]


def test_without_a_schema_our_checks_alone_refuse_a_bad_input_naming_the_field(
    server_without_schema,
):
    """A smoke test of a bare server (no `.cog/openapi_schema.json`): values of the wrong type or
    out of range reach run() as sent and our checks refuse them, naming the field, with no
    traceback; the worker lives on. Every rule is held in-process by tests/test_inputs.py and
    tests/test_fuzz.py, and through the schema-served server by the tests above and below."""
    for bad, field in [({"tier": "two"}, "tier"), ({"num_frames": 2.5}, "num_frames")]:
        result = server_without_schema.predict({**SMALL, **bad})
        assert result["status"] == "failed", result
        assert f"InputError: {field} must " in result["error"], result["error"]
        assert "Traceback" not in result["error"]
    unknown = server_without_schema.predict({**SMALL, "colour": "red"})
    assert unknown["status"] == "failed" and "colour" in unknown["error"], unknown


def test_async_prediction_reports_start_logs_and_completion_by_webhook(server, webhook):
    # Long enough (a few seconds) for coglet's throttled log webhooks to fire mid-prediction.
    # (start_async checks the 202 that accepts it.)
    prediction_id = server.start_async(
        {**SMALL, "num_inference_steps": 60},
        webhook.url,
        events=("start", "logs", "output", "completed"),
    )
    events = webhook.wait_for_terminal(timeout=300)
    assert events[0]["status"] == "processing"
    assert events[-1]["status"] == "succeeded"
    assert all(event["id"] == prediction_id for event in events)
    assert events[-1]["output"].startswith("data:video/mp4;base64,")
    # Logs arrive while the prediction runs, not only at the end.
    assert any(progress_percentages(event.get("logs") or "") for event in events[:-1])
    assert progress_percentages(events[-1]["logs"])[-1] == 100
    server.wait_until_ready(timeout=10)


BAD_INPUTS = [
    ({"tier": 1}, "tier"),
    ({"tier": "two"}, "tier"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"prompt": 12}, "prompt"),
    ({"negative_prompt": {"a": 1}}, "negative_prompt"),
    ({"num_frames": 97}, "num_frames"),
    ({"num_frames": "many"}, "num_frames"),
    ({"num_frames": 2.5}, "num_frames"),
    ({"width": 63}, "width"),
    ({"width": 100}, "width"),  # within the schema's range, not a multiple of 8: our check alone
    ({"height": 500}, "height"),  # the same rule, for the other side
    ({"width": 4096}, "width"),
    ({"height": -8}, "height"),
    ({"height": [64]}, "height"),
    ({"fps": 0}, "fps"),
    ({"fps": True}, "fps"),
    ({"num_inference_steps": 101}, "num_inference_steps"),
    ({"guidance_scale": 50}, "guidance_scale"),
    ({"guidance_scale": "1e400"}, "guidance_scale"),
    ({"seed": -5}, "seed"),
    ({"seed": 2**40}, "seed"),
    ({"seed": "lucky"}, "seed"),
    ({"output_format": "mov"}, "output_format"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(
    "bad, field", BAD_INPUTS, ids=[f"{k}={v!r}" for d, _ in BAD_INPUTS for k, v in d.items()]
)
def test_bad_input_fails_naming_the_field_and_the_server_stays_ready(each_server, bad, field):
    """With the schema, Cog answers 422 naming the field for what the schema can say (types,
    ranges, choices, lengths) and drops an unknown field, as Replicate does; the rest, and
    everything without a schema, is refused by our own checks, also naming the field."""
    result = each_server.predict({**SMALL, **bad})
    if each_server.schema is not None and field not in DECLARED:
        assert result["status"] == "succeeded", failure_text(result)
    elif each_server.schema is not None and refused_by_schema(DECLARED[field], bad[field]):
        assert result["status"] == REFUSED_BY_SCHEMA, result
        assert set(refused_fields(result)) == {field}
    else:
        assert result["status"] == "failed", result
        # Our check's message, which starts with the field. (A model's own error, such as
        # diffusers' "`height` and `width` have to be divisible by 8", names it too, but only
        # once the request has reached a model.)
        named = f"InputError: {field} must " if field in DECLARED else field
        assert named in result["error"], result["error"]
        assert "Traceback" not in result["error"]
    # coglet frees the slot just after it answers: health reads BUSY for a moment, then READY.
    each_server.wait_until_ready(timeout=10)
    # And the next good prediction still works.
    if field == "colour":
        assert (
            each_server.predict({**SMALL, "num_frames": 8, "num_inference_steps": 1})["status"]
            == "succeeded"
        )
