"""Draft mode and camera moves through Cog's real HTTP server (coglet), as Replicate serves them:
a draft is run and says what it set aside, each camera move changes the clip and
is gone on the next request, a draft in between leaves a standard clip byte-identical, and the
new inputs are refused where they do not apply, naming the field."""

from __future__ import annotations

import pytest

from pipelines.draft import CAMERA_MOTIONS
from scripts.cog_server import (
    REFUSED_BY_SCHEMA,
    decode_data_uri,
    failure_text,
    refused_fields,
)
from tests.support.declared_inputs import declared_inputs, refused_by_schema
from tests.support.video_facts import read_video
from tests.test_server_reliability import cancel_in_stage

DECLARED = declared_inputs()
STANDARD = dict(
    prompt="a paper boat drifting down a rainy street",
    width=64,
    height=64,
    num_frames=8,
    num_inference_steps=2,
    seed=42,
)
DRAFT = dict(STANDARD, draft=True)


def video_of(result) -> bytes:
    assert result["status"] == "succeeded", failure_text(result)
    return decode_data_uri(result["output"])[1]


def frames_of(video: bytes, tmp_path, name: str):
    path = tmp_path / f"{name}.mp4"
    path.write_bytes(video)
    return read_video(path).frames


def test_a_draft_says_what_it_ignored_and_is_not_the_standard_clip(server, tmp_path):
    """The server runs the draft for `draft: true` and says what it set aside. (That a draft's
    frames are the model card's recipe is held in-process, by tests/test_draft.py.)"""
    result = server.predict(DRAFT)
    served = frames_of(video_of(result), tmp_path, "served")
    assert (
        "Draft (AnimateDiff-Lightning): 4 steps, guidance 1.0, no camera move; draft ignores "
        "num_inference_steps and guidance_scale (sent: num_inference_steps=2)" in result["logs"]
    )
    assert served.shape == (8, 64, 64, 3)
    assert video_of(result) != video_of(server.predict(STANDARD))


def test_each_camera_motion_changes_the_clip_and_is_gone_on_the_next_request(server):
    plain = video_of(server.predict(DRAFT))
    moved = {}
    for camera_motion in CAMERA_MOTIONS:
        moved[camera_motion] = video_of(server.predict({**DRAFT, "camera_motion": camera_motion}))
        assert moved[camera_motion] != plain, camera_motion
        # The next request without a move is the plain draft again, byte for byte.
        assert video_of(server.predict(DRAFT)) == plain, f"{camera_motion} stayed active"
    assert len(set(moved.values())) == len(CAMERA_MOTIONS)  # each move is its own LoRA
    # Strength is applied: 0 is no move at all, and a weaker move is another clip.
    assert (
        video_of(
            server.predict({**DRAFT, "camera_motion": "zoom_in", "camera_motion_strength": 0.0})
        )
        == plain
    )
    weaker = video_of(
        server.predict({**DRAFT, "camera_motion": "zoom_in", "camera_motion_strength": 0.3})
    )
    assert weaker not in (plain, moved["zoom_in"])


def test_a_draft_in_between_leaves_the_standard_clip_byte_identical(server):
    before = video_of(server.predict(STANDARD))
    draft = video_of(
        server.predict(
            {**DRAFT, "camera_motion": "roll_anticlockwise", "camera_motion_strength": 1.5}
        )
    )
    after = video_of(server.predict(STANDARD))
    assert after == before and draft != before


def test_a_camera_move_cancelled_mid_denoising_leaves_the_next_clips_unchanged(server):
    """Cog's cancel lands between two of the draft's UNet passes, with Lightning's modules in the
    UNet and the LoRA on: the next plain draft and the next standard clip are as before it."""
    plain, standard = video_of(server.predict(DRAFT)), video_of(server.predict(STANDARD))
    # 512×512 × 32 frames: each of the 4 steps takes seconds on tiny weights, time for the cancel.
    slow = dict(DRAFT, camera_motion="pan_left", width=512, height=512, num_frames=32)
    final, _ = cancel_in_stage(server, "denoising", slow)
    assert final["status"] == "canceled" and "Draft (AnimateDiff-Lightning)" in final["logs"]
    assert video_of(server.predict(DRAFT)) == plain
    assert video_of(server.predict(STANDARD)) == standard


BAD_INPUTS = [
    ({"camera_motion": "zoom_in"}, "camera_motion", "needs tier 2's draft mode"),
    ({"camera_motion": "pan_right", "draft": False}, "camera_motion", "with draft=false"),
    ({"tier": 3, "camera_motion": "tilt_down", "width": 128}, "camera_motion", "with tier 3"),
    ({"tier": 3, "draft": True, "width": 128}, "draft", "only available for tier 2"),
    ({"draft": "yes"}, "draft", "true or false"),
    ({"draft": 1}, "draft", "true or false"),
    ({"camera_motion": "dolly_zoom", "draft": True}, "camera_motion", "must be one of"),
    (
        {"camera_motion": "zoom_out", "draft": True, "camera_motion_strength": 1.6},
        "camera_motion_strength",
        "from 0.0 to 1.5",
    ),
    (
        {"camera_motion": "zoom_out", "draft": True, "camera_motion_strength": "strong"},
        "camera_motion_strength",
        "a number",
    ),
]


@pytest.mark.parametrize(
    "bad, field, message", BAD_INPUTS, ids=[repr(bad) for bad, _, _ in BAD_INPUTS]
)
def test_a_draft_input_where_it_does_not_apply_fails_naming_the_field(
    each_server, bad, field, message
):
    """With the schema, Cog's 422 for what it can say (types, choices, ranges); the rest, and
    everything without a schema, a failed prediction whose error names the field."""
    result = each_server.predict({**STANDARD, **bad})
    if each_server.schema is not None and refused_by_schema(DECLARED[field], bad[field]):
        assert result["status"] == REFUSED_BY_SCHEMA, result
        assert set(refused_fields(result)) == {field}
    else:
        assert result["status"] == "failed", result
        error = result["error"].split("InputError: ", 1)[-1]
        assert error.startswith(f"{field} ") and message in error, error
    each_server.wait_until_ready(timeout=10)
