"""GPU memory the weights of every model take while the container holds them, in the precision
setup loads each in.

    python -m bench.resident_memory

`setup()` loads every tier once and keeps it resident, so the weights below sit in GPU memory for
the life of the container, whichever tier a request uses. The models are built from their real
configs (bench/model_configs.json, through bench/benchmark.py's and bench/cost.py's builders) on
the `meta` device: shapes and dtypes only, no memory and no download, so this runs in seconds on
any machine. Bytes are parameters and buffers in the dtype a GPU holds each in: half precision
(`pick_device()`'s float16 unless `MODEL_DTYPE` says otherwise), tier 4's transformers and UMT5 in
bfloat16 and its VAE in float32 (`pipelines/tier4.py`'s wan_dtype and VAE_DTYPE). Tier 4's draft
transformer is loaded with tier 4 (pipelines/tier4.py), so it is counted in tier 4.

What this does NOT count: activations of a request (latents, attention, VAE decode chunks), the
CUDA context and kernels' workspace, PyTorch's cache, the eight camera-move LoRAs and the Thai
translator (their sizes: bench/reports/BENCHMARKS.md, "Draft mode", and the README's GPU section).
Those activations need a GPU to measure (`bash bench/gpu_check.sh` reports peak VRAM).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from bench.benchmark import build_full_size_models
from bench.cost import build_tier4_models
from pipelines.common import Device
from pipelines.tier4 import VAE_DTYPE, wan_dtype

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
    ("fastwan", "transformer"): (4, "FastWan 2.2 TI2V-5B transformer (the draft's)"),
}
TIER_NAMES = {2: "tier 2", 3: "tier 3 (without the shared CLIP ViT-L)", 4: "tier 4"}
EVERY_TIER = "every tier"


@dataclass(frozen=True)
class Row:
    tier: int
    name: str
    class_name: str
    parameters: int
    bytes: int
    shared: bool  # the same module object as a row above: resident once, counted once
    dtype: str  # as setup holds it on a GPU


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
    wan = Device(HALF.torch_device, wan_dtype(HALF))
    models["wan"] = build_tier4_models(wan)
    models["wan"]["vae"] = models["wan"]["vae"].to(VAE_DTYPE)
    # FastWan 2.2 is a fine-tune of the same transformer (bench/model_configs.json's note): a copy
    # of its architecture, a second resident module.
    models["fastwan"] = {"transformer": copy.deepcopy(models["wan"]["transformer"])}
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
                dtype=str(next(module.parameters()).dtype).removeprefix("torch."),
            )
        )
        seen.add(id(module))
    return rows


def totals(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """(parameters, bytes) held per tier (a shared module under the tier that loads it first) and
    all together."""
    held = [row for row in rows if not row.shared]
    groups = {
        label: [row for row in held if row.tier == tier] for tier, label in TIER_NAMES.items()
    }
    groups[EVERY_TIER] = held
    return {
        label: (sum(row.parameters for row in group), sum(row.bytes for row in group))
        for label, group in groups.items()
    }


def table(rows: list[Row]) -> str:
    lines = [
        "| tier | model | class | held in | parameters | GB | GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.shared:
            lines.append(
                f"| {row.tier} | {row.name} | {row.class_name} | {row.dtype} | (counted above) "
                "| 0 | 0 |"
            )
        else:
            lines.append(
                f"| {row.tier} | {row.name} | {row.class_name} | {row.dtype} "
                f"| {row.parameters / 1e6:,.1f} M | {row.bytes / GB:.2f} | {row.bytes / GIB:.2f} |"
            )
    lines += [
        "",
        "| held together | parameters | GB | GiB |",
        "|---|---|---|---|",
    ]
    for label, (parameters, size) in totals(rows).items():
        lines.append(
            f"| **{label}** | {parameters / 1e6:,.1f} M | **{size / GB:.2f}** | "
            f"**{size / GIB:.2f}** |"
        )
    clip_l = next(row for row in rows if row.shared)
    lines += [
        "",
        f"If SDXL's CLIP ViT-L were not identical to SD 1.5's (setup compares them tensor by "
        f"tensor), a second copy would add {clip_l.bytes / GB:.2f} GB.",
    ]
    return "\n".join(lines)


def main() -> None:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # its fp16-cast notices say nothing about sizes
    print(table(resident_rows()))


if __name__ == "__main__":
    main()
