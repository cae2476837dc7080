"""Full size on a CPU, once: every model at its real architecture, random weights, bfloat16, through
setup() and Cog's server, to see the memory and the load that the tiny weights cannot show.

    nice python -m bench.rehearse --out bench/reports  # writes rehearse.json and rehearse.md there

1. Each weight set is built at its real architecture (bench/model_configs.json, as the GPU benchmark
   builds them) with random weights in bfloat16, in a child process of its own, so one set's memory
   is given back before the next is built, and written in the production layout: fp16 files under
   the published metadata, as the Hub serves them. The folder is then locked like a real download.
2. Cog's server starts on it with MODEL_DTYPE=bfloat16: setup() checks every file against the lock
   (a first boot: every file hashed) and loads both tiers, every model resident.
3. One tiny-size, one-step prediction per tier (the models are full size, the request is not).

It reports setup time, the Cog worker's resident memory after setup, its peak during setup and
during each prediction (the kernel's high-water mark, VmHWM, reset before each prediction), and
each prediction's time. Not part of the test run: it needs about 20 GB of memory and some minutes.
The weights go to a temporary folder outside the repository, deleted at the end, unless
--weights-dir names a folder to keep (reused by the next run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts import REPO
from scripts.cog_server import CogServer

MARKER = "FULL_SIZE_RANDOM_WEIGHTS"  # the benchmark's marker: real architectures, random weights
DTYPE = "bfloat16"
PREDICTIONS = {
    "tier 2": dict(
        tier=2,
        prompt="a paper boat on a rainy street",
        width=64,
        height=64,
        num_frames=8,
        num_inference_steps=1,
        seed=1,
    ),
    "tier 3": dict(
        tier=3,
        prompt="a red tram on a bridge",
        width=128,
        height=64,
        num_frames=8,
        num_inference_steps=1,
        seed=1,
    ),
}
GIB = 2**30


def build_set(name: str, weights_dir: Path) -> None:
    """Child process: build one weight set at full size in bfloat16 and write it."""
    import torch

    from bench.benchmark import build_full_size_set
    from pipelines.common import Device
    from scripts.make_tiny_weights import WRITERS

    WRITERS[name](
        weights_dir, build_full_size_set(name, Device(torch.device("cpu"), torch.bfloat16))
    )


def write_full_size_weights(weights_dir: Path) -> float:
    """Every set, one child process each; then the lock. Returns the seconds it took."""
    from scripts.make_tiny_weights import DERIVED_WRITERS, WRITERS
    from weights_build import write_lock

    started = time.monotonic()
    weights_dir.mkdir(parents=True, exist_ok=True)
    for name in WRITERS:
        print(f"Building and writing {name} at full size ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.rehearse",
                "--build-set",
                name,
                "--weights-dir",
                str(weights_dir),
            ],
            cwd=REPO,
            check=True,
        )
    for write in DERIVED_WRITERS:  # the draft module and LoRAs, shaped by the adapter just written
        write(weights_dir)
    write_lock(weights_dir)
    (weights_dir / MARKER).write_text("random weights, real architectures\n")
    return time.monotonic() - started


def memory_of(pid: int) -> dict[str, float]:
    """Resident memory now and its high-water mark, in GiB (from /proc/PID/status)."""
    status = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return {key: int(status[key].split()[0]) * 1024 / GIB for key in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    """Start a new high-water mark (Linux: writing 5 to clear_refs resets VmHWM to the current
    RSS)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def rehearse(weights_dir: Path, log: Path) -> dict:
    # CogServer gives setup 600 s (COG_SETUP_TIMEOUT); full size on a CPU needs a fraction of it.
    server = CogServer(weights_dir, log, extra_env={"MODEL_DTYPE": DTYPE})
    try:
        started = time.monotonic()
        server.wait_until_ready(timeout=3600)
        results = {"setup_seconds": time.monotonic() - started}
        (worker,) = server.worker_pids()
        after_setup = memory_of(worker)
        results.update(
            rss_after_setup_gib=after_setup["VmRSS"],
            peak_during_setup_gib=after_setup["VmHWM"],
            predictions={},
        )
        for name, inputs in PREDICTIONS.items():
            reset_peak(worker)
            started = time.monotonic()
            result = server.predict(inputs, timeout=3600)
            seconds = time.monotonic() - started
            if result["status"] != "succeeded":
                raise RuntimeError(f"{name} prediction {result['status']}: {result.get('error')}")
            memory = memory_of(worker)
            results["predictions"][name] = dict(
                settings=f"{inputs['num_frames']} frames {inputs['width']}×{inputs['height']}, "
                f"{inputs['num_inference_steps']} step",
                seconds=seconds,
                peak_gib=memory["VmHWM"],
                rss_after_gib=memory["VmRSS"],
            )
        results["setup_log"] = [
            message
            for message in map(log_message, log.read_text().splitlines())
            if "weights match" in message or message.startswith("Loaded tiers")
        ]
        return results
    finally:
        server.stop()


def log_message(line: str) -> str:
    """The text of one line of Cog's log (coglet writes JSON lines; the worker's output is in
    them)."""
    try:
        return json.loads(line)["fields"]["message"]
    except (ValueError, KeyError, TypeError):
        return line


def machine() -> str:
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB memory, "
        f"torch {torch.__version__}, {platform.node()}"
    )


def write_results(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "rehearse.json").write_text(json.dumps(results, indent=1))
    lines = [
        f"# Full-size rehearsal on a CPU, {results['date']}: {results['machine']}",
        "",
        f"Every model at its real architecture with random weights, {DTYPE}, loaded by setup() in "
        "Cog's server (every tier resident), one tiny-size, one-step prediction per tier. "
        "`python -m bench.rehearse --out bench/reports`.",
        "",
        f"Building and writing the weights ({results['weights_gib']:.1f} GiB of fp16 files) "
        f"and locking them: {results['build_seconds']:.0f} s.",
        "",
        "| stage | seconds | worker resident after (GiB) | worker peak during (GiB) |",
        "|---|---|---|---|",
        f"| setup (first boot: every file hashed, both tiers loaded) "
        f"| {results['setup_seconds']:.0f} | "
        f"{results['rss_after_setup_gib']:.1f} | {results['peak_during_setup_gib']:.1f} |",
    ]
    for name, row in results["predictions"].items():
        lines.append(
            f"| {name} prediction, {row['settings']} | {row['seconds']:.0f} | "
            f"{row['rss_after_gib']:.1f} | {row['peak_gib']:.1f} |"
        )
    lines += ["", "Setup's log: " + "; ".join(results["setup_log"])]
    (out / "rehearse.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for rehearse.json and rehearse.md")
    parser.add_argument(
        "--weights-dir", type=Path, help="keep (and reuse) the full-size weights here"
    )
    parser.add_argument("--build-set", help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if args.build_set:
        build_set(args.build_set, args.weights_dir)
        return
    if args.out is None:
        parser.error("--out is required")

    from weights import required_files

    weights_dir = args.weights_dir or Path(tempfile.mkdtemp(prefix="rehearse-weights-"))
    try:
        build_seconds = 0.0
        if not (weights_dir / MARKER).is_file():
            build_seconds = write_full_size_weights(weights_dir)
        results = dict(
            date=datetime.date.today().isoformat(),
            machine=machine(),
            build_seconds=build_seconds,
            weights_gib=sum((weights_dir / name).stat().st_size for name in required_files()) / GIB,
        )
        log = Path(tempfile.gettempdir()) / "rehearse-server.log"
        print(f"Cog's server log: {log}", flush=True)
        results.update(rehearse(weights_dir, log))
    finally:
        if args.weights_dir is None:
            shutil.rmtree(weights_dir, ignore_errors=True)
    write_results(args.out, results)
    print((args.out / "rehearse.md").read_text())


if __name__ == "__main__":
    main()
