"""The input contract the frontend codes against: every input declared once, checked here.

`INPUTS` declares each input (description, default, limits). `predict.py` builds Cog's typed
signature from it, so the OpenAPI schema `cog build` writes shows the same limits, and
`resolve_request` enforces them: Cog's server accepts anything when no schema is present, so these
checks are the line of defence. Limits that differ by tier live in `TIER_LIMITS`; an input left
out takes its tier's default from `TIER_DEFAULTS`.
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

# Tier 2: AnimateDiff v3 on SD 1.5, which was trained at 512×512 and 16 frames (the motion module
# has positions for at most 32). Tier 3: SVD-XT 1.1 was fine-tuned for 25 frames at 1024×576 and
# 6 fps (diffusers conditions it on fps - 1). Guidance: SD 1.5 expects about 7.5, SDXL about 5.
TIER_DEFAULTS: dict[int, dict[str, Any]] = {
    2: dict(num_frames=16, width=512, height=512, fps=8, num_inference_steps=25, guidance_scale=7.5),
    3: dict(num_frames=25, width=1024, height=576, fps=6, num_inference_steps=25, guidance_scale=5.0),
}
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
class InputSpec:
    """One input: its type, Cog metadata and the limits that hold across all tiers."""

    type: type
    description: str
    default: Any = None
    ge: float | None = None
    le: float | None = None
    choices: tuple | None = None

    def cog_kwargs(self) -> dict[str, Any]:
        kwargs = dict(description=self.description, default=self.default, ge=self.ge, le=self.le)
        if self.choices:
            kwargs["choices"] = list(self.choices)
        return {key: value for key, value in kwargs.items() if value is not None or key == "default"}


def _tier_range(name: str) -> str:
    return "; ".join(
        f"tier {tier}: {TIER_LIMITS[tier][name][0]}–{TIER_LIMITS[tier][name][1]}, "
        f"default {TIER_DEFAULTS[tier][name]}"
        for tier in TIERS
    )


def _tier_defaults(name: str) -> str:
    return ", ".join(f"tier {tier}: {TIER_DEFAULTS[tier][name]}" for tier in TIERS)


INPUTS: dict[str, InputSpec] = {
    "tier": InputSpec(
        int,
        "2: AnimateDiff v3 text-to-video (512×512). 3: SDXL keyframe (or your image) animated by "
        "Stable Video Diffusion 1.1 (1024×576).",
        default=2,
        choices=TIERS,
    ),
    "prompt": InputSpec(
        str,
        "What the clip shows. Required for tier 2, and for tier 3 without an image. CLIP reads the "
        f"first 77 tokens; the logs say when a prompt was cut. At most {MAX_PROMPT_CHARS} characters.",
        default="",
    ),
    "negative_prompt": InputSpec(str, "What the clip should not show.", default=""),
    "num_frames": InputSpec(
        int, f"Frames in the video ({_tier_range('num_frames')}).", ge=8, le=32
    ),
    "width": InputSpec(
        int, f"Width in pixels, a multiple of {SIZE_MULTIPLE} ({_tier_range('width')}).", ge=64, le=1024
    ),
    "height": InputSpec(
        int, f"Height in pixels, a multiple of {SIZE_MULTIPLE} ({_tier_range('height')}).", ge=64, le=1024
    ),
    "fps": InputSpec(
        int,
        f"Frames per second of the video ({_tier_defaults('fps')}). Tier 3 also conditions SVD on it.",
        ge=1,
        le=30,
    ),
    "num_inference_steps": InputSpec(
        int, f"Denoising steps per model ({_tier_defaults('num_inference_steps')}).", ge=1, le=100
    ),
    "guidance_scale": InputSpec(
        float,
        "Classifier-free guidance of the text-conditioned model: AnimateDiff in tier 2, the SDXL "
        f"keyframe in tier 3 ({_tier_defaults('guidance_scale')}). 1 turns guidance off.",
        ge=1.0,
        le=20.0,
    ),
    "seed": InputSpec(
        int,
        f"Random seed, 0–{MAX_SEED}. Leave empty for a random one; the logs print it so the clip "
        "can be reproduced.",
        ge=0,
        le=MAX_SEED,
    ),
    "output_format": InputSpec(str, "Video container.", default="mp4", choices=OUTPUT_FORMATS),
    "image": InputSpec(
        str,
        "Tier 3 only: the first frame to animate (http(s) URL, data URI or file; PNG, JPEG, WebP...). "
        "With it no keyframe is rendered and the prompt may be empty. It is scaled to cover "
        "width×height and the centre is cropped, so other aspect ratios lose their edges, never "
        "get stretched; transparency is composited on white; EXIF rotation is applied.",
    ),
    "motion_bucket_id": InputSpec(
        int, "Tier 3: how much SVD moves the scene (1–255; SVD 1.1 was tuned at 127).", default=127, ge=1, le=255
    ),
    "noise_aug_strength": InputSpec(
        float,
        "Tier 3: noise added to the start frame before animating; more lets SVD depart further from "
        "it (0–1; default 0.02).",
        default=0.02,
        ge=0.0,
        le=1.0,
    ),
}


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


def _describe(value: Any) -> str:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{shown} ({type(value).__name__})"


def _check_choice(name: str, value: Any, choices: tuple) -> Any:
    # bool is an int in Python; `True` is never a tier.
    if isinstance(value, bool) or value not in choices:
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


def _check_text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{name} must be text; got {_describe(value)}")
    if len(value) > MAX_PROMPT_CHARS:
        raise InputError(f"{name} must be at most {MAX_PROMPT_CHARS} characters; got {len(value)}")
    return value


def _check_size(name: str, value: Any, tier: int) -> int:
    low, high = TIER_LIMITS[tier][name]
    value = _check_int(name, value, low, high, f" for tier {tier}")
    if value % SIZE_MULTIPLE:
        raise InputError(
            f"{name} must be a multiple of {SIZE_MULTIPLE} (the VAE works on 8×8 blocks); got {value}, "
            f"nearest allowed: {max(low, value - value % SIZE_MULTIPLE)} or "
            f"{min(high, value - value % SIZE_MULTIPLE + SIZE_MULTIPLE)}"
        )
    return value


def resolve_request(raw: dict[str, Any]) -> VideoRequest:
    """Check every input as sent and fill in tier defaults; raise InputError on the first bad one."""
    unknown = sorted(set(raw) - set(INPUTS))
    if unknown:
        raise InputError(f"unknown input {unknown[0]!r}; the inputs are: {', '.join(INPUTS)}")

    tier = _check_choice("tier", raw.get("tier", INPUTS["tier"].default), TIERS)
    # What a left-out (or null) input becomes: the tier's default, else the input's own.
    defaults = {**{name: spec.default for name, spec in INPUTS.items()}, **TIER_DEFAULTS[tier]}

    def given(name: str) -> Any:
        value = raw.get(name)
        return defaults[name] if value is None else value

    prompt = _check_text("prompt", raw.get("prompt"))
    image = raw.get("image") or None
    if image is not None and tier == 2:
        raise InputError("image is only used by tier 3 (SVD animates it); leave it empty for tier 2")
    if not prompt.strip() and tier == 2:
        raise InputError("prompt must describe the clip for tier 2; got an empty prompt")
    if not prompt.strip() and image is None:
        raise InputError("prompt must describe the keyframe for tier 3 when no image is given; got an empty prompt")

    seed = raw.get("seed")
    seed_was_random = seed is None
    if seed_was_random:
        seed = secrets.randbits(32)  # a full 32-bit seed: every value a user can pass back in

    spec = INPUTS
    return VideoRequest(
        tier=tier,
        prompt=prompt,
        negative_prompt=_check_text("negative_prompt", raw.get("negative_prompt")),
        num_frames=_check_int(
            "num_frames", given("num_frames"), *TIER_LIMITS[tier]["num_frames"], f" for tier {tier}"
        ),
        width=_check_size("width", given("width"), tier),
        height=_check_size("height", given("height"), tier),
        fps=_check_int("fps", given("fps"), int(spec["fps"].ge), int(spec["fps"].le)),
        num_inference_steps=_check_int(
            "num_inference_steps",
            given("num_inference_steps"),
            int(spec["num_inference_steps"].ge),
            int(spec["num_inference_steps"].le),
        ),
        guidance_scale=_check_float(
            "guidance_scale", given("guidance_scale"), spec["guidance_scale"].ge, spec["guidance_scale"].le
        ),
        seed=_check_int("seed", seed, 0, MAX_SEED),
        output_format=_check_choice(
            "output_format", given("output_format"), OUTPUT_FORMATS
        ),
        motion_bucket_id=_check_int(
            "motion_bucket_id", given("motion_bucket_id"), int(spec["motion_bucket_id"].ge),
            int(spec["motion_bucket_id"].le),
        ),
        noise_aug_strength=_check_float(
            "noise_aug_strength", given("noise_aug_strength"), spec["noise_aug_strength"].ge,
            spec["noise_aug_strength"].le,
        ),
        image=image,
        seed_was_random=seed_was_random,
    )
