"""GPU memory the weights of every model take while the container holds them all, in half precision.

    python -m scripts.resident_memory

`setup()` loads both tiers once and keeps them resident, so the weights below sit in GPU memory for
the life of the container, whichever tier a request uses. The models are built from their real
configs (docs/model_configs.json, through scripts/benchmark.py's builder) on the `meta` device:
shapes and dtypes only, no memory and no download, so this runs in seconds on any machine. Bytes
are parameters and buffers at their fp16 size, as `pick_device()` loads them on a GPU.

What this does NOT count: activations of a request (latents, attention, VAE decode chunks), the
CUDA context and kernels' workspace, and PyTorch's cache. Those need a GPU to measure
(`scripts/benchmark.py` reports peak VRAM at the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipelines.common import Device
from scripts.benchmark import build_full_size_models

GB, GIB = 1e9, 2**30
# (group, component) in build_full_size_models -> (tier, what it is). Ordered as the table prints.
COMPONENTS = {
    ("sd15", "unet"): (2, "SD 1.5 UNet"),
    # tier 2 merges the adapter into a UNetMotionModel and drops the standalone copy
    # (pipelines/tier2.py), so the adapter's weights are held once, inside the UNet.
    ("animatediff", "adapter"): (2, "AnimateDiff v3 motion modules (in the UNet)"),
    ("sd15", "vae"): (2, "SD 1.5 VAE"),
    ("sd15", "text_encoder"): (2, "CLIP ViT-L text encoder (shared with SDXL)"),
    # Loaded once in setup and run on both tiers' frames (pipelines/safety.py); listed under tier 2,
    # whose weight set it comes from.
    ("sd15", "safety_checker"): (2, "SD safety checker (CLIP ViT-L/14 image encoder)"),
    ("sdxl", "text_encoder"): (3, "SDXL text encoder 1 = the same CLIP ViT-L"),
    ("sdxl", "unet"): (3, "SDXL base UNet"),
    ("sdxl", "text_encoder_2"): (3, "SDXL text encoder 2 (OpenCLIP bigG)"),
    ("sdxl", "fp16_fix_vae"): (3, "SDXL VAE, fp16-fix"),
    ("svd", "unet"): (3, "SVD-XT 1.1 UNet"),
    ("svd", "vae"): (3, "SVD-XT 1.1 temporal VAE"),
    ("svd", "image_encoder"): (3, "SVD-XT 1.1 CLIP ViT-H image encoder"),
}


@dataclass(frozen=True)
class Row:
    tier: int
    name: str
    class_name: str
    parameters: int
    bytes: int
    shared: bool  # the same module object as a row above: resident once, counted once


def module_bytes(module: torch.nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def resident_rows() -> list[Row]:
    models = build_full_size_models(Device(torch.device("meta"), torch.float16))
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
            )
        )
        seen.add(id(module))
    return rows


def totals(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """(parameters, bytes) held per tier (a shared module under the tier that loads it first) and
    all together."""
    held = [row for row in rows if not row.shared]
    groups = {
        "tier 2": [row for row in held if row.tier == 2],
        "tier 3 (without the shared CLIP ViT-L)": [row for row in held if row.tier == 3],
        "every model resident": held,
    }
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
    for label, (parameters, size) in totals(rows).items():
        lines.append(
            f"| | **{label}** | | {parameters / 1e6:,.1f} M | **{size / GB:.2f}** | "
            f"**{size / GIB:.2f}** |"
        )
    clip_l = next(row for row in rows if row.shared)
    lines.append("")
    lines.append(
        f"If SDXL's CLIP ViT-L were not identical to SD 1.5's (setup compares them tensor by "
        f"tensor), a second copy would add {clip_l.bytes / GB:.2f} GB."
    )
    return "\n".join(lines)


def main() -> None:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # its fp16-cast notices say nothing about sizes
    print(table(resident_rows()))


if __name__ == "__main__":
    main()
