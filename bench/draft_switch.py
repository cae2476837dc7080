"""Switching tier 2 between its standard and draft motion modules: time and memory, both ways.

    python -m bench.draft_switch [--out bench/reports/BENCHMARKS.md] [--full-size]

The draft (pipelines/draft.py) keeps AnimateDiff v3's and AnimateDiff-Lightning's motion modules
resident around one SD 1.5 UNet and swaps which set the UNet runs. This measures, on this machine:

- the swap alone (standard -> draft and draft -> standard), and a whole `DraftMode.active()` with a
  camera move (swap, LoRA on at its strength, then LoRA off and swap back), median of many;
- memory: the process's resident set before and after a thousand switches each way (the swap
  allocates nothing), and the bytes each part holds, at the model's dtype and at fp16 (a GPU);
- on the tiny test weights through the production loader, and with `--full-size` on the real
  architectures (bench/model_configs.json): the spatial UNet on the meta device (the swap never
  touches its weights), both motion-module sets and the eight rank-64 LoRAs allocated in fp16 on
  the CPU with arbitrary values (about 2 GB).

It writes its section of bench/reports/BENCHMARKS.md (between its markers) with the date and the
machine. It measures no GPU figure: with the weights already on the GPU, the swap is the same
Python attribute assignments, and no tensor moves.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from pipelines.common import Device
from pipelines.draft import CAMERA_MOTIONS, DraftMode, MotionModules
from scripts import REPO
from scripts.make_tiny_weights import make_tiny_weights, motion_lora_state_dict

BEGIN, END = "<!-- draft-switch: begin -->", "<!-- draft-switch: end -->"
SWITCHES = 1000  # each way, for the resident-set check
TIMED = 200  # samples per median


def resident_set_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tensor_bytes(modules, fp16: bool = False) -> int:
    seen, total = set(), 0
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            if id(tensor) not in seen and not tensor.is_meta:
                seen.add(id(tensor))
                total += tensor.numel() * (
                    2 if fp16 and tensor.is_floating_point() else tensor.element_size()
                )
    return total


def lora_modules(motion_modules: MotionModules) -> list[torch.nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    parts = (*motion_modules.down, *motion_modules.up, motion_modules.mid_block.motion_modules)
    return [
        child
        for layer in (m for part in parts for m in part.modules() if isinstance(m, BaseTunerLayer))
        for name, child in layer.named_children()
        if name in ("lora_A", "lora_B")
    ]


def motion_parts(motion_modules: MotionModules, with_mid_motion: bool) -> list[torch.nn.Module]:
    parts = [*motion_modules.down, *motion_modules.up]
    return [*parts, motion_modules.mid_block.motion_modules] if with_mid_motion else parts


def median_us(function, samples: int) -> float:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1e6


def measure(draft: DraftMode) -> dict:
    unet = draft.pipeline.unet
    gc.collect()
    before = resident_set_bytes()
    for _ in range(SWITCHES):
        draft.lightning.install(unet)
        draft.standard.install(unet)
    gc.collect()
    after = resident_set_bytes()

    # Each way on its own: a swap to the draft, timed, then back, timed.
    to_draft, to_standard = [], []
    for _ in range(TIMED):
        started = time.perf_counter()
        draft.lightning.install(unet)
        middle = time.perf_counter()
        draft.standard.install(unet)
        to_draft.append(middle - started)
        to_standard.append(time.perf_counter() - middle)

    def whole_draft(camera_motion: str = "zoom_in"):
        with draft.active(camera_motion, 0.75):
            pass

    whole_draft()  # once untimed, like any first call
    assert draft.standard.is_installed_in(unet)
    lightning_parts = motion_parts(draft.lightning, with_mid_motion=True)
    loras = lora_modules(draft.lightning)
    return dict(
        to_draft_us=statistics.median(to_draft) * 1e6,
        to_standard_us=statistics.median(to_standard) * 1e6,
        active_us=median_us(lambda: whole_draft("none"), TIMED),
        active_with_camera_us=median_us(whole_draft, 50),
        resident_set_change_bytes=after - before,
        # fp16, as a GPU holds them; the Lightning modules without the LoRAs wrapped into them.
        standard_fp16_bytes=tensor_bytes(
            motion_parts(draft.standard, with_mid_motion=False), fp16=True
        ),
        lightning_fp16_bytes=tensor_bytes(lightning_parts, fp16=True)
        - tensor_bytes(loras, fp16=True),
        lora_fp16_bytes=tensor_bytes(loras, fp16=True),
    )


def tiny_draft() -> DraftMode:
    from pipelines.tier2 import TextToVideo

    folder = tempfile.mkdtemp(prefix="draft-switch-")
    make_tiny_weights(Path(folder))
    return TextToVideo.load(Path(folder), Device(torch.device("cpu"), torch.float32)).draft


def full_size_draft() -> DraftMode:
    """The real architectures: SD 1.5's UNet with v3's modules (meta: never touched by the swap),
    Lightning's modules and the eight LoRAs in fp16 on the CPU."""
    from diffusers import (
        AnimateDiffPipeline,
        EulerDiscreteScheduler,
        MotionAdapter,
        UNetMotionModel,
    )

    from bench.benchmark import build_full_size_models

    meta = Device(torch.device("meta"), torch.float16)
    models = build_full_size_models(meta)
    adapter = models["animatediff"]["adapter"]
    with torch.device("meta"):
        unet = UNetMotionModel.from_unet2d(models["sd15"]["unet"], adapter).to(torch.float16)
        lightning_adapter = MotionAdapter.from_config(
            {**adapter.config, "use_motion_mid_block": True}
        )
    # Allocated, values arbitrary: the swap's cost does not depend on them.
    lightning_adapter = lightning_adapter.to_empty(device="cpu").to(torch.float16)
    v3_parts = motion_parts(MotionModules.installed_in(unet), with_mid_motion=False)
    for part in v3_parts:
        part.to_empty(device="cpu")
    standard = MotionModules.installed_in(unet)
    lightning = MotionModules.around(unet, lightning_adapter)
    pipeline = AnimateDiffPipeline(
        vae=models["sd15"]["vae"],
        text_encoder=models["sd15"]["text_encoder"],
        tokenizer=None,
        unet=unet,
        motion_adapter=None,
        scheduler=EulerDiscreteScheduler(),
        feature_extractor=None,
        image_encoder=None,
    )
    lightning.install(unet)
    state_dict = {name: tensor for name, tensor in lightning_adapter.state_dict().items()}
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Already found a `peft_config`", category=UserWarning
        )
        for index, camera_motion in enumerate(CAMERA_MOTIONS):
            lora = {
                name: tensor.to(torch.float16)
                for name, tensor in motion_lora_state_dict(state_dict, index).items()
            }
            unet.load_lora_adapter(lora, prefix="unet", adapter_name=camera_motion)
    unet.disable_lora()
    standard.install(unet)
    return DraftMode(pipeline, standard, lightning)


def machine() -> str:
    return (
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), "
        f"torch {torch.__version__}, {platform.node()}"
    )


def section(results: dict[str, dict]) -> str:
    mib = 2**20
    lines = [
        BEGIN,
        "## Draft mode: switching motion modules",
        "",
        f"`python -m bench.draft_switch{' --full-size' if len(results) > 1 else ''}`, "
        f"{datetime.date.today().isoformat()}, {machine()}. No GPU: the figures are the CPU's; "
        "the swap itself is attribute assignments whatever the device, and no tensor moves.",
        "",
        "| weights | standard → draft µs | draft → standard µs "
        "| a whole draft's switching, no camera move µs "
        "| with a camera move (LoRA on, then off) µs "
        f"| resident-set change over {SWITCHES} switches each way | v3 modules MiB "
        "| Lightning modules MiB | 8 LoRAs MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['to_draft_us']:.1f} | {r['to_standard_us']:.1f} | "
            f"{r['active_us']:.1f} | {r['active_with_camera_us']:.0f} | "
            f"{r['resident_set_change_bytes'] / mib:+.2f} MiB | "
            f"{r['standard_fp16_bytes'] / mib:.1f} | "
            f"{r['lightning_fp16_bytes'] / mib:.1f} | {r['lora_fp16_bytes'] / mib:.1f} |"
        )
    lines += [
        "",
        "The draft holds no second spatial UNet: its mid block is a shell around the UNet's own "
        "resnets and attentions (tests/test_draft.py checks that no tensor is allocated by a "
        "switch). What it adds to a container is Lightning's modules and the LoRAs, resident "
        "from setup; MiB are at fp16, what a GPU holds. A camera move also switches its LoRA on "
        "and off in every wrapped projection (peft's per-layer `set_adapter`, `set_scale`, "
        "`enable_adapters`, which also set `requires_grad` on every adapter's tensors): that, "
        "not the swap, is the cost of the camera-move column; a draft without one leaves the "
        "LoRAs alone.",
        END,
    ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    current = path.read_text() if path.is_file() else ""
    if BEGIN in current:
        current = current[: current.index(BEGIN)] + text + current[current.index(END) + len(END) :]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "reports" / "BENCHMARKS.md")
    parser.add_argument(
        "--full-size", action="store_true", help="also the real architectures (about 2 GB of RAM)"
    )
    args = parser.parse_args()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    results = {"tiny test weights (fp32)": measure(tiny_draft())}
    if args.full_size:
        results["full size (fp16, spatial UNet on meta)"] = measure(full_size_draft())
    text = section(results)
    write_section(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
