"""The GPU checks that go through Cog's server, on the full-size weights the benchmark wrote, in
float16 (the default on a GPU). bench/gpu_check.sh runs steps 1-4 after the benchmark and step 5
after the lever matrix.

    python -m bench.gpu_check --weights-dir .cache/full-size-weights --out bench/reports
    python -m bench.gpu_check --part server --out bench/reports  # steps 1-4 only
    python -m bench.gpu_check --part compile-cache --out bench/reports  # step 5 only
    python -m bench.gpu_check --smoke --out /tmp/check  # CPU, tiny weights: the harness only (CI)

1. Setup: seconds to READY, and the GPU memory the worker holds once every tier is resident,
   beside the weights bench/resident_memory.py counts on the meta device (on a GPU only).
2. A short soak: nine predictions of every tier at small sizes, the worker's GPU memory after
   each.
3. A real CUDA out-of-memory: a tier-2 prediction at the defaults; then this process takes all the
   free GPU memory but OOM_MARGIN_GIB (a smaller or shared card), and an oversized request (tier 2,
   32 frames at 1024×1024) must fail with the model's out-of-memory message, the server must stay
   READY, and the default prediction must succeed again.
4. float16 frames: every prediction that succeeded passed the finite check before encoding
   (pipelines/video.py); the default prediction's video is decoded and its frames' spread reported.
5. Setup without and with the compile cache: two boots of tier 2 alone with COMPILE=1 (in
   COMPILE_MODE=default, without max-autotune's minutes of autotuning), each with an empty inductor
   cache of its own, so that only the compile cache (pipelines/levers.py) carries kernels from the
   first boot to the second. Per boot: seconds to READY, the first prediction (where the first boot
   compiles), a second one, and the graphs compiled and taken from the cache, as setup logs them.

Writes steps 1-4 to OUT/gpu_check.json and gpu_check.md, step 5 to OUT/compile_cache.json and
compile_cache.md (each with date and machine), and prints their summaries.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.benchmark import machine
from pipelines.common import pick_device
from pipelines.levers import COMPILE_CACHE_DIR, logged_compile_counts
from scripts import REPO
from scripts.cog_server import CogServer, decode_data_uri

GIB = 2**30
PROMPT = "a red fox running through fresh snow at sunrise, cinematic"
# The largest tier-2 request the inputs allow: eight times the default's pixels per step. Two steps,
# so that a card on which it does fit does not spend minutes on it.
OVERSIZED = dict(tier=2, width=1024, height=1024, num_frames=32, num_inference_steps=2)
OOM_MARGIN_GIB = 1.0
PLANS = {
    "gpu": dict(
        soak=[
            dict(tier=2, width=256, height=256, num_frames=8, num_inference_steps=10),
            dict(tier=3, width=512, height=288, num_frames=8, num_inference_steps=10),
            dict(tier=4, width=640, height=352, num_frames=17, num_inference_steps=4),
        ]
        * 3,
        default=dict(tier=2),  # tier 2's defaults: 16 frames 512×512, 25 steps
        compile=dict(env=dict(LOADED_TIERS="2", COMPILE_MODE="default"), request=dict(tier=2)),
    ),
    # Tiny weights on a CPU: every request of the GPU plan's kinds, at sizes that take a second.
    "smoke": dict(
        soak=[
            dict(tier=2, width=64, height=64, num_frames=8, num_inference_steps=2),
            dict(tier=3, width=128, height=64, num_frames=8, num_inference_steps=2),
            dict(tier=4, width=64, height=64, num_frames=9, num_inference_steps=2),
        ],
        default=dict(tier=2, width=64, height=64, num_frames=8, num_inference_steps=2),
        # Tier 4: one compiled block, the cheapest compile on a CPU (tests/test_levers.py's).
        compile=dict(
            env=dict(LOADED_TIERS="4"),
            request=dict(tier=4, width=64, height=64, num_frames=9, num_inference_steps=2),
        ),
    ),
}


def gpu_used_gib() -> float | None:
    """Memory in use on the whole GPU (every process), as the driver counts it; None on a CPU."""
    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return (total - free) / GIB


def worker_gpu_gib(baseline: float | None) -> float | None:
    used = gpu_used_gib()
    return None if used is None else used - baseline


def frame_spread(video: bytes) -> float:
    """The smallest per-frame standard deviation of an mp4's pixels (0-255): 0 is a flat frame."""
    import imageio_ffmpeg

    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(video)
        handle.flush()
        reader = imageio_ffmpeg.read_frames(handle.name)
        width, height = next(reader)["size"]
        return min(
            float(np.frombuffer(frame, np.uint8).reshape(height, width, 3).std())
            for frame in reader
        )


def predict(server: CogServer, inputs: dict) -> dict:
    started = time.monotonic()
    result = server.predict({"prompt": PROMPT, "seed": 1234, **inputs}, timeout=600)
    return dict(
        status=result["status"],
        error=result.get("error"),
        seconds=time.monotonic() - started,
        output=result.get("output"),
    )


def health_after(server: CogServer) -> str:
    """READY once Cog has freed the slot, else the status it stays in (UNHEALTHY, DEFUNCT, ...)."""
    try:
        return server.wait_until_ready(timeout=30)["status"]
    except (TimeoutError, RuntimeError):
        return server.health()["status"]


def check(weights_dir: Path, log: Path, plan: dict) -> dict:
    baseline = gpu_used_gib()  # this process's own CUDA context, before the server starts
    server = CogServer(weights_dir, log)
    results: dict = {}
    try:
        started = time.monotonic()
        server.wait_until_ready(timeout=600)
        results["setup_seconds"] = time.monotonic() - started
        results["worker_gpu_after_setup_gib"] = worker_gpu_gib(baseline)

        soak = []
        for inputs in plan["soak"]:
            outcome = predict(server, inputs)
            soak.append(
                dict(
                    tier=inputs["tier"],
                    status=outcome["status"],
                    seconds=outcome["seconds"],
                    worker_gpu_gib=worker_gpu_gib(baseline),
                    error=outcome["error"],
                )
            )
        results["soak"] = soak

        default = predict(server, plan["default"])
        results["default_tier2"] = dict(
            request=plan["default"],
            status=default["status"],
            seconds=default["seconds"],
            error=default["error"],
            worker_gpu_gib=worker_gpu_gib(baseline),
        )
        if default["status"] == "succeeded":
            results["default_tier2"]["min_frame_spread"] = frame_spread(
                decode_data_uri(default["output"])[1]
            )
        if torch.cuda.is_available():
            results["out_of_memory"] = out_of_memory(server, plan["default"])
        return results
    finally:
        server.stop()


def out_of_memory(server: CogServer, default: dict) -> dict:
    """Leave the worker only OOM_MARGIN_GIB beyond what it holds now (its weights and the cache the
    default prediction left): the oversized request cannot fit, the default one can."""
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(int(free - OOM_MARGIN_GIB * GIB), dtype=torch.uint8, device="cuda")
    try:
        oversized = predict(server, OVERSIZED)
        ready_after = health_after(server)
        again = (
            predict(server, default)
            if ready_after == "READY"
            else dict(status="not run", error="the server was not READY", seconds=0.0)
        )
    finally:
        del hog
        torch.cuda.empty_cache()
    return dict(
        oversized_status=oversized["status"],
        oversized_error=oversized["error"],
        oversized_seconds=oversized["seconds"],
        health_after=ready_after,
        default_after_status=again["status"],
        default_after_error=again["error"],
        default_after_seconds=again["seconds"],
    )


def last_counts(log: Path) -> tuple[int, int] | None:
    """The last (graphs compiled, taken from the cache) a boot logged; None if it logged none."""
    counts = logged_compile_counts(log.read_text())
    return counts[-1] if counts else None


def compile_boots(weights_dir: Path, log_dir: Path, plan: dict) -> list[dict]:
    """Two boots with COMPILE=1 on one weights folder, the first without a compile cache."""
    shutil.rmtree(weights_dir / COMPILE_CACHE_DIR, ignore_errors=True)
    boots = []
    for boot in ("first", "second"):
        log = log_dir / f"gpu-check-compile-{boot}-boot.log"
        inductor = tempfile.TemporaryDirectory(prefix=f"gpu-check-inductor-{boot}-")
        env = {**plan["env"], "COMPILE": "1", "TORCHINDUCTOR_CACHE_DIR": inductor.name}
        server = CogServer(weights_dir, log, extra_env=env)
        try:
            started = time.monotonic()
            server.wait_until_ready(timeout=600)
            setup_seconds = time.monotonic() - started
            first, again = predict(server, plan["request"]), predict(server, plan["request"])
        finally:
            server.stop()
            inductor.cleanup()
        boots.append(
            dict(
                boot=boot,
                setup_seconds=setup_seconds,
                first_prediction=dict(status=first["status"], seconds=first["seconds"]),
                second_prediction=dict(status=again["status"], seconds=again["seconds"]),
                graphs_compiled_and_from_cache=last_counts(log),
                cache_files=sorted(p.name for p in (weights_dir / COMPILE_CACHE_DIR).glob("*")),
            )
        )
    return boots


def compile_lines(boots: list[dict]) -> list[str]:
    lines = []
    for row in boots:
        counts = row["graphs_compiled_and_from_cache"]
        lines.append(
            f"- {row['boot']} boot with COMPILE=1: setup {row['setup_seconds']:.1f} s, first "
            f"prediction {row['first_prediction']['status']} in "
            f"{row['first_prediction']['seconds']:.1f} s, second "
            f"{row['second_prediction']['status']} in {row['second_prediction']['seconds']:.1f} s; "
            + (
                f"graphs compiled {counts[0]}, taken from the cache {counts[1]}"
                if counts
                else "no compile counts logged"
            )
        )
    first, second = boots
    saved = (
        first["setup_seconds"]
        + first["first_prediction"]["seconds"]
        - second["setup_seconds"]
        - second["first_prediction"]["seconds"]
    )
    lines.append(
        f"- the compile cache saves a cold boot {saved:.1f} s to its first video "
        "(setup and first prediction, first boot minus second)"
    )
    return lines


def counted_weights_gib() -> float:
    """Every tier's weights as bench/resident_memory.py counts them (meta device, the precision
    setup holds each in), for the worker's measured memory after setup to be read against."""
    from bench import resident_memory

    rows = resident_memory.resident_rows()
    return resident_memory.totals(rows)[resident_memory.EVERY_TIER][1] / 2**30


def gib(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def summary_lines(results: dict) -> list[str]:
    soak, default = results["soak"], results["default_tier2"]
    counted = results.get("weights_counted_gib")
    lines = [
        f"- setup to READY: {results['setup_seconds']:.1f} s; worker GPU memory after setup: "
        f"{gib(results['worker_gpu_after_setup_gib'])} GiB"
        + (
            ""
            if counted is None
            else f" (every tier's weights as bench/resident_memory.py counts them: {counted:.2f} "
            "GiB; the translator and the camera-move LoRAs, about 0.6 GB, the CUDA context and "
            "PyTorch's cache come on top)"
        ),
        f"- soak ({len(soak)} predictions, every tier, small sizes): "
        f"{sum(row['status'] == 'succeeded' for row in soak)} succeeded; "
        "worker GPU memory after each: "
        + ", ".join(gib(row["worker_gpu_gib"]) for row in soak)
        + " GiB",
        "- tier 2 ("
        f"{'its defaults' if default['request'] == dict(tier=2) else default['request']}) "
        f"through the server: {default['status']} in {default['seconds']:.1f} s, "
        f"worker GPU memory after: {gib(default['worker_gpu_gib'])} GiB, "
        f"smallest per-frame pixel spread {default.get('min_frame_spread', float('nan')):.1f} "
        "(0 = a flat frame; NaN frames fail before encoding)",
    ]
    oom = results.get("out_of_memory")
    if oom is None:
        return [*lines, "- out of memory: not tried (no GPU)"]
    expected = "out of GPU memory at 32 frames 1024×1024 (tier 2)"
    as_expected = (
        oom["oversized_status"] == "failed"
        and expected in (oom["oversized_error"] or "")
        and oom["health_after"] == "READY"
        and oom["default_after_status"] == "succeeded"
    )
    return [
        *lines,
        f"- out of memory ({'as expected' if as_expected else 'NOT as expected'}): "
        f"oversized request {oom['oversized_status']} "
        f"({(oom['oversized_error'] or '')[-160:]}) in {oom['oversized_seconds']:.1f} s; "
        f"health then {oom['health_after']}; the default prediction again: "
        f"{oom['default_after_status']} in {oom['default_after_seconds']:.1f} s",
    ]


PARTS = ("server", "compile-cache")


def write_report(
    out: Path, name: str, title: str, on_gpu: str, results: dict, smoke: bool, body: list[str]
) -> None:
    """OUT/NAME.json and OUT/NAME.md, dated, with the machine (as the benchmark names it), and the
    summary printed; `on_gpu` says what a GPU run ran on."""
    results = dict(
        results,
        date=datetime.date.today().isoformat(),
        smoke=smoke,
        machine=machine(pick_device()),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=1))
    lines = [
        f"# {title}, {results['date']}: {results['machine']}",
        "",
        "CPU smoke run on tiny random weights: checks the harness, says nothing about a GPU."
        if smoke
        else on_gpu,
        "",
        *body,
    ]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights-dir",
        type=Path,
        help="default: .cache/full-size-weights (the benchmark's); "
        "with --smoke, tiny weights to use instead of writing new ones",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for gpu_check.json and .md (steps 1-4), compile_cache.json and .md (step 5)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="CPU, tiny weights, tiny sizes: the harness only"
    )
    parser.add_argument(
        "--part",
        choices=PARTS,
        help="only steps 1-4 (server) or only step 5 (compile-cache); default: both",
    )
    args = parser.parse_args()
    parts = [args.part] if args.part else list(PARTS)
    scratch = tempfile.TemporaryDirectory(
        prefix="gpu-check-weights-"
    )  # the smoke run's tiny weights
    if args.smoke:
        from scripts.make_tiny_weights import make_tiny_weights

        weights_dir = args.weights_dir or Path(scratch.name)
        if args.weights_dir is None:
            make_tiny_weights(weights_dir)
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_check.py needs a CUDA GPU; use --smoke on a CPU.")
        weights_dir = args.weights_dir or REPO / ".cache" / "full-size-weights"
        if not (weights_dir / "FULL_SIZE_RANDOM_WEIGHTS").is_file():
            sys.exit(
                f"No full-size weights in {weights_dir}: run bench/benchmark.py first "
                "(it writes them)."
            )
    plan = PLANS["smoke" if args.smoke else "gpu"]
    logs = Path(tempfile.gettempdir())
    with scratch:
        if "server" in parts:
            results = check(weights_dir, logs / "gpu-check-server.log", plan)
            if not args.smoke:  # the count is the full-size models': no tiny ones to compare
                results["weights_counted_gib"] = counted_weights_gib()
            on_gpu = (
                "Through Cog's server on the full-size random weights, float16 (tier 4 in "
                "bfloat16, its VAE in float32; `bash bench/gpu_check.sh`)."
            )
            write_report(
                args.out,
                "gpu_check",
                "GPU check",
                on_gpu,
                results,
                args.smoke,
                summary_lines(results),
            )
        if "compile-cache" in parts:
            if args.smoke:  # the boots write a compile cache: never into weights others read
                copy = Path(scratch.name) / "compile-boots-weights"
                shutil.copytree(weights_dir, copy)
                weights_dir = copy
            boots = compile_boots(weights_dir, logs, plan["compile"])
            on_gpu = (
                "Tier 2 alone through Cog's server on the full-size random weights, float16, "
                "COMPILE=1 with COMPILE_MODE=default (`bash bench/gpu_check.sh levers`)."
            )
            write_report(
                args.out,
                "compile_cache",
                "Compile cache",
                on_gpu,
                {"boots": boots},
                args.smoke,
                compile_lines(boots),
            )


if __name__ == "__main__":
    main()
