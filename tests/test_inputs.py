"""The input contract: tier defaults, and the exact error each bad input gets."""

from __future__ import annotations

import re

import pytest

from pipelines.draft import DRAFT_GUIDANCE, DRAFT_STEPS
from pipelines.inputs import (
    CAMERA_MOTION_CHOICES,
    DEFAULTS,
    INPUT_NAMES,
    LIMITS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    TIER_DEFAULTS,
    TIER_LIMITS,
    TIERS,
    InputError,
    resolve_request,
)
from pipelines.video import OUTPUT_FORMATS
from tests.support.declared_inputs import declared_inputs

# Run and counted by `python -m bench.reliability` (bench/reports/RELIABILITY.md).
pytestmark = pytest.mark.reliability

DECLARED = declared_inputs()


def test_tier2_defaults_fill_what_the_caller_left_out():
    request = resolve_request({"prompt": "a fox", "seed": 7})
    assert (
        request.tier,
        request.num_frames,
        request.width,
        request.height,
        request.fps,
        request.num_inference_steps,
        request.guidance_scale,
        request.output_format,
    ) == (2, 16, 512, 512, 8, 25, 7.5, "mp4")
    assert request.seed == 7 and not request.seed_was_random


def test_a_null_input_is_left_out_the_tier_too():
    """A server without the schema hands null through (README "Inputs"): every input, the tier
    included, then takes its default."""
    sent = {"prompt": "a fox", "seed": 7}
    left_out = resolve_request(sent)
    assert resolve_request({**sent, "tier": None}) == left_out
    assert resolve_request({**sent, "tier": None, "num_frames": None, "fps": None}) == left_out


def test_tier3_defaults():
    request = resolve_request({"tier": 3, "prompt": "a fox", "seed": 7})
    assert (request.num_frames, request.width, request.height, request.fps) == (25, 1024, 576, 6)


def test_missing_seed_draws_a_full_32_bit_seed():
    seeds = {resolve_request({"prompt": "a fox"}).seed for _ in range(200)}
    assert all(0 <= seed <= MAX_SEED for seed in seeds)
    assert max(seeds) > 2**16  # not a 16-bit seed
    assert resolve_request({"prompt": "a fox"}).seed_was_random


def test_seed_limits_are_inclusive():
    assert resolve_request({"prompt": "x", "seed": 0}).seed == 0
    assert resolve_request({"prompt": "x", "seed": MAX_SEED}).seed == MAX_SEED


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("tier", 1, "tier must be one of 2, 3, 4; got 1 (int)"),
        ("tier", "2", "tier must be one of 2, 3, 4; got '2' (str)"),
        ("tier", True, "tier must be one of 2, 3, 4; got True (bool)"),
        ("tier", 2.0, "tier must be one of 2, 3, 4; got 2.0 (float)"),
        ("prompt", "   ", "prompt must describe the clip for tier 2; got an empty prompt"),
        ("prompt", 42, "prompt must be text; got 42 (int)"),
        ("prompt", "x" * 4001, "prompt must be at most 4000 characters; got 4001"),
        ("negative_prompt", ["a"], "negative_prompt must be text; got ['a'] (list)"),
        ("num_frames", 97, "num_frames must be from 8 to 96 for tier 2; got 97"),
        ("num_frames", 7, "num_frames must be from 8 to 96 for tier 2; got 7"),
        (
            "num_frames",
            16.0,
            "num_frames must be an integer from 8 to 96 for tier 2; got 16.0 (float)",
        ),
        (
            "num_frames",
            "16",
            "num_frames must be an integer from 8 to 96 for tier 2; got '16' (str)",
        ),
        (
            "width",
            500,
            "width must be a multiple of 8 (the VAE works on 8×8 blocks); got 500, nearest "
            "allowed: 496 or 504",
        ),
        (
            "height",
            500,
            "height must be a multiple of 8 (the VAE works on 8×8 blocks); got 500, nearest "
            "allowed: 496 or 504",
        ),
        ("width", 2048, "width must be from 64 to 1024 for tier 2; got 2048"),
        ("height", 0, "height must be from 64 to 1024 for tier 2; got 0"),
        ("height", -512, "height must be from 64 to 1024 for tier 2; got -512"),
        ("fps", 0, "fps must be from 1 to 30; got 0"),
        ("fps", 61, "fps must be from 1 to 30; got 61"),
        ("num_inference_steps", 0, "num_inference_steps must be from 1 to 100; got 0"),
        ("num_inference_steps", 1000, "num_inference_steps must be from 1 to 100; got 1000"),
        ("guidance_scale", 0.5, "guidance_scale must be from 1.0 to 20.0; got 0.5"),
        (
            "guidance_scale",
            float("nan"),
            "guidance_scale must be a number from 1.0 to 20.0; got nan (float)",
        ),
        (
            "guidance_scale",
            "high",
            "guidance_scale must be a number from 1.0 to 20.0; got 'high' (str)",
        ),
        ("seed", -1, f"seed must be from 0 to {MAX_SEED}; got -1"),
        ("seed", 2**32, f"seed must be from 0 to {MAX_SEED}; got {2**32}"),
        ("seed", 1.5, f"seed must be an integer from 0 to {MAX_SEED}; got 1.5 (float)"),
        (
            "output_format",
            "avi",
            "output_format must be one of 'mp4', 'gif', 'webm'; got 'avi' (str)",
        ),
        ("draft", 1, "draft must be true or false; got 1 (int)"),
        ("draft", "false", "draft must be true or false; got 'false' (str)"),
        (
            "camera_motion",
            "dolly_in",
            "camera_motion must be one of 'none', 'zoom_in', 'zoom_out', 'pan_left'",
        ),
        (
            "camera_motion",
            "zoom_in",
            "camera_motion needs tier 2's draft mode (tier=2, draft=true): the camera moves are "
            "motion LoRAs for AnimateDiff-Lightning's motion module; got camera_motion='zoom_in' "
            "with draft=false",
        ),
        ("camera_motion_strength", 1.6, "camera_motion_strength must be from 0.0 to 1.5; got 1.6"),
        (
            "camera_motion_strength",
            True,
            "camera_motion_strength must be a number from 0.0 to 1.5; got True (bool)",
        ),
        ("translate_prompt", "yes", "translate_prompt must be true or false; got 'yes' (str)"),
        ("translate_prompt", 0, "translate_prompt must be true or false; got 0 (int)"),
        (
            "disable_safety_checker",
            "true",
            "disable_safety_checker must be true or false; got 'true' (str)",
        ),
        (
            "disable_safety_checker",
            1.0,
            "disable_safety_checker must be true or false; got 1.0 (float)",
        ),
        ("bogus", 1, "unknown input 'bogus'; the inputs are: tier, prompt, negative_prompt"),
    ],
)
def test_bad_input_names_field_value_and_what_is_allowed(field, value, message):
    inputs = {"prompt": "a fox", field: value}
    with pytest.raises(InputError) as error:
        resolve_request(inputs)
    assert str(error.value).startswith(message), str(error.value)


def test_integral_float_guidance_and_int_guidance_are_accepted():
    assert resolve_request({"prompt": "x", "guidance_scale": 5}).guidance_scale == 5.0


# run()'s signature (what `cog build` puts in the schema, and Replicate in its form) and the checks
# in pipelines/inputs.py must say the same thing: same names, defaults, ranges, choices and types.


def test_the_checks_know_exactly_the_inputs_run_declares_in_its_order():
    assert tuple(DECLARED) == INPUT_NAMES
    per_tier = set(TIER_DEFAULTS[2])
    assert all(set(defaults) == per_tier for defaults in TIER_DEFAULTS.values())
    assert set(DEFAULTS) | per_tier == set(INPUT_NAMES) and not set(DEFAULTS) & per_tier


def test_every_input_has_a_description():
    for name, declared in DECLARED.items():
        assert declared.field.description and declared.field.description.strip(), name


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_a_default_shared_by_the_tiers_is_the_declared_default(name):
    assert DECLARED[name].field.default == DEFAULTS[name]


@pytest.mark.parametrize("name", sorted(TIER_DEFAULTS[2]))
def test_a_default_that_differs_by_tier_is_declared_empty_and_described_per_tier(name):
    declared = DECLARED[name]
    assert declared.optional and declared.field.default is None
    for tier in TIERS:
        default = TIER_DEFAULTS[tier][name]
        if name in TIER_LIMITS[tier]:
            low, high = TIER_LIMITS[tier][name]
            expected = f"Tier {tier}: {low}–{high}, default {default}."
        else:
            expected = f"Tier {tier}: default {default}"
        assert expected in declared.field.description, (name, expected)


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_a_range_shared_by_the_tiers_is_the_declared_range(name):
    declared = DECLARED[name]
    assert (declared.field.ge, declared.field.le) == LIMITS[name]
    # A float range is checked as a number, an int range as an integer: the declared type says
    # which.
    assert declared.type is type(LIMITS[name][0])


@pytest.mark.parametrize("name", sorted(TIER_LIMITS[2]))
def test_a_range_that_differs_by_tier_is_declared_as_the_widest(name):
    declared = DECLARED[name]
    lows, highs = zip(*(TIER_LIMITS[tier][name] for tier in TIERS))
    assert (declared.field.ge, declared.field.le) == (min(lows), max(highs))
    assert declared.type is int


def test_choices_and_lengths_are_the_checked_ones():
    assert DECLARED["tier"].field.choices == list(TIERS)
    assert DECLARED["output_format"].field.choices == list(OUTPUT_FORMATS)
    assert DECLARED["camera_motion"].field.choices == list(CAMERA_MOTION_CHOICES)
    assert DECLARED["draft"].type is bool and DECLARED["camera_motion"].type is str
    for name in ("prompt", "negative_prompt", "prompt_schedule"):
        assert DECLARED[name].field.max_length == MAX_PROMPT_CHARS
        assert DECLARED[name].type is str


# interpolate_to_fps must also be a whole multiple of fps: its ends are probed at fps 1, from which
# every rate is reachable.
# Tier 4 takes 1280 pixels high only in portrait: 704 wide.
PROBED_WITH = {"interpolate_to_fps": {"fps": 1}, "height": {"width": 704}}


def _checked(name: str, value, tier: int = 2):
    return resolve_request(
        {"tier": tier, "prompt": "a fox", "seed": 1, **PROBED_WITH.get(name, {}), name: value}
    )


@pytest.mark.parametrize("name", [name for name, d in DECLARED.items() if d.field.ge is not None])
def test_the_declared_ends_are_accepted_and_just_past_them_refused(name):
    """Probed with the signature's own numbers, so a check looser or stricter than the declaration
    shows. A range that differs by tier is probed at its ends in the tier that has them."""
    field = DECLARED[name].field
    step = 1 if DECLARED[name].type is int else 0.01
    for end, outside in ((field.ge, field.ge - step), (field.le, field.le + step)):
        tiers = [t for t in TIERS if name not in TIER_LIMITS[t] or end in TIER_LIMITS[t][name]]
        assert tiers, (name, end)
        assert getattr(_checked(name, end, tiers[0]), name) == end
        with pytest.raises(InputError, match=f"^{name} must be"):
            _checked(name, outside, tiers[0])


@pytest.mark.parametrize(
    "name", [name for name, d in DECLARED.items() if d.type is int and name != "tier"]
)
def test_an_int_input_refuses_a_fraction_and_text(name):
    field = DECLARED[name].field
    for value in (field.ge + 0.5, str(field.ge)):
        with pytest.raises(InputError, match=f"^{name} must be an integer"):
            _checked(name, value)


@pytest.mark.parametrize("name", [name for name, d in DECLARED.items() if d.type is bool])
def test_a_bool_input_takes_true_or_false_and_nothing_that_looks_like_one(name):
    assert not DECLARED[name].optional
    for value in (True, False):
        assert getattr(_checked(name, value), name) is value
    assert getattr(resolve_request({"prompt": "a fox"}), name) is DEFAULTS[name]  # left out
    for value in (1, 0, "true", "false", "", [True]):
        with pytest.raises(InputError, match=f"^{name} must be true or false; got "):
            _checked(name, value)


def test_the_new_switches_default_to_translating_and_checking():
    request = resolve_request({"prompt": "a fox"})
    assert request.translate_prompt is True and request.disable_safety_checker is False


def test_tier3_takes_an_image_instead_of_a_prompt():
    request = resolve_request({"tier": 3, "image": "https://example.com/a.png", "seed": 1})
    assert (
        request.image,
        request.prompt,
        request.motion_bucket_id,
        request.noise_aug_strength,
    ) == ("https://example.com/a.png", "", 127, 0.02)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (
            {"tier": 2, "prompt": "x", "image": "https://example.com/a.png"},
            "image is only used by tier 3",
        ),
        (
            {"tier": 3, "prompt": " "},
            "prompt must describe the keyframe for tier 3 when no image is given",
        ),
        (
            {"tier": 3, "prompt": "x", "num_frames": 26},
            "num_frames must be from 8 to 25 for tier 3; got 26",
        ),
        (
            {"tier": 3, "prompt": "x", "motion_bucket_id": 256},
            "motion_bucket_id must be from 1 to 255; got 256",
        ),
        (
            {"tier": 3, "prompt": "x", "motion_bucket_id": "high"},
            "motion_bucket_id must be an integer from 1 to 255",
        ),
        (
            {"tier": 3, "prompt": "x", "noise_aug_strength": -0.1},
            "noise_aug_strength must be from 0.0 to 1.0; got -0.1",
        ),
    ],
)
def test_tier3_bad_inputs(inputs, message):
    with pytest.raises(InputError, match="^" + re.escape(message)):
        resolve_request(inputs)


def test_draft_takes_its_recipes_steps_and_guidance_and_remembers_what_was_sent():
    request = resolve_request(
        {
            "prompt": "a fox",
            "seed": 1,
            "draft": True,
            "num_inference_steps": 40,
            "guidance_scale": 9,
        }
    )
    assert (request.draft, request.num_inference_steps, request.guidance_scale) == (
        True,
        DRAFT_STEPS,
        DRAFT_GUIDANCE,
    )
    assert request.ignored_by_draft == {"num_inference_steps": 40, "guidance_scale": 9}
    assert resolve_request({"prompt": "a fox", "draft": True}).ignored_by_draft == {}
    # Still checked: a value no mode accepts is refused in draft too.
    with pytest.raises(InputError, match=r"^num_inference_steps must be from 1 to 100"):
        resolve_request({"prompt": "a fox", "draft": True, "num_inference_steps": 0})
    standard = resolve_request({"prompt": "a fox", "seed": 1, "num_inference_steps": 40})
    assert (standard.draft, standard.num_inference_steps, standard.camera_motion) == (
        False,
        40,
        "none",
    )


@pytest.mark.parametrize("camera_motion", CAMERA_MOTION_CHOICES[1:])
def test_every_camera_motion_runs_in_a_tier2_draft_and_is_refused_elsewhere(camera_motion):
    request = resolve_request(
        {
            "prompt": "a fox",
            "draft": True,
            "camera_motion": camera_motion,
            "camera_motion_strength": 1.5,
        }
    )
    assert (request.camera_motion, request.camera_motion_strength) == (camera_motion, 1.5)
    for elsewhere, where in (
        ({"draft": False}, "draft=false"),
        ({"tier": 3}, "tier 3"),
        ({"tier": 3, "draft": True}, "tier 3"),
    ):
        with pytest.raises(InputError) as error:
            resolve_request({"prompt": "a fox", "camera_motion": camera_motion, **elsewhere})
        assert str(error.value).startswith("camera_motion needs tier 2's draft mode"), str(
            error.value
        )
        assert str(error.value).endswith(f"got camera_motion={camera_motion!r} with {where}")


def test_tier3_has_no_draft_mode():
    with pytest.raises(
        InputError,
        match=r"^draft is only available for tier 2 \(AnimateDiff-Lightning\) and tier 4 "
        r"\(FastWan\); "
        r"got draft=true with tier 3",
    ):
        resolve_request({"tier": 3, "prompt": "a fox", "draft": True})


# Storyboard shots (docs/LONG_SHOTS.md): a prompt schedule and film-rate playback.

SCHEDULE = "0: he opens the door | 24: he steps inside | 48: he sits down"


def test_a_schedule_is_read_into_frames_and_texts():
    request = resolve_request(
        {"prompt": "a man in a red coat", "num_frames": 96, "prompt_schedule": SCHEDULE}
    )
    assert request.prompt_schedule == (
        (0, "he opens the door"),
        (24, "he steps inside"),
        (48, "he sits down"),
    )
    # Spaces around the parts, a single segment, and leading zeros are all fine.
    assert resolve_request({"prompt": "x", "prompt_schedule": "  0 :a door  "}).prompt_schedule == (
        (0, "a door"),
    )
    assert resolve_request({"prompt": "x", "prompt_schedule": "00: a | 07: b"}).prompt_schedule == (
        (0, "a"),
        (7, "b"),
    )


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_no_schedule_is_an_empty_one(blank):
    assert resolve_request({"prompt": "x", "prompt_schedule": blank}).prompt_schedule == ()


@pytest.mark.parametrize(
    "schedule, message",
    [
        (
            "he opens the door",
            "prompt_schedule segment 1 ('he opens the door') must be 'frame: text', e.g. "
            '"0: he opens the door | 24: he steps inside | 48: he sits down"',
        ),
        ("0: a | 24 b", "prompt_schedule segment 2 ('24 b') must be 'frame: text'"),
        (
            "0: a | x: b",
            "prompt_schedule segment 2 ('x: b') must start with a whole frame number before the "
            "':'; got 'x'",
        ),
        (
            "0: a | 1.5: b",
            "prompt_schedule segment 2 ('1.5: b') must start with a whole frame number before the "
            "':'; got '1.5'",
        ),
        (
            "0: a | -4: b",
            "prompt_schedule segment 2 ('-4: b') must start with a whole frame number before the "
            "':'; got '-4'",
        ),
        ("0: a | ٣: b", "prompt_schedule segment 2 ('٣: b') must start with a whole frame number"),
        (
            "4: a | 8: b",
            "prompt_schedule segment 1 ('4: a') must start at frame 0, so that the first frame "
            "has a text; got 4",
        ),
        (
            "0: a | 12: b | 8: c",
            "prompt_schedule segment 3 ('8: c') must start after frame 12 (segment 2): frames "
            "strictly increase; got 8",
        ),
        (
            "0: a | 0: b",
            "prompt_schedule segment 2 ('0: b') must start after frame 0 (segment 1): frames "
            "strictly increase; got 0",
        ),
        (
            "0: a | 16: b",
            "prompt_schedule segment 2 ('16: b') must start before frame 16 (num_frames is 16, "
            "counted from 0); got 16",
        ),
        (
            "0: a | 8:   ",
            "prompt_schedule segment 2 ('8:') has no text after its frame number; every segment "
            "needs one",
        ),
        ("0: a |", "prompt_schedule segment 2 ('') must be 'frame: text'"),
        (
            " | ".join(f"{frame}: t" for frame in range(17)),
            "prompt_schedule must have at most 16 segments separated by '|'; got 17",
        ),
        (42, "prompt_schedule must be text; got 42 (int)"),
        ("0: " + "a" * 4000, "prompt_schedule must be at most 4000 characters; got 4003"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_segment_and_what_is_allowed(schedule, message):
    with pytest.raises(InputError) as error:
        resolve_request({"prompt": "a fox", "num_frames": 16, "prompt_schedule": schedule})
    assert str(error.value).startswith(message), str(error.value)


def test_sixteen_segments_are_allowed():
    schedule = " | ".join(f"{frame}: t" for frame in range(0, 96, 6))
    assert (
        len(
            resolve_request(
                {"prompt": "x", "num_frames": 96, "prompt_schedule": schedule}
            ).prompt_schedule
        )
        == 16
    )


def test_a_schedule_is_for_tier_2_only():
    with pytest.raises(InputError, match=r"^prompt_schedule is only used by tier 2"):
        resolve_request({"tier": 3, "prompt": "x", "prompt_schedule": "0: a"})


@pytest.mark.parametrize(
    "inputs, playback_fps, output_frames",
    [
        ({}, 8, 16),  # left out: plays at fps
        ({"interpolate_to_fps": 24}, 24, 48),
        ({"interpolate_to_fps": 8}, 8, 16),  # the same rate: nothing to make
        ({"interpolate_to_fps": 56, "num_frames": 96}, 56, 672),
        ({"interpolate_to_fps": 60, "fps": 30, "num_frames": 8}, 60, 16),
        ({"interpolate_to_fps": 24, "tier": 3}, 24, 100),  # tier 3: 25 frames at 6 fps
        ({"interpolate_to_fps": 50, "fps": 10, "output_format": "gif"}, 50, 80),
    ],
)
def test_a_playback_rate_keeps_the_duration(inputs, playback_fps, output_frames):
    request = resolve_request({"prompt": "x", **inputs})
    assert (request.playback_fps, request.output_frames) == (playback_fps, output_frames)
    assert request.output_frames / request.playback_fps == request.num_frames / request.fps


@pytest.mark.parametrize(
    "inputs, message",
    [
        (
            {"interpolate_to_fps": 6},
            "interpolate_to_fps must be at least fps (8), the rate the frames are made at; got 6",
        ),
        (
            {"interpolate_to_fps": 20},
            "interpolate_to_fps must be a whole multiple of fps (8), so that every generated "
            "frame is kept: 8, 16, 24, 32, 40, 48, 56; got 20",
        ),
        (
            {"interpolate_to_fps": 24, "fps": 7},
            "interpolate_to_fps must be a whole multiple of fps (7), so that every "
            "generated frame is kept: 7, 14, 21, 28, 35, 42, 49, 56; got 24",
        ),
        ({"interpolate_to_fps": 61}, "interpolate_to_fps must be from 1 to 60; got 61"),
        ({"interpolate_to_fps": 0}, "interpolate_to_fps must be from 1 to 60; got 0"),
        (
            {"interpolate_to_fps": 24.0},
            "interpolate_to_fps must be an integer from 1 to 60; got 24.0 (float)",
        ),
        (
            {"interpolate_to_fps": "24"},
            "interpolate_to_fps must be an integer from 1 to 60; got '24' (str)",
        ),
        (
            {"interpolate_to_fps": 24, "output_format": "gif"},
            "interpolate_to_fps must be a whole multiple of fps (8) that divides 100 for gif (GIF "
            "stores frame delays in hundredths of a second): none at this fps, so use mp4 or webm; "
            "got 24",
        ),
        (
            {"interpolate_to_fps": 30, "fps": 5, "output_format": "gif"},
            "interpolate_to_fps must be a whole multiple of fps (5) that divides 100 for gif (GIF "
            "stores frame delays in hundredths of a second): 5, 10, 20, 25, 50; got 30",
        ),
    ],
)
def test_a_rate_that_cannot_keep_every_frame_is_refused(inputs, message):
    with pytest.raises(InputError) as error:
        resolve_request({"prompt": "x", **inputs})
    assert str(error.value) == message


@pytest.mark.parametrize(
    "inputs, got",
    [
        ({"num_frames": 40}, "num_frames=40"),
        (
            {"num_frames": 16, "prompt_schedule": "0: a door | 8: a hall"},
            "num_frames=16 and a prompt_schedule",
        ),
    ],
)
def test_a_draft_is_one_window_without_a_schedule(inputs, got):
    """Long shots and schedules run through FreeNoise, which the draft's module does not."""
    with pytest.raises(InputError) as error:
        resolve_request({"prompt": "a fox", "draft": True, **inputs})
    assert str(error.value) == (
        "draft works on tier-2 clips of up to 32 frames without a prompt_schedule "
        f"(long shots and schedules need the standard mode); got draft=true with {got}"
    )
    assert resolve_request({"prompt": "a fox", "draft": True, "num_frames": 32}).draft
