"""Storyboard shots (docs/LONG_SHOTS.md) through Cog's real server: a long tier-2 shot that follows
a prompt schedule, film-rate playback on both tiers, and bad schedules and rates refused naming the
field."""

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
from tests.support.long_shot import LONG_SHOT
from tests.support.video_facts import psnr, read_video

DECLARED = declared_inputs()
SMALL = dict(
    prompt="a paper boat drifting down a rainy street",
    width=64,
    height=64,
    num_frames=16,
    num_inference_steps=2,
    seed=42,
)


def video_of(result: dict, path):
    assert result["status"] == "succeeded", failure_text(result)
    _, video = decode_data_uri(result["output"])
    path.write_bytes(video)
    return read_video(path)


def test_a_long_shot_follows_its_schedule_and_says_how_it_was_read(server, tmp_path):
    """96 frames in three segments come back as one 96-frame video, and the logs say how the
    schedule was read. (That its frames are diffusers' stock FreeNoise pipeline's is held
    in-process, by tests/test_tier2_pipeline.py.)"""
    result = server.predict(LONG_SHOT)
    facts = video_of(result, tmp_path / "shot.mp4")
    assert (facts.num_frames, facts.fps, facts.width, facts.height) == (96, 8, 64, 64)
    assert "Prompt schedule as understood" in result["logs"]
    assert "frames 48–95: 'a man in a red coat, he sits down'" in result["logs"]


@pytest.mark.parametrize(
    "inputs, ratio",
    [
        (dict(SMALL, tier=2), 3),
        (dict(SMALL, tier=3, width=128, num_frames=8, guidance_scale=5.0), 4),
    ],
    ids=["tier 2 at 8 fps", "tier 3 at 6 fps"],
)
def test_film_rate_playback_keeps_the_duration_and_every_generated_frame(
    server, tmp_path, inputs, ratio
):
    plain = video_of(server.predict(inputs), tmp_path / "plain.mp4")
    result = server.predict({**inputs, "interpolate_to_fps": 24})
    smooth = video_of(result, tmp_path / "smooth.mp4")
    assert smooth.fps == 24 and (smooth.width, smooth.height) == (plain.width, plain.height)
    assert smooth.num_frames == plain.num_frames * ratio
    assert smooth.num_frames / smooth.fps == plain.num_frames / plain.fps  # to the frame
    # Each generated frame plays at its own time: the smooth video's frame there is that frame as
    # the plain video shows it (both lossy encodes of it), more alike than any other pair.
    for k in range(plain.num_frames):
        at_k = psnr(smooth.frames[k * ratio], plain.frames[k])
        others = [
            psnr(smooth.frames[k * ratio], plain.frames[j])
            for j in range(plain.num_frames)
            if j != k
        ]
        assert at_k > 25 and at_k > max(others) + 10, (k, at_k, max(others))
    assert "Playing at 24 fps" in result["logs"]
    percentages = [
        int(m.group(1))
        for line in result["logs"].splitlines()
        if (m := re.match(PROGRESS_REGEX, line))
    ]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert ", interpolating]" in result["logs"]


BAD = [
    ({"prompt_schedule": "he opens the door"}, "prompt_schedule"),
    ({"prompt_schedule": "4: he opens the door | 8: he steps inside"}, "prompt_schedule"),
    ({"prompt_schedule": "0: a door | 8: a hall | 8: a chair"}, "prompt_schedule"),
    ({"prompt_schedule": "0: a door | 16: a hall"}, "prompt_schedule"),  # num_frames is 16
    ({"prompt_schedule": "0: a door | 8:  "}, "prompt_schedule"),
    ({"prompt_schedule": " | ".join(f"{frame}: t" for frame in range(17))}, "prompt_schedule"),
    ({"prompt_schedule": "0: " + "a" * 4000}, "prompt_schedule"),
    ({"prompt_schedule": 12}, "prompt_schedule"),
    ({"prompt_schedule": "0: a door", "tier": 3}, "prompt_schedule"),
    ({"interpolate_to_fps": 6}, "interpolate_to_fps"),  # below fps (8)
    ({"interpolate_to_fps": 20}, "interpolate_to_fps"),  # not a whole multiple of 8
    ({"interpolate_to_fps": 24, "output_format": "gif"}, "interpolate_to_fps"),
    ({"interpolate_to_fps": 61}, "interpolate_to_fps"),
    ({"interpolate_to_fps": 0}, "interpolate_to_fps"),
    ({"interpolate_to_fps": "24"}, "interpolate_to_fps"),
    ({"interpolate_to_fps": 24.5}, "interpolate_to_fps"),
]


@pytest.mark.parametrize("bad, field", BAD, ids=[repr(bad)[:60] for bad, _ in BAD])
def test_a_bad_schedule_or_rate_is_refused_naming_the_field(each_server, bad, field):
    result = each_server.predict({**SMALL, **bad})
    if each_server.schema is not None and refused_by_schema(DECLARED[field], bad[field]):
        assert result["status"] == REFUSED_BY_SCHEMA, result
        assert refused_fields(result) == [field]
    else:
        assert result["status"] == "failed", result
        assert result["error"].split("InputError: ", 1)[-1].startswith(field), result["error"]
        assert "Traceback" not in result["error"]
    each_server.wait_until_ready(timeout=10)
