"""FLOPs and price of one video for every tier and mode at its defaults, counted on the meta device.

    python -m bench.cost                       # writes bench/reports/COST.md
    python -m bench.cost --out /tmp/COST.md

Every model is built from its real config (bench/model_configs.json) on PyTorch's `meta` device:
shapes only, no memory, no weights, no GPU, so this runs in about a minute on any machine. Each
forward a video makes is counted with `torch.utils.flop_counter.FlopCounterMode` (2·M·N·K per
matmul and convolution; attention through SDPA's math kernel, so its two matmuls count; norms,
activations, softmax and adds do not), as bench/safety_keyframe_flops.py and
`bench/benchmark.py --flops` count.

The price is a floor, not a time: the FLOPs divided by a stated share of the H100's published peak,
times Replicate's published H100 price per second. No GPU time was measured for it; what a video
takes on a GPU is what `bash bench/gpu_check.sh` measures.
"""

from __future__ import annotations

import argparse
import datetime
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bench.benchmark import (
    CONFIGS,
    H100_DOLLARS_PER_SECOND,
    build_full_size_models,
    count_tier2_flops_per_video,
    default_dtype,
    machine,
)
from bench.safety_keyframe_flops import (
    SDXL_TEXT_TOKENS,
    checker_flops,
    counted,
    keyframe_flops,
)
from pipelines.common import Device
from pipelines.inputs import TIER_DEFAULTS
from pipelines.safety import covering_squares, frames_to_check
from pipelines.tier3 import keyframe_size
from scripts import REPO

TERA = 1e12
REPORT = REPO / "bench" / "reports" / "COST.md"
# NVIDIA's published dense BF16/FP16 Tensor Core peak of the H100 SXM (1,979 TFLOP/s "with
# sparsity", half that dense): https://www.nvidia.com/en-us/data-center/h100/. The floor divides
# by all of it; UTILISATION is an assumed share for comparison, not a measurement.
H100_PEAK_TFLOPS = 989.4
UTILISATION = 0.5
# bench/benchmark.py's H100_DOLLARS_PER_SECOND is Replicate's gpu-h100 price, $0.001525/s
# (https://replicate.com/pricing).
PRICE_SOURCE = "https://replicate.com/pricing"


@dataclass(frozen=True)
class Gpu:
    """One of Replicate's single-GPU machines: its published memory, price and peak."""

    hardware: str  # Replicate's name for it
    name: str
    memory_gb: float
    dollars_per_second: float
    # Dense BF16 Tensor Core peak from NVIDIA's datasheet (the "with sparsity" figure halved).
    peak_tflops: float


# Prices and memory: https://replicate.com/pricing (the H100's 80 GB: NVIDIA's H100 page, Replicate
# lists none). Peaks: NVIDIA's datasheets (https://www.nvidia.com/en-us/data-center/h100/, /a100/,
# /l40s/, /a40/).
GPUS = (
    Gpu("gpu-a40-large", "Nvidia A40", 48, 0.000725, 149.7),
    Gpu("gpu-l40s", "Nvidia L40S", 48, 0.000975, 362.05),
    Gpu("gpu-a100-large", "Nvidia A100 80GB", 80, 0.001400, 312.0),
    Gpu("gpu-h100", "Nvidia H100", 80, H100_DOLLARS_PER_SECOND, H100_PEAK_TFLOPS),
)

# bench/model_configs.json entries of tier 4 (Wan 2.2 TI2V-5B), by component.
TIER4_CONFIGS = {
    "transformer": "wan22_ti2v_5b_transformer",
    "vae": "wan22_ti2v_5b_vae",
    "text_encoder": "wan22_ti2v_5b_text_encoder",
}


@dataclass(frozen=True)
class Tier4Settings:
    """What one tier-4 video runs: size, frames, steps and guidance."""

    width: int
    height: int
    num_frames: int
    steps: int
    guidance: float
    # WanPipeline pads every prompt to max_sequence_length=512 before UMT5 reads it
    # (Wan-Video/Wan2.2 wan/configs/shared_config.py: text_len = 512).
    text_tokens: int = 512

    @property
    def forwards_per_step(self) -> int:
        """WanPipeline runs the transformer once more per step, on the negative prompt, when
        guidance_scale > 1 (classifier-free guidance): twice the work of one pass."""
        return 2 if self.guidance > 1 else 1


# The published defaults: Wan-Video/Wan2.2 wan/configs/wan_ti2v_5B.py (sample_steps 50,
# sample_guide_scale 5.0, frame_num 121, sample_fps 24) and wan/configs/__init__.py
# (SUPPORTED_SIZES["ti2v-5B"]: 1280*704 and 704*1280).
TIER4_STANDARD = Tier4Settings(width=1280, height=704, num_frames=121, steps=50, guidance=5.0)
# FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers' model card: "efficient 3-step inference ... at
# 121×704×1280", distilled with DMD, which samples without classifier-free guidance.
TIER4_DRAFT = replace(TIER4_STANDARD, steps=3, guidance=1.0)


@dataclass(frozen=True)
class VideoCost:
    """One row of the report: FLOPs per part of one video."""

    tier: int
    mode: str  # "standard" or "draft"
    start: str  # "text" or "image": what the video starts from
    settings: str
    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def floor_seconds(self, utilisation: float = 1.0) -> float:
        return self.total / TERA / (H100_PEAK_TFLOPS * utilisation)

    def dollars(self, utilisation: float = 1.0) -> float:
        return self.floor_seconds(utilisation) * H100_DOLLARS_PER_SECOND


def passes(count: int) -> str:
    return "1 pass" if count == 1 else f"{count} passes"


def build_tier4_models(device: Device, configs: dict | None = None) -> dict[str, torch.nn.Module]:
    """Tier 4's transformer, VAE and UMT5 encoder from their configs (bench/model_configs.json's,
    unless `configs` gives others by component: tests pass tiny ones), in `device.dtype`."""
    import diffusers
    import transformers

    if configs is None:
        entries = json.loads(CONFIGS.read_text())
        configs = {part: entries[key]["config"] for part, key in TIER4_CONFIGS.items()}
    torch.manual_seed(0)
    with torch.device(device.torch_device), default_dtype(device.dtype):
        return {
            "transformer": diffusers.WanTransformer3DModel(**configs["transformer"]),
            "vae": diffusers.AutoencoderKLWan(**configs["vae"]),
            "text_encoder": transformers.UMT5EncoderModel(
                transformers.UMT5Config(**configs["text_encoder"])
            ),
        }


def tier4_tokens(settings: Tier4Settings, vae_scale=(4, 16), patch=(2, 2)) -> int:
    """The transformer's sequence: latent frames × the latent frame's patches (Wan 2.2's VAE:
    4× in time, 16× in space; patches of 2×2)."""
    frames = (settings.num_frames - 1) // vae_scale[0] + 1
    return (
        frames
        * (settings.height // vae_scale[1] // patch[0])
        * (settings.width // vae_scale[1] // patch[1])
    )


def tier4_parts(
    models: dict, settings: Tier4Settings, from_image: bool, shared: dict | None = None
) -> dict[str, float]:
    """FLOPs of one tier-4 video, per model, as WanPipeline / WanImageToVideoPipeline with
    expand_timesteps run it: the prompts through UMT5, `steps` × `forwards_per_step` transformer
    passes over the latent video, the start image's VAE encode (image to video only) and the VAE
    decode of the latents. `shared` keeps the counts that depend on the video's shape alone (one
    transformer pass, the decode), so that modes of one shape count them once."""
    shared = {} if shared is None else shared
    transformer, vae, text_encoder = models["transformer"], models["vae"], models["text_encoder"]
    device = next(transformer.parameters()).device
    dtype = next(transformer.parameters()).dtype
    latent_frames = (settings.num_frames - 1) // vae.config.scale_factor_temporal + 1
    latent_height = settings.height // vae.config.scale_factor_spatial
    latent_width = settings.width // vae.config.scale_factor_spatial
    latents = torch.zeros(
        1, vae.config.z_dim, latent_frames, latent_height, latent_width, device=device, dtype=dtype
    )
    # expand_timesteps: one timestep per patch token (pipeline_wan.py).
    scale = (vae.config.scale_factor_temporal, vae.config.scale_factor_spatial)
    tokens = tier4_tokens(settings, scale, tuple(transformer.config.patch_size[1:]))
    timestep = torch.zeros(1, tokens, device=device)
    text = torch.zeros(
        1, settings.text_tokens, transformer.config.text_dim, device=device, dtype=dtype
    )
    shape = (settings.width, settings.height, settings.num_frames, settings.text_tokens)
    if ("pass", shape) not in shared:
        shared["pass", shape] = counted(
            lambda: transformer(
                hidden_states=latents,
                timestep=timestep,
                encoder_hidden_states=text,
                return_dict=False,
            )
        )
        shared["decode", shape] = wan_vae_decode_flops(vae, latents)
    one_pass = shared["pass", shape]
    prompt_ids = torch.zeros(
        settings.forwards_per_step, settings.text_tokens, dtype=torch.long, device=device
    )
    parts = {
        "text encoder": counted(lambda: text_encoder(input_ids=prompt_ids)),
        "denoiser": one_pass * settings.forwards_per_step * settings.steps,
    }
    if from_image:
        # WanImageToVideoPipeline with expand_timesteps encodes the start image alone (one frame).
        image = torch.zeros(1, 3, 1, settings.height, settings.width, device=device, dtype=dtype)
        parts["VAE encode"] = counted(lambda: vae.encode(image))
    parts["VAE decode"] = shared["decode", shape]
    return parts


def wan_vae_decode_flops(vae: torch.nn.Module, latents: torch.Tensor) -> float:
    """The Wan VAE's decode of `latents`, counted on its first three latent frames: it decodes one
    latent frame at a time with a cache of the frames before (AutoencoderKLWan._decode), so from
    the second frame on each costs the same, and the rest is that cost times their number (tested
    against a full count in bench/tests/test_cost.py). A 31-frame decode counts in a tenth of the
    time."""
    frames = latents.shape[2]
    if frames <= 3:
        return counted(lambda: vae.decode(latents))
    two, three = (counted(lambda n=n: vae.decode(latents[:, :, :n])) for n in (2, 3))
    return two + (frames - 2) * (three - two)


def safety_flops(
    square_flops: float, width: int, height: int, num_frames: int, start: bool
) -> float:
    """The safety checker on the sampled frames (pipelines/safety.py), every square of each, and on
    the start frame when the tier checks one before animating it (tier 3)."""
    frames = len(frames_to_check(num_frames)) + (1 if start else 0)
    return square_flops * len(covering_squares(width, height)) * frames


def tier4_costs(models: dict, square_flops: float) -> list[VideoCost]:
    costs, shared = [], {}
    for mode, settings in (("standard", TIER4_STANDARD), ("draft", TIER4_DRAFT)):
        for from_image in (False, True):
            parts = tier4_parts(models, settings, from_image, shared)
            parts["safety checker"] = safety_flops(
                square_flops, settings.width, settings.height, settings.num_frames, start=False
            )
            costs.append(
                VideoCost(
                    4,
                    mode,
                    "image" if from_image else "text",
                    f"{settings.num_frames} frames {settings.width}×{settings.height}, "
                    f"{settings.steps} steps × {passes(settings.forwards_per_step)}",
                    parts,
                )
            )
    return costs


def tier2_costs(square_flops: float) -> list[VideoCost]:
    """Tier 2 standard and draft, from bench/benchmark.py's count (the same counting)."""
    counted_tier2 = count_tier2_flops_per_video()
    defaults = TIER_DEFAULTS[2]
    checker = safety_flops(
        square_flops, defaults["width"], defaults["height"], defaults["num_frames"], start=False
    )
    costs = []
    for mode, row in counted_tier2["modes"].items():
        forwards = 2 if row["guidance"] > 1 else 1
        costs.append(
            VideoCost(
                2,
                mode,
                "text",
                f"{counted_tier2['settings']}, {row['steps']} steps × {passes(forwards)}",
                {
                    "text encoder": row["text_encoder"],
                    "denoiser": row["steps"] * row["unet_step"],
                    "VAE decode": row["vae_decode"],
                    "safety checker": checker,
                },
            )
        )
    return costs


def svd_parts(models: dict, width: int, height: int, num_frames: int, steps: int) -> dict:
    """SVD-XT 1.1 animating one image, as StableVideoDiffusionPipeline runs it: the CLIP image
    encoder and the VAE encode of the image once, `steps` UNet passes over a batch of 2 (its
    guidance ramps from 1 to 3, so classifier-free guidance is always on) and the temporal VAE
    decode of every frame."""
    svd = models["svd"]
    unet, vae, image_encoder = svd["unet"], svd["vae"], svd["image_encoder"]
    dtype = next(unet.parameters()).dtype
    latent = (height // 8, width // 8)
    sample = torch.zeros(2, num_frames, 8, *latent, device="meta", dtype=dtype)
    image_embeds = torch.zeros(2, 1, unet.config.cross_attention_dim, device="meta", dtype=dtype)
    time_ids = torch.zeros(2, 3, device="meta", dtype=dtype)
    step = counted(lambda: unet(sample, torch.tensor(999.0, device="meta"), image_embeds, time_ids))
    pixels = torch.zeros(1, 3, 224, 224, device="meta", dtype=dtype)
    image = torch.zeros(1, 3, height, width, device="meta", dtype=dtype)
    latents = torch.zeros(num_frames, 4, *latent, device="meta", dtype=dtype)
    return {
        "image encoder": counted(lambda: image_encoder(pixels)),
        "VAE encode": counted(lambda: vae.encode(image)),
        "denoiser": step * steps,
        "VAE decode": counted(lambda: vae.decode(latents, num_frames=num_frames)),
    }


def sdxl_text_flops(models: dict) -> float:
    """SDXL's two text encoders on the prompt and the negative prompt (77 tokens each)."""
    ids = torch.zeros(2, SDXL_TEXT_TOKENS, dtype=torch.long, device="meta")
    sdxl = models["sdxl"]
    return counted(lambda: sdxl["text_encoder"](ids)) + counted(lambda: sdxl["text_encoder_2"](ids))


def tier3_costs(models: dict, square_flops: float) -> list[VideoCost]:
    """Tier 3 from text (an SDXL keyframe at SDXL's size for the aspect ratio, then SVD) and from
    the caller's image (SVD alone)."""
    d = TIER_DEFAULTS[3]
    width, height, frames, steps = (
        d["width"],
        d["height"],
        d["num_frames"],
        d["num_inference_steps"],
    )
    animation = svd_parts(models, width, height, frames, steps)
    checker = safety_flops(square_flops, width, height, frames, start=True)
    keyframe = keyframe_flops(models, *keyframe_size(width, height), steps)
    settings = f"{frames} frames {width}×{height}, {steps} steps × {passes(2)}"
    from_text = {
        "text encoder": sdxl_text_flops(models),
        "keyframe (SDXL UNet and VAE decode)": keyframe["total"],
        **animation,
        "safety checker": checker,
    }
    return [
        VideoCost(3, "standard", "text", settings, from_text),
        VideoCost(3, "standard", "image", settings, {**animation, "safety checker": checker}),
    ]


def count_every_tier() -> list[VideoCost]:
    # Precision changes no count; tiers 2 and 3 are built in float16, as
    # bench/safety_keyframe_flops.py builds its inputs.
    models = build_full_size_models(Device(torch.device("meta"), torch.float16))
    # SVD's AlphaBlender makes its mix_factor with the legacy torch.Tensor([...]) constructor, which
    # ignores the meta device it is built under: moved, the UNet and VAE are wholly meta.
    for part in ("unet", "vae"):
        models["svd"][part].to("meta")
    square = checker_flops(models)
    return [
        *tier2_costs(square),
        *tier3_costs(models, square),
        *tier4_costs(build_tier4_models(Device(torch.device("meta"), torch.bfloat16)), square),
    ]


def cost_table(costs: list[VideoCost]) -> str:
    lines = [
        "| tier | mode | from | settings | TFLOP per video | floor at 100 % of peak "
        f"| $ per video at 100 % | $ per video at {UTILISATION * 100:.0f} % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cost in costs:
        lines.append(
            f"| {cost.tier} | {cost.mode} | {cost.start} | {cost.settings} "
            f"| {cost.total / TERA:,.0f} | {cost.floor_seconds():.2f} s "
            f"| {cost.dollars():.4f} | {cost.dollars(UTILISATION):.4f} |"
        )
    return "\n".join(lines)


def parts_table(costs: list[VideoCost]) -> str:
    names = list(dict.fromkeys(name for cost in costs for name in cost.parts))
    lines = [
        "| tier | mode | from | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for cost in costs:
        cells = [f"{cost.parts[name] / TERA:,.2f}" if name in cost.parts else "—" for name in names]
        lines.append(f"| {cost.tier} | {cost.mode} | {cost.start} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratios(costs: list[VideoCost]) -> list[str]:
    """Standard over draft for each tier and start that has both."""
    by_key = {(c.tier, c.start, c.mode): c for c in costs}
    lines = []
    for (tier, start, mode), standard in by_key.items():
        draft = by_key.get((tier, start, "draft"))
        if mode == "standard" and draft is not None:
            decode = draft.parts.get("VAE decode", 0) / draft.total
            lines.append(
                f"- Tier {tier} from {start}: the draft costs {standard.total / draft.total:.1f}× "
                f"less than standard; the VAE decode is {decode:.0%} of the draft's FLOPs."
            )
    return lines


def gpu_choice(costs: list[VideoCost], held: dict[str, tuple[int, int]]) -> list[str]:
    """The GPU section: which cards hold which tiers' weights, and what a tier-4 video costs on
    each at the FLOP floor. `held` is bench/resident_memory.py's totals (parameters, bytes)."""
    from bench import resident_memory

    every = held[resident_memory.EVERY_TIER][1] / 1e9
    tier4 = held[resident_memory.TIER_NAMES[4]][1] / 1e9
    video = {(c.tier, c.mode, c.start): c for c in costs}
    standard, draft = video[4, "standard", "text"], video[4, "draft", "text"]
    lines = [
        "## Which GPU, with tier 4 resident",
        "",
        "For the publisher (docs/PUBLISHING.md's GPU choice). Resident weights from "
        "`python -m bench.resident_memory` (every model in the precision setup holds it in, tier "
        "4's draft transformer included, counted on the meta device; the translator and the "
        "camera-move LoRAs, about 0.3 GB each, come on top). The "
        "activations of a request are not measured yet: Wan's VAE decode of "
        f"{TIER4_STANDARD.num_frames} frames at "
        f"{TIER4_STANDARD.width}×{TIER4_STANDARD.height} and the transformer's attention over "
        f"{tier4_tokens(TIER4_STANDARD):,} tokens need room beyond the weights, and "
        "`bash bench/gpu_check.sh` reports the peak. Seconds and dollars are FLOP floors at each "
        "card's datasheet peak (100 %), not times.",
        "",
        "| weights held | GB |",
        "|---|---|",
        f"| every tier | {every:.1f} |",
        f"| tier 4 alone (`LOADED_TIERS=4`) | {tier4:.1f} |",
        "",
        "| Replicate hardware | GPU memory | $/s | left beside every tier's weights "
        "| tier-4 video floor, standard | draft | $ per tier-4 video at the floor, standard "
        "| draft |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for gpu in GPUS:
        left = gpu.memory_gb - every
        seconds = [c.total / TERA / gpu.peak_tflops for c in (standard, draft)]
        dollars = [second * gpu.dollars_per_second for second in seconds]
        lines.append(
            f"| `{gpu.hardware}` ({gpu.name}) | {gpu.memory_gb:.0f} GB | {gpu.dollars_per_second} "
            f"| {f'{left:.1f} GB' if left >= 0 else f'does not fit ({-left:.1f} GB short)'} "
            f"| {seconds[0]:.0f} s | {seconds[1]:.1f} s | {dollars[0]:.3f} | {dollars[1]:.4f} |"
        )
    cheapest = min(GPUS, key=lambda gpu: gpu.dollars_per_second / gpu.peak_tflops)
    fits = ", ".join(f"`{gpu.hardware}`" for gpu in GPUS if gpu.memory_gb > every)
    lines += [
        "",
        f"- Every tier together holds {every:.1f} GB of weights: only the 80 GB cards ({fits}) "
        "hold every tier, with room for activations.",
        f"- Per tier-4 video at the floor, `{cheapest.hardware}` is the cheapest: its price per "
        "second buys the most peak FLOPs. Tier 4's work is large matmuls (its denoiser is "
        f"{standard.parts['denoiser'] / standard.total:.0%} of a standard video's FLOPs), where "
        "FLOPs per dollar decide: the price per second alone misleads.",
        f"- A container of tier 4 alone (`LOADED_TIERS=4`) holds {tier4:.1f} GB, its draft "
        "transformer included: a 48 GB card holds the weights; whether the largest request fits "
        "beside them is for the GPU check to measure.",
        "- If Replicate's H100 is the PCIe part (756 TFLOP/s dense BF16, not the SXM's "
        f"{H100_PEAK_TFLOPS:.1f}), its floors are about 30 % longer.",
        "",
    ]
    return lines


def report(costs: list[VideoCost], when: str, where: str, held: dict[str, tuple[int, int]]) -> str:
    return "\n".join(
        [
            f"# Cost per video, counted {when} on {where}",
            "",
            "Written by `python -m bench.cost`. FLOPs of one video at each tier's defaults, every "
            "model at its real architecture (bench/model_configs.json) on PyTorch's meta device, "
            "counted with FlopCounterMode (matmuls, convolutions and attention's two matmuls; "
            "norms and activations are not counted). A pass is one run of the denoiser over the "
            "latents; classifier-free guidance makes two per step.",
            "",
            "**The prices are floors, not times.** Each is the FLOPs at a stated share of the "
            f"H100's published dense BF16 peak ({H100_PEAK_TFLOPS:.1f} TFLOP/s, NVIDIA's H100 SXM "
            "datasheet), times Replicate's H100 price, "
            f"${H100_DOLLARS_PER_SECOND}/s ({PRICE_SOURCE}). No GPU time was measured for this "
            f"table; {UTILISATION * 100:.0f} % of peak is an assumption for comparison. Real runs "
            "are slower (memory-bound norms, the VAE's 3D convolutions, host overhead): "
            "`bash bench/gpu_check.sh` measures them.",
            "",
            cost_table(costs),
            "",
            *ratios(costs),
            "",
            "## TFLOP per part",
            "",
            parts_table(costs),
            "",
            "Tier 4's defaults: Wan-Video/Wan2.2 `wan/configs/wan_ti2v_5B.py` (121 frames, 50 "
            "steps, guidance 5.0) and `wan/configs/__init__.py` (TI2V-5B's size, 1280×704); its "
            "draft: FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers' card (3 steps, "
            "distilled with DMD, no classifier-free guidance). The text encoder reads 512 tokens "
            "per prompt, padded (WanPipeline's max_sequence_length).",
            "",
            *gpu_choice(costs, held),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPORT, help="the Markdown report to write")
    args = parser.parse_args()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # its dtype notices say nothing about FLOPs
    from bench import resident_memory  # it builds tier 4 with this module's builder

    costs = count_every_tier()
    held = resident_memory.totals(resident_memory.resident_rows())
    where = machine(Device(torch.device("cpu"), torch.float32))
    text = report(costs, datetime.date.today().isoformat(), where, held)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
