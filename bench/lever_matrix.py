"""The speed levers per tier: eager, each lever alone, then all together, with the same request.

    # GPU: full-size random weights (bench/benchmark.py's), each tier's defaults at 2 steps
    python -m bench.lever_matrix --out bench/reports --compile-mode default
    # CPU: tiny weights, tiny sizes (CI); COMPILE only with --with-compile
    python -m bench.lever_matrix --smoke --out DIR

Each tier is loaded alone once, through `load_tiers` with no lever. Each variant puts its levers on
those models as setup would (`lever_targets`, pipelines/tiers.py), runs the same request and seed,
and takes them off again (`remove_levers`, pipelines/levers.py; tests/test_levers.py holds both to
the frames of a tier loaded with the levers and without, exactly), so a tier costs one load, not
one per variant. Compiled blocks cannot be taken off: a compiling variant is the last on its load,
and a second one loads the tier again. Eager runs a warm-up first (cold models), and a compiling
variant one that compiles; a variant without COMPILE runs once, on the models eager warmed. Per
variant: warm-up and timed seconds, eager's seconds over the variant's, the frames' largest
difference from eager's (frames in [0, 1]), peak GPU memory over its runs (CUDA only; the tier's
models included), the graphs inductor compiled or took from its cache, and what the
levers logged (one that cannot apply says so). It writes lever_matrix.json and lever_matrix.md
(dated, with the machine) to --out after every variant, so a run cut off by a time limit keeps
what it measured, and prints the ratios and the defaults the figures support.

On a GPU the request is each tier's production defaults with `--steps` denoising steps (2 unless
told), tier 4 at 41 frames (GPU_SIZES says why), so every time is one video at that step count, not
at the defaults' 25 or 50. The tiers run one after the other, each with its compiling variants
last. On a GPU COMPILE runs only with every other lever, beside "all together but COMPILE" (one
compile per tier; `--compile-alone` adds COMPILE=1 alone, one more compile per tier).

Run time on one H100, an estimate: the program has not run on a GPU. Per tier, one load from the
page cache, eager's warm-up and timed video, one video for each of the four variants without
COMPILE, then "all together": a compile and a timed video. Tier 2: a load of about 5 s, videos of
about 0.5 s, a regional compile of 30-60 s: about 1 minute. Tier 3: a load of about 8 s, videos of
about 3 s (SDXL keyframe, SVD clip and its decode), SDXL's and SVD's blocks compiled, about 70 s:
1.7 minutes. Tier 4: a load of about 15 s (34 GB), videos of about 6 s (two steps over 9,680 tokens
and the decode of 41 frames), a compile of about 40 s: 1.6 minutes. In all about 4.3 minutes, run
as `bash bench/gpu_check.sh levers` (a load per variant made it 7.5). `--compile-mode default`
leaves out max-autotune's autotuning, which alone can take minutes.

In --smoke mode (CPU, float32, tiny weights, benchmark.py's SMOKE_SIZES) COMPILE is left out
unless `--with-compile`: inductor's C++ compiles on a CPU take longer than the rest of the smoke
run together (tier 2's about a minute on two cores, the other five variants half a minute). Its
timings mean nothing; it checks the harness. Its errors mean little too: tiny SVD's deepest
GroupNorms normalise a 1×2 latent at 128×64, where a rounding difference grows, so tier 3's
CHANNELS_LAST and COMPILE rows there show errors of tenths (tests/test_levers.py holds the levers
at 64×64, where they stay within three levels of 255).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import io
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bench.benchmark import (
    FULL_SIZE_TIERS,
    PROMPT,
    SMOKE_SIZES,
    ensure_full_size_weights,
    free_memory,
    machine,
    timed,
)
from pipelines.common import Device, pick_device
from pipelines.inputs import TIERS, VideoRequest, resolve_request
from pipelines.levers import COMPILE_MODES, Levers, compile_counts
from pipelines.progress import Progress
from pipelines.tiers import Tier, lever_targets, load_tiers
from scripts import REPO
from scripts.make_tiny_weights import make_tiny_weights

SEED = 1234  # bench/benchmark.py's
# Few steps, so that the matrix fits bench/gpu_check.sh's time limit. The fixed stages (text
# encoding, decoding) weigh more in a 2-step video than in a 25-step one, so its ratios are the
# whole video's at 2 steps, not the denoising's alone.
GPU_STEPS = 2
# Tier 4 at its defaults' 1280×704 but 41 frames, not 121: its VAE decode would take most of each
# variant's time, and the levers hardly change it (CHANNELS_LAST does not reach the Wan VAE's 3-D
# convolutions; COMPILE and the SDPA backend act on the transformer).
# The transformer then reads 9,680 tokens instead of 27,280, so attention's share, where the SDPA
# backend acts, is smaller than at the defaults: its ratio there is a lower bound.
GPU_SIZES = {4: dict(num_frames=41)}
# The SDPA backend each lever run puts first: flash on a GPU; on the CPU torch has no flash kernel
# for every shape, and efficient is the one tests/test_levers.py's every-lever run uses.
SDPA_BACKEND = {True: "flash", False: "efficient"}
# What a figure must show to support turning a lever on: one timed run each, so a gain under 5 %
# is not told apart from run-to-run spread; and 1e-2 of frames in [0, 1] is 2.5 levels of the
# 8-bit video's 255.
SUPPORT_SPEED_UP = 1.05
SUPPORT_ERROR = 1e-2
# The prefixes of what apply_levers logs (pipelines/levers.py); the rest of setup's output is not
# a lever's.
LEVER_LOG_PREFIXES = ("SDPA_BACKEND", "CHANNELS_LAST:", "FUSE_QKV:", "COMPILE:")
EAGER = "eager"


def variants(
    gpu: bool, with_compile: bool, compile_mode: str, compile_alone: bool = True
) -> dict[str, Levers]:
    """Eager (every lever at Levers' defaults, all off), each lever alone, then all together.
    Without `compile_alone` COMPILE runs only with the others, beside "all together but COMPILE":
    one compile per tier instead of two, and compile's gain is the ratio of those two."""
    backend = SDPA_BACKEND[gpu]
    every = dict(sdpa_backend=backend, channels_last=True, fuse_qkv=True)
    matrix = {
        EAGER: Levers(),
        f"SDPA_BACKEND={backend}": Levers(sdpa_backend=backend),
        "CHANNELS_LAST=1": Levers(channels_last=True),
        "FUSE_QKV=1": Levers(fuse_qkv=True),
    }
    if not with_compile or not compile_alone:
        matrix["all together but COMPILE"] = Levers(**every)
    if with_compile:
        if compile_alone:
            matrix["COMPILE=1"] = Levers(compile=True, compile_mode=compile_mode)
        matrix["all together"] = Levers(**every, compile=True, compile_mode=compile_mode)
    return matrix


def run_order(tiers, matrix: dict[str, Levers]) -> list[tuple[int, str]]:
    """Tier by tier, so that a run cut off by its time limit holds whole tiers: each tier's eager
    run first (the others are compared with it), its compiling variants last."""
    cheap = [name for name, levers in matrix.items() if not levers.compile]
    costly = [name for name, levers in matrix.items() if levers.compile]
    return [(tier, name) for tier in tiers for name in cheap + costly]


def generate(tier: Tier, request: VideoRequest) -> np.ndarray:
    return tier.generate(request, Progress(tier.progress_units(request), stream=io.StringIO()))


def load_eager(weights_dir: Path, device: Device, number: int) -> tuple[Tier, float]:
    """Tier `number` alone with no lever, and its load's seconds. (measure_tier has freed the
    tier before it.)"""
    load_seconds, loaded = timed(
        lambda: load_tiers(weights_dir, device, tiers=(number,), levers=Levers()), device
    )
    return loaded.pop(number), load_seconds


def measure(
    tier: Tier, number: int, request: VideoRequest, device: Device, levers: Levers, warm_up: bool
) -> tuple[dict, np.ndarray]:
    """One variant on a loaded tier: its levers applied as setup applies them (the same
    LeverTargets), a warm-up if `warm_up`, a timed run, and every lever but COMPILE removed again,
    so the next variant starts from the same eager models."""
    if levers.compile:
        torch._dynamo.reset()  # it compiles its own graphs, not an earlier variant's guards
    if device.is_gpu:
        torch.cuda.reset_peak_memory_stats()
    compiled_before, cached_before = compile_counts()
    targets = lever_targets(number, tier)
    applied = io.StringIO()
    with contextlib.redirect_stdout(applied):
        for target in targets:
            target.apply(levers)
    sys.stdout.write(applied.getvalue())
    one_video = functools.partial(generate, tier, request)
    warm_up_seconds = timed(one_video, device)[0] if warm_up else None
    seconds, frames = timed(one_video, device)
    compiled, cached = compile_counts()
    if not levers.compile:
        for target in targets:
            target.remove()
    row = dict(
        levers=asdict(levers),
        warm_up_seconds=warm_up_seconds,
        seconds=seconds,
        peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30 if device.is_gpu else None,
        graphs_compiled=compiled - compiled_before,
        graphs_from_cache=cached - cached_before,
        lever_log=[
            line for line in applied.getvalue().splitlines() if line.startswith(LEVER_LOG_PREFIXES)
        ],
        frames_finite=bool(np.isfinite(frames).all()),
    )
    return row, frames


def measure_tier(
    weights_dir: Path,
    device: Device,
    number: int,
    request: VideoRequest,
    matrix: dict[str, Levers],
    measured: dict,
    write,
) -> None:
    """Every variant of one tier into `measured`, calling `write` after each. The tier is loaded
    once for eager and every variant that does not compile, each applied and removed in turn;
    compiled blocks cannot be removed, so a compiling variant is the last use of its load."""
    loaded: Tier | None = None
    eager_frames = None
    for _, name in run_order((number,), matrix):
        print(f"tier {number}: {name}", flush=True)
        levers = matrix[name]
        load_seconds = None
        if loaded is None:
            loaded, load_seconds = load_eager(weights_dir, device, number)
        # Eager's first video runs on cold models, a compiling variant's compiles: each is timed
        # again after its warm-up. A lever without COMPILE runs on models eager has warmed.
        row, frames = measure(
            loaded, number, request, device, levers, warm_up=name == EAGER or levers.compile
        )
        row["load_seconds"] = load_seconds
        if levers.compile:
            loaded = None
            free_memory(device)
        if name == EAGER:
            eager_frames = frames
        eager = measured["variants"].get(EAGER, row)
        row["eager_over_variant"] = eager["seconds"] / row["seconds"]
        row["max_abs_error"] = float(np.abs(frames - eager_frames).max())
        row["verdict"] = verdict(name, row)
        measured["variants"][name] = row
        del frames
        write()
    del loaded
    free_memory(device)


def verdict(name: str, row: dict) -> str:
    """What the variant's figures say about its default (docs/SPEED.md's table)."""
    if name == EAGER:
        return "the reference"
    if not row["frames_finite"] or row["max_abs_error"] >= SUPPORT_ERROR:
        return f"changes the frames (max abs error {row['max_abs_error']:.2g}): keep it off"
    if row["eager_over_variant"] > SUPPORT_SPEED_UP:
        return f"supports turning it on ({row['eager_over_variant']:.2f}× eager)"
    return f"no gain over {SUPPORT_SPEED_UP - 1:.0%}: supports keeping the default"


def lever_matrix(
    weights_dir: Path,
    device: Device,
    tiers,
    steps: int | None,
    matrix: dict[str, Levers],
    write,
) -> dict:
    requests = {
        tier: resolve_request(
            dict(
                tier=tier,
                prompt=PROMPT,
                seed=SEED,
                **(GPU_SIZES.get(tier, {}) if device.is_gpu else SMOKE_SIZES[tier]),
                **({"num_inference_steps": steps} if steps else {}),
            )
        )
        for tier in tiers
    }
    results = {
        "tiers": {
            tier: dict(
                settings=f"{request.num_frames} frames {request.width}×{request.height}, "
                f"{request.num_inference_steps} steps",
                variants={},
            )
            for tier, request in requests.items()
        },
        "planned": [f"tier {tier}: {name}" for tier, name in run_order(tiers, matrix)],
    }
    for tier in tiers:
        measure_tier(
            weights_dir,
            device,
            tier,
            requests[tier],
            matrix,
            results["tiers"][tier],
            lambda: write(results),
        )
    return results


def seconds_text(seconds: float | None, digits: int) -> str:
    return "—" if seconds is None else f"{seconds:.{digits}f}"


def write_results(out: Path, results: dict, device: Device, smoke: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    done = sum(len(t["variants"]) for t in results["tiers"].values())
    results = dict(
        results,
        date=datetime.date.today().isoformat(),
        machine=machine(device),
        smoke=smoke,
        complete=done == len(results["planned"]),
    )
    (out / "lever_matrix.json").write_text(json.dumps(results, indent=1))
    lines = [
        f"# Lever matrix, {results['date']}: {results['machine']}",
        "",
        "CPU smoke run on tiny random weights: checks the harness, says nothing about speed; the "
        "verdicts only show the rule."
        if smoke
        else "Full-size architectures, random weights, each tier's defaults at the steps shown: "
        "seconds are one video at that step count.",
        "",
        f"A lever is supported when eager / variant > {SUPPORT_SPEED_UP} with max abs error "
        f"< {SUPPORT_ERROR:g} (frames in [0, 1]). Each tier is loaded once for eager and the "
        "variants without COMPILE, each lever applied to the loaded models and removed after "
        "(load s: —); a compiling variant loads it afresh where an earlier one compiled. "
        "Warm-up is the first run of eager (cold models) and of a compiling variant (it "
        "compiles); timed is the run after it. A variant without COMPILE runs once, on models "
        "eager warmed. Peak GPU memory includes the tier's models.",
        "",
        "| tier | settings | variant | load s | warm-up s | timed s | eager / variant "
        "| max abs err | peak GPU GiB | graphs compiled / from cache | levers logged | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tier, measured in results["tiers"].items():
        for name, r in measured["variants"].items():
            gib = f"{r['peak_gpu_gib']:.1f}" if r["peak_gpu_gib"] is not None else "—"
            logged = "; ".join(r["lever_log"]).replace("|", "/") or "—"
            lines.append(
                f"| {tier} | {measured['settings']} | {name} "
                f"| {seconds_text(r['load_seconds'], 1)} "
                f"| {seconds_text(r['warm_up_seconds'], 2)} | {r['seconds']:.2f} "
                f"| {r['eager_over_variant']:.2f}× | {r['max_abs_error']:.2g} | {gib} "
                f"| {r['graphs_compiled']} / {r['graphs_from_cache']} | {logged} "
                f"| {r['verdict']} |"
            )
    lines += [
        "",
        "Graphs from cache: inductor took them from its on-disk cache (an earlier variant's or "
        "run's), so that warm-up is shorter than a cold compile.",
    ]
    if not results["complete"]:
        measured = {
            f"tier {tier}: {name}" for tier, t in results["tiers"].items() for name in t["variants"]
        }
        missing = [planned for planned in results["planned"] if planned not in measured]
        lines += ["", "Not measured (the run stopped first): " + ", ".join(missing) + "."]
    (out / "lever_matrix.md").write_text("\n".join(lines) + "\n")


def print_summary(results: dict, smoke: bool) -> None:
    print("Eager / variant, and what the figures support:")
    for tier, measured in results["tiers"].items():
        for name, r in measured["variants"].items():
            if name != EAGER:
                print(
                    f"  tier {tier} {name}: {r['eager_over_variant']:.2f}×, "
                    f"max abs error {r['max_abs_error']:.2g}: {r['verdict']}"
                )
    if smoke:
        print("  (a CPU smoke run: these timings support no default)")


def parse_tiers(text: str) -> tuple[int, ...]:
    tiers = tuple(int(part) for part in text.split(",") if part.strip())
    unknown = [tier for tier in tiers if tier not in TIERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"no tier {unknown[0]}; the tiers are {TIERS}")
    return tiers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for lever_matrix.json and lever_matrix.md"
    )
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny weights, tiny sizes")
    parser.add_argument("--weights-dir", type=Path, default=REPO / ".cache" / "full-size-weights")
    parser.add_argument(
        "--tiers",
        type=parse_tiers,
        default=None,
        help=f"comma-separated (default: {','.join(map(str, FULL_SIZE_TIERS))} on a GPU, "
        "every tier with --smoke)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"denoising steps per video (default {GPU_STEPS} on a GPU, SMOKE_SIZES' with --smoke)",
    )
    parser.add_argument(
        "--with-compile", action="store_true", help="with --smoke: the COMPILE=1 variants too"
    )
    parser.add_argument(
        "--compile-alone",
        action="store_true",
        help="on a GPU: COMPILE=1 alone too (one more compile per tier)",
    )
    parser.add_argument(
        "--compile-mode",
        choices=("", *COMPILE_MODES),
        default="",
        help="COMPILE_MODE of the compiling variants (default: each tier's own, as in production)",
    )
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory(prefix="lever-matrix-weights-")  # the smoke run's
    if args.smoke:
        device = Device(torch.device("cpu"), torch.float32)
        weights_dir = Path(scratch.name)
        make_tiny_weights(weights_dir)
        tiers = args.tiers or TIERS
        steps = args.steps
        with_compile = args.with_compile
    else:
        device = pick_device()
        if not device.is_gpu:
            sys.exit("The lever matrix needs a CUDA GPU; use --smoke on a CPU.")
        tiers = args.tiers or FULL_SIZE_TIERS
        beyond = [tier for tier in tiers if tier not in FULL_SIZE_TIERS]
        if beyond:
            sys.exit(
                f"No full-size weights are built for tier {beyond[0]} "
                f"(bench/benchmark.py's FULL_SIZE_TIERS: {FULL_SIZE_TIERS})."
            )
        weights_dir = args.weights_dir
        ensure_full_size_weights(weights_dir, device)
        steps = args.steps or GPU_STEPS
        with_compile = True
    # The smoke run with COMPILE keeps both compiling variants: the CPU checks each one.
    compile_alone = args.compile_alone or args.smoke
    matrix = variants(device.is_gpu, with_compile, args.compile_mode, compile_alone)
    with scratch:
        results = lever_matrix(
            weights_dir,
            device,
            tiers,
            steps,
            matrix,
            lambda partial: write_results(args.out, partial, device, args.smoke),
        )
    print((args.out / "lever_matrix.md").read_text())
    print_summary(results, args.smoke)


if __name__ == "__main__":
    main()
