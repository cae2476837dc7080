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
from dataclasses import dataclass, field
from typing import Any

from pipelines.video import OUTPUT_FORMATS

TIERS = (2, 3)
MAX_PROMPT_CHARS = 4000  # far past what CLIP reads (77 tokens); longer is a client bug, not a prompt
MAX_SEED = 2**32 - 1

# run()'s parameters, in order: the only names a request may carry.
INPUT_NAMES = (
    "tier", "prompt", "negative_prompt", "num_frames", "width", "height", "fps",
    "num_inference_steps", "guidance_scale", "seed", "output_format", "image", "motion_bucket_id",
    "noise_aug_strength", "translate_prompt", "disable_safety_checker",
)

# What a left-out (or null) input becomes when it is the same for every tier.
DEFAULTS: dict[str, Any] = dict(
    tier=2, prompt="", negative_prompt="", seed=None, output_format="mp4", image=None,
    motion_bucket_id=127,  # SVD 1.1 was fine-tuned at 127
    noise_aug_strength=0.02,  # diffusers' default for SVD
    translate_prompt=True,  # Thai to English (pipelines/prompts.py)
    disable_safety_checker=False,  # the checker runs unless a caller turns it off (pipelines/safety.py)
)
# Tier 2: AnimateDiff v3 on SD 1.5, which was trained at 512×512 and 16 frames (the motion module
# has positions for at most 32). Tier 3: SVD-XT 1.1 was fine-tuned for 25 frames at 1024×576 and
# 6 fps (diffusers conditions it on fps - 1). Guidance: SD 1.5 expects about 7.5, SDXL about 5.
TIER_DEFAULTS: dict[int, dict[str, Any]] = {
    2: dict(num_frames=16, width=512, height=512, fps=8, num_inference_steps=25, guidance_scale=7.5),
    3: dict(num_frames=25, width=1024, height=576, fps=6, num_inference_steps=25, guidance_scale=5.0),
}

# (lowest, highest), inclusive, for every tier.
LIMITS: dict[str, tuple[float, float]] = dict(
    fps=(1, 30),
    num_inference_steps=(1, 100),
    guidance_scale=(1.0, 20.0),  # 1 turns classifier-free guidance off
    seed=(0, MAX_SEED),  # a full 32-bit seed: every value a random draw can print
    motion_bucket_id=(1, 255),  # SVD's micro-conditioning range
    noise_aug_strength=(0.0, 1.0),
)
# (lowest, highest) per tier. Sizes must be multiples of 8 (the VAE's downsampling factor); below
# 256 pixels a side the models produce little of use, but small sizes are allowed for previews.
TIER_LIMITS: dict[int, dict[str, tuple[int, int]]] = {
    2: dict(num_frames=(8, 32), width=(64, 1024), height=(64, 1024)),
    3: dict(num_frames=(8, 25), width=(64, 1024), height=(64, 1024)),
}
SIZE_MULTIPLE = 8


class InputError(ValueError):
    """A request the model cannot run; the message names the field, the value and what is allowed."""


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
    seed_was_random: bool = field(default=False, compare=False)
    translate_prompt: bool = True
    disable_safety_checker: bool = False


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
        raise InputError(f"{name} must be an integer from {low} to {high}{context}; got {_describe(value)}")
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
    # Only true or false: 1, "true" or "no" would be a guess at what the caller meant.
    if not isinstance(value, bool):
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


def _check_size(name: str, value: int) -> int:
    if value % SIZE_MULTIPLE:
        raise InputError(
            f"{name} must be a multiple of {SIZE_MULTIPLE} (the VAE works on 8×8 blocks); got {value}, "
            f"nearest allowed: {value - value % SIZE_MULTIPLE} or {value - value % SIZE_MULTIPLE + SIZE_MULTIPLE}"
        )
    return value


def resolve_request(raw: dict[str, Any]) -> VideoRequest:
    """Check every input as sent and fill in tier defaults; raise InputError on the first bad one."""
    unknown = sorted(set(raw) - set(INPUT_NAMES))
    if unknown:
        raise InputError(f"unknown input {unknown[0]!r}; the inputs are: {', '.join(INPUT_NAMES)}")

    tier = _check_choice("tier", raw.get("tier", DEFAULTS["tier"]), TIERS)
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
        raise InputError("image is only used by tier 3 (SVD animates it); leave it empty for tier 2")
    if not prompt.strip() and tier == 2:
        raise InputError("prompt must describe the clip for tier 2; got an empty prompt")
    if not prompt.strip() and image is None:
        raise InputError("prompt must describe the keyframe for tier 3 when no image is given; got an empty prompt")

    seed_was_random = raw.get("seed") is None
    return VideoRequest(
        tier=tier,
        prompt=prompt,
        negative_prompt=_check_text("negative_prompt", raw.get("negative_prompt")),
        num_frames=in_tier_range("num_frames"),
        width=_check_size("width", in_tier_range("width")),
        height=_check_size("height", in_tier_range("height")),
        fps=in_range("fps"),
        num_inference_steps=in_range("num_inference_steps"),
        guidance_scale=in_range("guidance_scale"),
        # A full 32-bit random seed: every value a user can pass back in.
        seed=secrets.randbits(32) if seed_was_random else in_range("seed"),
        output_format=_check_choice("output_format", given("output_format"), OUTPUT_FORMATS),
        motion_bucket_id=in_range("motion_bucket_id"),
        noise_aug_strength=in_range("noise_aug_strength"),
        image=image,
        seed_was_random=seed_was_random,
        translate_prompt=_check_bool("translate_prompt", given("translate_prompt")),
        disable_safety_checker=_check_bool("disable_safety_checker", given("disable_safety_checker")),
    )
