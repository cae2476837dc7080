"""GPU memory the weights of every model take while the container holds them, in half precision.

    python -m bench.resident_memory

`setup()` loads every tier once and keeps it resident, so the weights below sit in GPU memory for
the life of the container, whichever tier a request uses. The models are built from their real
configs (bench/model_configs.json, through bench/benchmark.py's and bench/cost.py's builders) on
the `meta` device: shapes and dtypes only, no memory and no download, so this runs in seconds on
any machine. Bytes are parameters and buffers in half precision (two bytes each), as
`pick_device()` loads every model on a GPU unless `MODEL_DTYPE` says otherwise.

What this does NOT count: activations of a request (latents, attention, VAE decode chunks), the
CUDA context and kernels' workspace, PyTorch's cache, the eight camera-move LoRAs and the Thai
translator (their sizes: bench/reports/BENCHMARKS.md, "Draft mode", and the README's GPU section).
Those activations need a GPU to measure (`bash bench/gpu_check.sh` reports peak VRAM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.benchmark import build_full_size_models
from bench.cost import build_tier4_models
from pipelines.common import Device

GB, GIB = 1e9, 2**30
HALF = Device(torch.device("meta"), torch.float16)
# (group, component) -> (tier, what it is). Groups are build_full_size_models' weight sets, plus
# "lightning" (tier 2's draft motion modules), "wan" (tier 4, bench/cost.py's builder) and
# "fastwan" (tier 4's draft transformer). Ordered as the table prints.
COMPONENTS = {
    ("sd15", "unet"): (2, "SD 1.5 UNet"),
    # tier 2 merges the adapter into a UNetMotionModel and drops the standalone copy
    # (pipelines/tier2.py), so the adapter's weights are held once, inside the UNet.
    ("animatediff", "adapter"): (2, "AnimateDiff v3 motion modules (in the UNet)"),
    # pipelines/draft.py keeps Lightning's modules (v2's mid block included) beside v3's.
    ("lightning", "adapter"): (2, "AnimateDiff-Lightning motion modules (draft)"),
    ("sd15", "vae"): (2, "SD 1.5 VAE"),
    ("sd15", "text_encoder"): (2, "CLIP ViT-L text encoder (shared with SDXL)"),
    # Loaded once in setup and run on every tier's frames (pipelines/safety.py); listed under
    # tier 2, whose weight set it comes from.
    ("sd15", "safety_checker"): (2, "SD safety checker (CLIP ViT-L/14 image encoder)"),
    ("sdxl", "text_encoder"): (3, "SDXL text encoder 1 = the same CLIP ViT-L"),
    ("sdxl", "unet"): (3, "SDXL base UNet"),
    ("sdxl", "text_encoder_2"): (3, "SDXL text encoder 2 (OpenCLIP bigG)"),
    ("sdxl", "fp16_fix_vae"): (3, "SDXL VAE, fp16-fix"),
    ("svd", "unet"): (3, "SVD-XT 1.1 UNet"),
    ("svd", "vae"): (3, "SVD-XT 1.1 temporal VAE"),
    ("svd", "image_encoder"): (3, "SVD-XT 1.1 CLIP ViT-H image encoder"),
    ("wan", "transformer"): (4, "Wan 2.2 TI2V-5B transformer"),
    ("wan", "text_encoder"): (4, "UMT5-XXL text encoder"),
    ("wan", "vae"): (4, "Wan 2.2 VAE"),
    ("fastwan", "transformer"): (4, "FastWan 2.2 TI2V-5B transformer (draft, when resident)"),
}
# A second 5 B transformer is resident only if tier 4's draft is served from its own weights.
OPTIONAL = {("fastwan", "transformer")}
TIER_NAMES = {2: "tier 2", 3: "tier 3 (without the shared CLIP ViT-L)", 4: "tier 4"}
EVERY_TIER = "every tier, tier 4 without its draft transformer"
EVERY_MODEL = "every tier and tier 4's draft transformer"


@dataclass(frozen=True)
class Row:
    tier: int
    name: str
    class_name: str
    parameters: int
    bytes: int
    shared: bool  # the same module object as a row above: resident once, counted once
    optional: bool = False  # resident only when that mode is served from its own weights


def module_bytes(module: torch.nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def lightning_adapter(v3_adapter: torch.nn.Module) -> torch.nn.Module:
    """AnimateDiff-Lightning's motion adapter: v3's architecture with the mid-block module, as
    pipelines/draft.py loads it (and bench/benchmark.py counts its FLOPs)."""
    from diffusers import MotionAdapter

    with torch.device("meta"):
        return MotionAdapter.from_config({**v3_adapter.config, "use_motion_mid_block": True}).to(
            HALF.dtype
        )


def resident_models() -> dict[str, dict[str, torch.nn.Module]]:
    models = build_full_size_models(HALF)
    models["lightning"] = {"adapter": lightning_adapter(models["animatediff"]["adapter"])}
    models["wan"] = build_tier4_models(HALF)
    # FastWan 2.2 is a fine-tune of the same transformer (bench/model_configs.json's note).
    models["fastwan"] = {"transformer": build_tier4_models(HALF)["transformer"]}
    return models


def resident_rows(models: dict | None = None) -> list[Row]:
    models = models or resident_models()
    seen: set[int] = set()
    rows = []
    for (group, part), (tier, name) in COMPONENTS.items():
        module = models[group][part]
        rows.append(
            Row(
                tier,
                name,
                type(module).__name__,
                sum(p.numel() for p in module.parameters()),
                module_bytes(module),
                shared=id(module) in seen,
                optional=(group, part) in OPTIONAL,
            )
        )
        seen.add(id(module))
    return rows


def totals(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """(parameters, bytes) held per tier (a shared module under the tier that loads it first; an
    optional one apart) and all together, with and without the optional ones."""
    held = [row for row in rows if not row.shared]
    groups = {
        label: [row for row in held if row.tier == tier and not row.optional]
        for tier, label in TIER_NAMES.items()
    }
    for row in held:
        if row.optional:
            groups[row.name] = [row]
    groups[EVERY_TIER] = [row for row in held if not row.optional]
    groups[EVERY_MODEL] = held
    return {
        label: (sum(row.parameters for row in group), sum(row.bytes for row in group))
        for label, group in groups.items()
    }


def table(rows: list[Row]) -> str:
    lines = ["| tier | model | class | parameters | fp16 GB | GiB |", "|---|---|---|---|---|---|"]
    for row in rows:
        if row.shared:
            lines.append(
                f"| {row.tier} | {row.name} | {row.class_name} | (counted above) | 0 | 0 |"
            )
        else:
            lines.append(
                f"| {row.tier} | {row.name} | {row.class_name} | {row.parameters / 1e6:,.1f} M "
                f"| {row.bytes / GB:.2f} | {row.bytes / GIB:.2f} |"
            )
    lines += [
        "",
        "| held together | parameters | fp16 GB | GiB |",
        "|---|---|---|---|",
    ]
    for label, (parameters, size) in totals(rows).items():
        lines.append(
            f"| **{label}** | {parameters / 1e6:,.1f} M | **{size / GB:.2f}** | "
            f"**{size / GIB:.2f}** |"
        )
    clip_l = next(row for row in rows if row.shared)
    wan_vae = next(row for row in rows if row.class_name == "AutoencoderKLWan")
    lines += [
        "",
        f"If SDXL's CLIP ViT-L were not identical to SD 1.5's (setup compares them tensor by "
        f"tensor), a second copy would add {clip_l.bytes / GB:.2f} GB. Held in float32 instead, "
        f"as diffusers' Wan examples load it, the Wan 2.2 VAE would add {wan_vae.bytes / GB:.2f} "
        "GB.",
    ]
    return "\n".join(lines)


def main() -> None:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # its fp16-cast notices say nothing about sizes
    print(table(resident_rows()))


if __name__ == "__main__":
    main()
