"""The checks behind the input contract: every value a request sends, checked here.

The inputs are declared once, in `run()`'s signature in predict.py, where `cog build` reads them
into the OpenAPI schema that Replicate's form and Cog's server use. This module holds the limits
that the checks apply: the same ranges as the signature (tests/test_inputs.py keeps the two in
agreement), plus what a schema cannot express: limits and defaults that differ by tier, sizes in
multiples of 8, which inputs go with which tier. Cog's server accepts anything when no schema is
present, so these checks are the line of defence.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from pipelines.draft import CAMERA_MOTIONS, DRAFT_GUIDANCE, DRAFT_STEPS, NO_CAMERA_MOTION
from pipelines.tier4_draft import DMD_TIMESTEPS
from pipelines.tier4_draft import DRAFT_GUIDANCE as TIER4_DRAFT_GUIDANCE
from pipelines.video import OUTPUT_FORMATS

TIERS = (2, 3, 4)
MAX_PROMPT_CHARS = (
    4000  # far past what CLIP reads (77 tokens); longer is a client bug, not a prompt
)
MAX_SEED = 2**32 - 1

# run()'s parameters, in order: the only names a request may carry.
INPUT_NAMES = (
    "tier",
    "prompt",
    "negative_prompt",
    "num_frames",
    "width",
    "height",
    "fps",
    "num_inference_steps",
    "guidance_scale",
    "seed",
    "output_format",
    "image",
    "motion_bucket_id",
    "noise_aug_strength",
    "draft",
    "camera_motion",
    "camera_motion_strength",
    "prompt_schedule",
    "interpolate_to_fps",
    "translate_prompt",
    "disable_safety_checker",
)
# camera_motion's choices: none, then the moves that have a motion LoRA (pipelines/draft.py).
CAMERA_MOTION_CHOICES = (NO_CAMERA_MOTION, *CAMERA_MOTIONS)

# What a left-out (or null) input becomes when it is the same for every tier.
DEFAULTS: dict[str, Any] = dict(
    tier=2,
    prompt="",
    negative_prompt="",
    seed=None,
    output_format="mp4",
    image=None,
    motion_bucket_id=127,  # SVD 1.1 was fine-tuned at 127
    noise_aug_strength=0.02,  # diffusers' default for SVD
    draft=False,
    camera_motion=NO_CAMERA_MOTION,
    camera_motion_strength=0.75,  # AnimateDiff-Lightning's model card: motion LoRAs at 0.7-0.8
    prompt_schedule="",  # no schedule: the prompt describes every frame
    interpolate_to_fps=None,  # play at fps, the generated frames only
    translate_prompt=True,  # Thai to English (pipelines/prompts.py)
    # the checker runs unless a caller turns it off (pipelines/safety.py)
    disable_safety_checker=False,
)
# Tier 2: AnimateDiff v3 on SD 1.5, which was trained at 512×512 and 16 frames (the motion module
# has positions for at most 32; longer clips go through FreeNoise's windows, pipelines/tier2.py).
# Tier 3: SVD-XT 1.1 was fine-tuned for 25 frames at 1024×576 and 6 fps (diffusers conditions it on
# fps - 1). Guidance: SD 1.5 expects about 7.5, SDXL about 5.
# Tier 4: Wan 2.2 TI2V-5B's published defaults, Wan-Video/Wan2.2 wan/configs/wan_ti2v_5B.py
# (frame_num 121, sample_fps 24, sample_steps 50, sample_guide_scale 5.0) and SIZE_CONFIGS in
# wan/configs/__init__.py (ti2v-5B: 1280*704); its scheduler (flow_shift 5.0) is the repository's.
TIER_DEFAULTS: dict[int, dict[str, Any]] = {
    2: dict(
        num_frames=16, width=512, height=512, fps=8, num_inference_steps=25, guidance_scale=7.5
    ),
    3: dict(
        num_frames=25, width=1024, height=576, fps=6, num_inference_steps=25, guidance_scale=5.0
    ),
    4: dict(
        num_frames=121, width=1280, height=704, fps=24, num_inference_steps=50, guidance_scale=5.0
    ),
}

# (lowest, highest), inclusive, for every tier.
LIMITS: dict[str, tuple[float, float]] = dict(
    fps=(1, 30),
    num_inference_steps=(1, 100),
    guidance_scale=(1.0, 20.0),  # 1 turns classifier-free guidance off
    seed=(0, MAX_SEED),  # a full 32-bit seed: every value a random draw can print
    motion_bucket_id=(1, 255),  # SVD's micro-conditioning range
    noise_aug_strength=(0.0, 1.0),
    camera_motion_strength=(0.0, 1.5),  # past 1 the LoRA is extrapolated: stronger, less stable
    # Also a whole multiple of fps (so every generated frame lands on a played one) and, for gif, a
    # rate GIF can store: `playback_rates`. 60 is what screens refresh at; film is cut at 24.
    interpolate_to_fps=(1, 60),
)
# (lowest, highest) per tier. Sizes must be multiples of 8 (the VAE's downsampling factor); below
# 256 pixels a side the models produce little of use, but small sizes are allowed for previews.
TIER_LIMITS: dict[int, dict[str, tuple[int, int]]] = {
    2: dict(num_frames=(8, 96), width=(64, 1024), height=(64, 1024)),
    3: dict(num_frames=(8, 25), width=(64, 1024), height=(64, 1024)),
    # Landscape or portrait up to 1280 a side, within TIER4_MAX_PIXELS.
    4: dict(num_frames=(9, 121), width=(64, 1280), height=(64, 1280)),
}
SIZE_MULTIPLE = 8
# Tier 4's VAE compresses 16× on each side and the transformer's patches are 2×2 latents, so sizes
# are multiples of 32; it compresses 4× in time after the first frame, so frame counts are 4k+1.
TIER4_SIZE_MULTIPLE = 32
TIER4_FRAME_STEP = 4
# The published 720p frame (1280×704) in either orientation is the largest tier 4 makes: the
# transformer attends over every latent patch of the clip at once (121 frames at 1280×704 are
# 31 × 44 × 80 / 4 = 27,280 tokens), so memory and time grow with the square of the area × frames;
# 121 frames (5 s at 24 fps) is what the model was trained to make.
TIER4_MAX_PIXELS = 1280 * 704
# Inputs only tier 3 reads (SVD's conditioning): tier 4 refuses values other than the defaults.
TIER3_ONLY = ("motion_bucket_id", "noise_aug_strength")
# A draft runs its motion module over the clip in one window, as AnimateDiff-Lightning was trained.
DRAFT_MAX_FRAMES = 32
# A prompt schedule: "0: he opens the door | 24: he steps inside". 16 segments is more than one a
# second over the longest tier-2 clip (96 frames, 12 s at 8 fps): a storyboard's beats, not a
# frame-by-frame script.
SCHEDULE_SEPARATOR = "|"
MAX_SCHEDULE_SEGMENTS = 16
SCHEDULE_EXAMPLE = '"0: he opens the door | 24: he steps inside | 48: he sits down"'
# GIF stores each frame's delay in hundredths of a second (pipelines/video.py).
GIF_TICKS_PER_SECOND = 100


class InputError(ValueError):
    """A request the model cannot run; the message names the field, the value and what is
    allowed."""


@dataclass(frozen=True)
class VideoRequest:
    """A checked request with every tier default filled in."""

    tier: int
    prompt: str
    negative_prompt: str
    num_frames: int
    width: int
    height: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    output_format: str
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    image: Any = None  # as sent (URL, data URI or cog.Path); pipelines.images reads it
    # (frame, text) from `prompt_schedule`, frames increasing from 0; empty: no schedule.
    prompt_schedule: tuple[tuple[int, str], ...] = ()
    interpolate_to_fps: int | None = None
    seed_was_random: bool = field(default=False, compare=False)
    translate_prompt: bool = True
    disable_safety_checker: bool = False
    draft: bool = False
    camera_motion: str = NO_CAMERA_MOTION
    camera_motion_strength: float = 0.75
    # Inputs the caller sent that draft mode replaces by its recipe's values (name: value sent).
    ignored_by_draft: dict = field(default_factory=dict, compare=False)

    @property
    def playback_fps(self) -> int:
        """The rate the video plays at: `interpolate_to_fps` when given, else the generation
        rate."""
        return self.interpolate_to_fps or self.fps

    @property
    def output_frames(self) -> int:
        """Frames in the video file: every generated frame, and the interpolated ones between."""
        return self.num_frames * (self.playback_fps // self.fps)


def _describe(value: Any) -> str:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{shown} ({type(value).__name__})"


def _check_choice(name: str, value: Any, choices: tuple) -> Any:
    # Of the choice's own type: `True` and 2.0 equal 1 and 2 in Python, but neither is a tier.
    if not any(type(value) is type(choice) and value == choice for choice in choices):
        allowed = ", ".join(repr(choice) for choice in choices)
        raise InputError(f"{name} must be one of {allowed}; got {_describe(value)}")
    return value


def _check_int(name: str, value: Any, low: int, high: int, context: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(
            f"{name} must be an integer from {low} to {high}{context}; got {_describe(value)}"
        )
    if not low <= value <= high:
        raise InputError(f"{name} must be from {low} to {high}{context}; got {value}")
    return value


def _check_float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} must be a number from {low} to {high}; got {_describe(value)}")
    if not low <= value <= high:
        raise InputError(f"{name} must be from {low} to {high}; got {value}")
    return float(value)


def _check_bool(name: str, value: Any) -> bool:
    # Only true or false: 0, 1 and "false" are not switches (and "false" would be truthy).
    if type(value) is not bool:
        raise InputError(f"{name} must be true or false; got {_describe(value)}")
    return value


def _check_text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{name} must be text; got {_describe(value)}")
    if len(value) > MAX_PROMPT_CHARS:
        raise InputError(f"{name} must be at most {MAX_PROMPT_CHARS} characters; got {len(value)}")
    return value


def _check_size(name: str, value: int, tier: int) -> int:
    if tier == 4 and value % TIER4_SIZE_MULTIPLE:
        low = value - value % TIER4_SIZE_MULTIPLE
        nearest = " or ".join(
            str(size) for size in (low, low + TIER4_SIZE_MULTIPLE) if 64 <= size <= 1280
        )
        raise InputError(
            f"{name} must be a multiple of {TIER4_SIZE_MULTIPLE} for tier 4 (Wan's VAE works on "
            f"16×16 blocks, its transformer on 2×2 of them); got {value}, nearest allowed: "
            f"{nearest}"
        )
    if value % SIZE_MULTIPLE:
        raise InputError(
            f"{name} must be a multiple of {SIZE_MULTIPLE} (the VAE works on 8×8 blocks); "
            f"got {value}, nearest allowed: {value - value % SIZE_MULTIPLE} or "
            f"{value - value % SIZE_MULTIPLE + SIZE_MULTIPLE}"
        )
    return value


def _check_tier4_frames(num_frames: int) -> None:
    if num_frames % TIER4_FRAME_STEP != 1:
        low, high = TIER_LIMITS[4]["num_frames"]
        allowed = list(range(low, high + 1, TIER4_FRAME_STEP))
        raise InputError(
            f"num_frames must be 4k+1 for tier 4 (Wan's VAE keeps the first frame and packs each "
            f"4 after it into one latent frame): {', '.join(map(str, allowed[:3]))}, … "
            f"{', '.join(map(str, allowed[-2:]))}; got {num_frames}"
        )


def _check_tier4_area(width: int, height: int) -> None:
    if width * height > TIER4_MAX_PIXELS:
        raise InputError(
            f"width × height must be at most 1280×704 = {TIER4_MAX_PIXELS:,} pixels for tier 4 "
            f"(landscape or portrait, e.g. 1280×704 or 704×1280: the transformer attends over the "
            f"whole clip at once); got width={width}, height={height} ({width * height:,})"
        )


def _check_schedule(value: str, num_frames: int) -> tuple[tuple[int, str], ...]:
    """Parse "frame: text | frame: text ..." into (frame, text) pairs, naming the first bad
    segment."""
    if not value.strip():
        return ()
    segments = value.split(SCHEDULE_SEPARATOR)
    if len(segments) > MAX_SCHEDULE_SEGMENTS:
        raise InputError(
            f"prompt_schedule must have at most {MAX_SCHEDULE_SEGMENTS} segments separated by "
            f"{SCHEDULE_SEPARATOR!r}; got {len(segments)}"
        )
    schedule: list[tuple[int, str]] = []
    for number, segment in enumerate(segments, start=1):
        where = f"prompt_schedule segment {number} ({_shown(segment.strip())})"
        frame_text, colon, text = segment.partition(":")
        frame_text = frame_text.strip()
        if not colon:
            raise InputError(f"{where} must be 'frame: text', e.g. {SCHEDULE_EXAMPLE}")
        if not (frame_text.isascii() and frame_text.isdigit()):
            raise InputError(
                f"{where} must start with a whole frame number before the ':'; "
                f"got {_shown(frame_text)}"
            )
        frame = int(frame_text)
        if not text.strip():
            raise InputError(f"{where} has no text after its frame number; every segment needs one")
        if not schedule and frame != 0:
            raise InputError(
                f"{where} must start at frame 0, so that the first frame has a text; got {frame}"
            )
        if schedule and frame <= schedule[-1][0]:
            raise InputError(
                f"{where} must start after frame {schedule[-1][0]} (segment {number - 1}): frames "
                f"strictly increase; got {frame}"
            )
        if frame >= num_frames:
            raise InputError(
                f"{where} must start before frame {num_frames} (num_frames is {num_frames}, "
                f"counted from 0); got {frame}"
            )
        schedule.append((frame, text.strip()))
    return tuple(schedule)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def playback_rates(fps: int, output_format: str) -> list[int]:
    """The rates `interpolate_to_fps` may take with this fps: whole multiples of it (so every
    generated frame is one of the played frames, at its own time) up to the limit, and for gif
    only rates whose frame delay is a whole number of hundredths of a second."""
    highest = LIMITS["interpolate_to_fps"][1]
    rates = range(fps, highest + 1, fps)
    if output_format == "gif":
        return [rate for rate in rates if GIF_TICKS_PER_SECOND % rate == 0]
    return list(rates)


def _check_playback_rate(value: Any, fps: int, output_format: str) -> int | None:
    if value is None:
        return None
    low, high = LIMITS["interpolate_to_fps"]
    rate = _check_int("interpolate_to_fps", value, low, high)
    allowed = playback_rates(fps, output_format)
    if rate in allowed:
        return rate
    if rate < fps:
        raise InputError(
            f"interpolate_to_fps must be at least fps ({fps}), the rate the frames are made at; "
            f"got {rate}"
        )
    listed = ", ".join(map(str, allowed))
    if output_format == "gif":
        raise InputError(
            f"interpolate_to_fps must be a whole multiple of fps ({fps}) that divides "
            f"{GIF_TICKS_PER_SECOND} for gif (GIF stores frame delays in hundredths of a second): "
            f"{listed or 'none at this fps, so use mp4 or webm'}; got {rate}"
        )
    raise InputError(
        f"interpolate_to_fps must be a whole multiple of fps ({fps}), so that every generated "
        f"frame is kept: {listed}; got {rate}"
    )


def resolve_request(raw: dict[str, Any]) -> VideoRequest:
    """Check every input as sent and fill in tier defaults; raise InputError on the first bad
    one."""
    unknown = sorted(set(raw) - set(INPUT_NAMES))
    if unknown:
        raise InputError(f"unknown input {unknown[0]!r}; the inputs are: {', '.join(INPUT_NAMES)}")

    # A null tier is left out, like every other input (README "Inputs": a server without the schema
    # takes null as left out).
    sent_tier = raw.get("tier")
    tier = _check_choice("tier", DEFAULTS["tier"] if sent_tier is None else sent_tier, TIERS)
    defaults = {**DEFAULTS, **TIER_DEFAULTS[tier]}

    def given(name: str) -> Any:
        """The value sent, or the tier's default for a left-out (or null) input."""
        value = raw.get(name)
        return defaults[name] if value is None else value

    def in_range(name: str) -> Any:
        low, high = LIMITS[name]
        if isinstance(low, float):
            return _check_float(name, given(name), low, high)
        return _check_int(name, given(name), low, high)

    def in_tier_range(name: str) -> int:
        return _check_int(name, given(name), *TIER_LIMITS[tier][name], f" for tier {tier}")

    prompt = _check_text("prompt", raw.get("prompt"))
    image = raw.get("image") or None
    if image is not None and tier == 2:
        raise InputError(
            "image is only used by tier 3 (SVD animates it) and tier 4 (Wan starts the clip from "
            "it); leave it empty for tier 2"
        )
    if not prompt.strip() and tier == 2:
        raise InputError("prompt must describe the clip for tier 2; got an empty prompt")
    if not prompt.strip() and image is None:
        what = "keyframe" if tier == 3 else "clip"
        raise InputError(
            f"prompt must describe the {what} for tier {tier} when no image is given; "
            "got an empty prompt"
        )

    num_frames = in_tier_range("num_frames")
    schedule_text = _check_text("prompt_schedule", raw.get("prompt_schedule"))
    if schedule_text.strip() and tier != 2:
        raise InputError(
            f"prompt_schedule is only used by tier 2 (AnimateDiff); leave it empty for tier {tier}"
        )
    if tier == 4:
        _check_tier4_frames(num_frames)
        for name in TIER3_ONLY:
            if raw.get(name) is not None and raw[name] != DEFAULTS[name]:
                raise InputError(
                    f"{name} is only used by tier 3 (SVD's conditioning); tier 4 does not read "
                    f"it, so leave it at its default {DEFAULTS[name]}; got {_describe(raw[name])}"
                )
    fps = in_range("fps")
    output_format = _check_choice("output_format", given("output_format"), OUTPUT_FORMATS)

    seed_was_random = raw.get("seed") is None
    request = VideoRequest(
        tier=tier,
        prompt=prompt,
        negative_prompt=_check_text("negative_prompt", raw.get("negative_prompt")),
        num_frames=num_frames,
        width=_check_size("width", in_tier_range("width"), tier),
        height=_check_size("height", in_tier_range("height"), tier),
        fps=fps,
        num_inference_steps=in_range("num_inference_steps"),
        guidance_scale=in_range("guidance_scale"),
        # A full 32-bit random seed: every value a user can pass back in.
        seed=secrets.randbits(32) if seed_was_random else in_range("seed"),
        output_format=output_format,
        motion_bucket_id=in_range("motion_bucket_id"),
        noise_aug_strength=in_range("noise_aug_strength"),
        image=image,
        prompt_schedule=_check_schedule(schedule_text, num_frames),
        interpolate_to_fps=_check_playback_rate(raw.get("interpolate_to_fps"), fps, output_format),
        seed_was_random=seed_was_random,
        translate_prompt=_check_bool("translate_prompt", given("translate_prompt")),
        disable_safety_checker=_check_bool(
            "disable_safety_checker", given("disable_safety_checker")
        ),
    )
    if tier == 4:
        _check_tier4_area(request.width, request.height)
    draft = _check_bool("draft", given("draft"))
    camera_motion = _check_choice("camera_motion", given("camera_motion"), CAMERA_MOTION_CHOICES)
    camera_motion_strength = in_range("camera_motion_strength")
    _check_draft_fits(tier, draft, camera_motion)
    if draft and tier == 2 and (request.num_frames > DRAFT_MAX_FRAMES or request.prompt_schedule):
        # Long shots and schedules go through FreeNoise, which rebuilds the motion modules' blocks:
        # never tried with Lightning's modules and their LoRAs swapped in, so not offered.
        got = f"num_frames={request.num_frames}" + (
            " and a prompt_schedule" if request.prompt_schedule else ""
        )
        raise InputError(
            f"draft works on tier-2 clips of up to {DRAFT_MAX_FRAMES} frames without a "
            f"prompt_schedule (long shots and schedules need the standard mode); "
            f"got draft=true with {got}"
        )
    request = replace(
        request,
        draft=draft,
        camera_motion=camera_motion,
        camera_motion_strength=camera_motion_strength,
    )
    if draft:
        # The distilled model's recipe is fixed (pipelines/draft.py): the values sent were checked
        # like any other input, and are set aside; the logs say so.
        ignored = {
            name: raw[name]
            for name in ("num_inference_steps", "guidance_scale")
            if raw.get(name) is not None
        }
        steps, guidance = (
            (DRAFT_STEPS, DRAFT_GUIDANCE)
            if tier == 2
            else (len(DMD_TIMESTEPS), TIER4_DRAFT_GUIDANCE)
        )
        request = replace(
            request,
            num_inference_steps=steps,
            guidance_scale=guidance,
            ignored_by_draft=ignored,
        )
    return request


def _check_draft_fits(tier: int, draft: bool, camera_motion: str) -> None:
    """Draft mode exists for tiers 2 and 4 (docs/DRAFTS.md says why not tier 3), and the
    camera-move LoRAs fit only tier 2's motion module (they were trained on AnimateDiff v2's,
    from which AnimateDiff-Lightning was distilled; v3's is another network)."""
    if camera_motion != NO_CAMERA_MOTION and not (draft and tier == 2):
        where = f"tier {tier}" if tier != 2 else "draft=false"
        raise InputError(
            f"camera_motion needs tier 2's draft mode (tier=2, draft=true): the camera moves are "
            f"motion LoRAs for AnimateDiff-Lightning's motion module; "
            f"got camera_motion={camera_motion!r} with {where}"
        )
    if draft and tier not in (2, 4):
        raise InputError(
            f"draft is only available for tier 2 (AnimateDiff-Lightning) and tier 4 (FastWan); "
            f"got draft=true with tier {tier}"
        )
