"""FLOPs the safety checker and tier 3's one-megapixel keyframe add to a video, at the real sizes.

    python -m bench.safety_keyframe_flops

Every model is built from its real config (bench/model_configs.json, through bench/benchmark.py's
builder) on PyTorch's `meta` device: shapes only, no memory, no download, no GPU. Each forward is
counted with `torch.utils.flop_counter.FlopCounterMode` (2·M·N·K per matmul and convolution;
attention through its math path, so its two matmuls count; norms, activations and softmax do not),
as bench/cost.py counts FLOPs. These are operation counts, not times: no GPU time was measured for
them.
"""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench.benchmark import build_full_size_models
from pipelines.common import Device
from pipelines.inputs import TIER_DEFAULTS, TIERS
from pipelines.safety import covering_squares, frames_to_check
from pipelines.tier3 import keyframe_size

META = Device(torch.device("meta"), torch.float16)
TERA = 1e12
# Both encoders' states side by side.
SDXL_TEXT_TOKENS, SDXL_TEXT_WIDTH, SDXL_POOLED = 77, 2048, 1280
CHECKER_INPUT = 224  # the feature extractor's crop: every checked square is resized to it


def counted(forward) -> float:
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        forward()
    return counter.get_total_flops()


def checker_flops(models: dict) -> float:
    """One 224×224 square through the checker's CLIP ViT-L/14 tower and projection."""
    checker = models["sd15"]["safety_checker"]
    pixels = torch.zeros(1, 3, CHECKER_INPUT, CHECKER_INPUT, device="meta", dtype=META.dtype)
    return counted(lambda: checker.visual_projection(checker.vision_model(pixels)[1]))


def squares_checked(tier: int, every_frame: bool = False) -> int:
    """Checked squares in a video at the tier's default size: the sampled frames' squares, and for
    tier 3 the start frame's (checked once before animating)."""
    defaults = TIER_DEFAULTS[tier]
    per_frame = len(covering_squares(defaults["width"], defaults["height"]))
    frames = defaults["num_frames"] if every_frame else len(frames_to_check(defaults["num_frames"]))
    return per_frame * (frames + (1 if tier == 3 else 0))


def keyframe_flops(models: dict, width: int, height: int, steps: int) -> dict[str, float]:
    """SDXL at width×height: `steps` UNet steps with classifier-free guidance (batch 2), and one
    decode by the fp16-fix VAE."""
    unet, vae = models["sdxl"]["unet"], models["sdxl"]["fp16_fix_vae"]
    latents = torch.zeros(2, 4, height // 8, width // 8, device="meta", dtype=META.dtype)
    text = torch.zeros(2, SDXL_TEXT_TOKENS, SDXL_TEXT_WIDTH, device="meta", dtype=META.dtype)
    added = {
        "text_embeds": torch.zeros(2, SDXL_POOLED, device="meta", dtype=META.dtype),
        "time_ids": torch.zeros(2, 6, device="meta", dtype=META.dtype),
    }
    timestep = torch.tensor([999.0], device="meta")
    step = counted(
        lambda: unet(latents, timestep, encoder_hidden_states=text, added_cond_kwargs=added)
    )
    decode = counted(lambda: vae.decode(latents[:1]))
    return {
        "unet_step": step,
        "denoising": step * steps,
        "decode": decode,
        "total": step * steps + decode,
    }


def report() -> str:
    models = build_full_size_models(META)
    per_square = checker_flops(models)
    lines = [
        "Safety checker (CLIP ViT-L/14 at 224×224, FLOPs per checked square and per video at "
        "each tier's defaults):",
        "",
        "| tier | video | frames checked | squares per frame | forwards per video "
        "| TFLOP per video | every frame instead |",
        "|---|---|---|---|---|---|---|",
    ]
    for tier in TIERS:
        d = TIER_DEFAULTS[tier]
        frames = frames_to_check(d["num_frames"])
        shown = ", ".join(str(i + 1) for i in frames) + (" + the start frame" if tier == 3 else "")
        squares = len(covering_squares(d["width"], d["height"]))
        lines.append(
            f"| {tier} | {d['num_frames']} frames {d['width']}×{d['height']} | {shown} | {squares} "
            f"| {squares_checked(tier)} | {squares_checked(tier) * per_square / TERA:.2f} "
            f"| {squares_checked(tier, every_frame=True) * per_square / TERA:.2f} |"
        )
    lines += ["", f"One checked square: {per_square / 1e9:.1f} GFLOP.", ""]

    d = TIER_DEFAULTS[3]
    steps = d["num_inference_steps"]
    width, height = keyframe_size(d["width"], d["height"])
    before = keyframe_flops(models, d["width"], d["height"], steps)
    after = keyframe_flops(models, width, height, steps)
    lines += [
        f"Tier 3 keyframe, SDXL base with guidance (batch 2), {steps} steps, fp16-fix VAE decode:",
        "",
        "| keyframe | UNet step TFLOP | denoising TFLOP | VAE decode TFLOP | total TFLOP |",
        "|---|---|---|---|---|",
    ]
    for label, flops in (
        (f"{d['width']}×{d['height']} (the video size, before)", before),
        (f"{width}×{height} (SDXL's bucket for 16:9, now)", after),
    ):
        lines.append(
            f"| {label} | {flops['unet_step'] / TERA:.2f} | {flops['denoising'] / TERA:.1f} "
            f"| {flops['decode'] / TERA:.2f} | {flops['total'] / TERA:.1f} |"
        )
    added = after["total"] - before["total"]
    lines += [
        "",
        f"The 1-megapixel keyframe adds {added / TERA:.1f} TFLOP per tier-3 video from text "
        f"({after['total'] / before['total']:.2f}× the keyframe's FLOPs); a caller's image renders "
        "no keyframe.",
    ]
    return "\n".join(lines)


def main() -> None:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # its fp16-cast notices say nothing about FLOPs
    print(report())


if __name__ == "__main__":
    main()
