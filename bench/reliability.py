"""Run every fault and abuse check against Cog's real server on tiny weights; write a report.

    python -m bench.reliability            # the checks -> bench/reports/RELIABILITY.md
    python -m bench.reliability --soak 50  # ... plus 50 mixed predictions in a row

The checks are the tests marked `reliability` (pyproject.toml declares the marker; each of their
files sets `pytestmark`), run with pytest; the report counts the cases of each check and their
outcome, tallies the fuzzer's requests by input class and lists each stage's cancel time. The soak
sends mixed predictions (formats, sizes, tiers, bad inputs, a cancel) to one server and records
the worker's resident memory and each prediction's latency, to show neither grows.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

from scripts import REPO
from scripts.cog_server import CogServer, WebhookReceiver, image_environment
from scripts.make_tiny_weights import make_tiny_weights

MARKER = "reliability"  # the pytest marker the checks carry (declared in pyproject.toml)
# The soak's mix: good requests of every format and a few sizes, and bad ones in between.
SOAK_MIX = [
    dict(prompt="a tram in the rain", width=64, height=64, num_frames=8, num_inference_steps=2),
    dict(
        prompt="a cat on a piano",
        width=128,
        height=64,
        num_frames=16,
        num_inference_steps=2,
        output_format="gif",
    ),
    dict(
        tier=3,
        prompt="waves at night",
        width=128,
        height=64,
        num_frames=10,
        num_inference_steps=2,
        output_format="webm",
    ),
    dict(prompt="", width=64, height=64),
    dict(prompt="a balloon", width=65, height=64),
    dict(
        prompt="a balloon " * 50,
        width=64,
        height=64,
        num_frames=12,
        num_inference_steps=1,
        seed=None,
    ),
    dict(
        prompt="a slow sunrise",
        width=64,
        height=64,
        num_frames=16,
        num_inference_steps=100,
        cancel=True,
    ),
]


def run_checks(junit_path: Path) -> dict:
    """Run the checks with pytest and read what they found (read_junit)."""
    # Cog's server spawns its worker as `python` from PATH: this interpreter's must come first.
    env = dict(
        os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    subprocess.run(
        [*pytest, "-m", MARKER, f"--junitxml={junit_path}"],
        cwd=REPO,
        env=env,
        check=False,
    )
    return read_junit(junit_path)


def read_junit(junit_path: Path) -> dict:
    """Per test function (parametrized cases counted together) its cases and how many passed,
    and what the tests recorded: the fuzzer's input classes and outcomes, each cancel's time."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    fuzz: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    cancels: dict[str, float] = {}
    for case in ElementTree.parse(junit_path).iter("testcase"):
        name = case.get("name").split("[")[0]
        key = (case.get("classname").rsplit(".", 1)[-1], name)
        counts[key][0] += 1
        if not any(child.tag in ("failure", "error", "skipped") for child in case):
            counts[key][1] += 1
        for prop in case.iter("property"):
            if prop.get("name") == "fuzz_case":
                recorded = json.loads(prop.get("value"))
                for input_class in recorded["classes"]:
                    fuzz[input_class][recorded["outcome"]] += 1
            elif prop.get("name") == "cancel_seconds":
                cancels[case.get("name").split("[", 1)[1].rstrip("]")] = float(prop.get("value"))
    checks = [
        (name, total, passed, module) for (module, name), (total, passed) in sorted(counts.items())
    ]
    return dict(checks=checks, fuzz=fuzz, cancels=cancels)


def failed_cases(checks: dict | None) -> int:
    """Cases that did not pass (failed, errored or skipped), over every check."""
    return sum(total - passed for _, total, passed, _ in (checks or {}).get("checks", []))


def worker_rss_mib(server: CogServer) -> float:
    [worker] = server.worker_pids()
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS for the worker")


def worker_gpu_mib(server: CogServer) -> float | None:
    """GPU memory the worker holds, from nvidia-smi; None where there is no NVIDIA GPU (this
    path has not run on a GPU yet)."""
    if shutil.which("nvidia-smi") is None:
        return None
    [worker] = server.worker_pids()
    rows = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    used = [float(row.split(",")[1]) for row in rows if row.split(",")[0].strip() == str(worker)]
    return sum(used) if used else 0.0


def send(server: CogServer, inputs: dict) -> str:
    """One prediction; with cancel=True, sent async and cancelled once it is denoising. Returns
    its final status."""
    inputs = dict(inputs)
    if not inputs.pop("cancel", False):
        return server.predict(inputs)["status"]
    receiver = WebhookReceiver()
    try:
        prediction_id = server.start_async(inputs, receiver.url, events=("logs", "completed"))
        receiver.wait_for_log(", denoising]")
        server.cancel(prediction_id)
        return receiver.wait_for_terminal(timeout=60)[-1]["status"]
    finally:
        receiver.close()


def soak(count: int, weights_dir: Path, log_dir: Path, server_env: dict[str, str]) -> dict:
    server = CogServer(weights_dir, log_dir / "soak-server.log", extra_env=server_env)
    try:
        server.wait_until_ready()
        for inputs in SOAK_MIX:  # warm-up: each request shape's first allocations are not growth
            send(server, inputs)
            server.wait_until_ready(timeout=10)
        rss, gpu = [worker_rss_mib(server)], [worker_gpu_mib(server)]
        latencies: dict[int, list[float]] = defaultdict(list)
        outcomes: dict[str, int] = defaultdict(int)
        for i in range(count):
            kind = i % len(SOAK_MIX)
            started = time.monotonic()
            status = send(server, SOAK_MIX[kind])
            latencies[kind].append(time.monotonic() - started)
            outcomes[status] += 1
            server.wait_until_ready(timeout=10)
            rss.append(worker_rss_mib(server))
            gpu.append(worker_gpu_mib(server))
    finally:
        server.stop()
    return soak_figures(server_env, dict(outcomes), rss, gpu, latencies)


def soak_figures(
    server_env: dict[str, str],
    outcomes: dict[str, int],
    rss: list[float],
    gpu: list[float | None],
    latencies: dict[int, list[float]],
) -> dict:
    """What the report says about a soak, from its samples: `rss` and `gpu` (MiB) taken after the
    warm-up and then after each prediction, in order; `latencies` (seconds) by kind of request
    (index into SOAK_MIX), in the order they ran."""
    # Latency growth: per kind of request, the median of its last third of runs against its first
    # third (single runs are too noisy on a shared CPU), then the median over kinds.
    thirds = {kind: max(1, len(runs) // 3) for kind, runs in latencies.items()}
    by_kind = {
        kind: (statistics.median(runs[: thirds[kind]]), statistics.median(runs[-thirds[kind] :]))
        for kind, runs in sorted(latencies.items())
        if len(runs) >= 2
    }
    # Refused requests take a few milliseconds, where scheduling noise alone moves the ratio by a
    # quarter: the ratio is taken over the requests that run a model (50 ms or more).
    growth = [last / first for first, last in by_kind.values() if first >= 0.05]
    return dict(
        count=sum(outcomes.values()),
        server_env=server_env,
        outcomes=outcomes,
        rss_start=rss[0],
        rss_end=rss[-1],
        rss_max=max(rss),
        rss_every_10=[round(value) for value in rss[::10]],
        gpu_every_10=None if gpu[0] is None else [round(value) for value in gpu[::10]],
        latency_ratio=statistics.median(growth) if growth else float("nan"),
        latency_by_kind=[
            f"{first * 1000:.0f} → {last * 1000:.0f}" for first, last in by_kind.values()
        ],
    )


def checks_table(checks) -> list[str]:
    lines = ["| check | file | cases | passed |", "|---|---|---|---|"]
    lines += [
        f"| {name} | {module} | {total} | {passed} |" for name, total, passed, module in checks
    ]
    total = sum(row[1] for row in checks)
    passed = sum(row[2] for row in checks)
    return [*lines, "", f"{passed} of {total} cases passed.", ""]


def cancel_table(cancels: dict[str, float]) -> list[str]:
    if not cancels:
        return []
    return [
        "## Cancel through the server, in each stage",
        "",
        "`POST /predictions/{id}/cancel` sent once the stage's first progress line arrived by "
        "webhook (for the encode, once the worker's ffmpeg was running); the time is from the "
        "request to the `canceled` webhook (tests/test_server_reliability.py).",
        "",
        "| tier and stage | canceled after |",
        "|---|---|",
        *(f"| {case} | {seconds:.2f} s |" for case, seconds in sorted(cancels.items())),
        "",
    ]


FUZZ_OUTCOMES = [
    "succeeded",
    "failed naming the field",
    "refused by the schema, naming the field",
    "refused by Cog's own check",
    "refused by Cog's own check (Cog left an empty temp file)",
]


def fuzz_table(fuzz: dict[str, dict[str, int]]) -> list[str]:
    if not fuzz:
        return []
    lines = [
        "## Fuzzer: what was sent, and what came back",
        "",
        "Requests from tests/test_fuzz.py (hypothesis) through the server, once served with the "
        "schema `cog build` writes (as on Replicate: Cog answers 422 naming the field for a value "
        "the schema refuses) and once without one, by the input classes each held (a request "
        "counts once in every class it held). Every answer was a success or a failure naming the "
        "field, the server was READY after each, nothing was written outside the prediction's "
        "output and the local file some requests named was never read; any other outcome fails "
        "the test.",
        "",
        "| input class | requests | " + " | ".join(FUZZ_OUTCOMES) + " |",
        "|---|---|" + "---|" * len(FUZZ_OUTCOMES),
    ]
    for input_class, outcomes in sorted(fuzz.items()):
        lines.append(
            f"| {input_class} | {sum(outcomes.values())} | "
            + " | ".join(str(outcomes.get(outcome, 0)) for outcome in FUZZ_OUTCOMES)
            + " |"
        )
    return [*lines, ""]


def soak_section(soak_result: dict) -> list[str]:
    gpu = soak_result["gpu_every_10"]
    return [
        f"## Soak: {soak_result['count']} mixed predictions in a row on one server",
        "",
        f"- server environment: the image's from cog.yaml ({image_environment() or 'none'}), "
        f"overridden by --server-env: {soak_result['server_env'] or 'none'}",
        f"- outcomes: {soak_result['outcomes']}",
        f"- worker resident memory: {soak_result['rss_start']:.0f} MiB after warm-up (one request "
        f"of each kind), {soak_result['rss_end']:.0f} MiB at the end, "
        f"{soak_result['rss_max']:.0f} MiB at most",
        f"- worker resident memory every 10 predictions (MiB): {soak_result['rss_every_10']}",
        f"- worker GPU memory every 10 predictions (MiB, nvidia-smi): {gpu}"
        if gpu is not None
        else "- worker GPU memory: not measured (the machine has no NVIDIA GPU)",
        "- latency, last third against first third of each kind of request's runs (median over "
        f"the kinds that run a model): {soak_result['latency_ratio']:.2f}×",
        "- latency of each kind of request in SOAK_MIX's order, median of the first third → of "
        f"the last third (ms): {', '.join(soak_result['latency_by_kind'])}",
        "",
    ]


def command_line(soak_result: dict | None) -> str:
    """The command that writes this report."""
    words = ["python -m bench.reliability"]
    if soak_result:
        words.append(f"--soak {soak_result['count']}")
        words += [f"--server-env {key}={value}" for key, value in soak_result["server_env"].items()]
    return " ".join(words)


def write_report(path: Path, checks: dict | None, soak_result: dict | None) -> None:
    import cog
    import torch

    lines = [
        "# Reliability report",
        "",
        f"Written by `{command_line(soak_result)}` on {datetime.date.today().isoformat()}, "
        f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}, cog {cog.__version__}), against "
        "Cog's real HTTP server on tiny random weights, CPU.",
        "",
    ]
    if checks:
        lines += checks_table(checks["checks"])
        if not torch.cuda.is_available():
            lines += [
                "Not run (the machine has no GPU): a real CUDA out-of-memory at the largest "
                "request (test_faults injects torch.OutOfMemoryError in each stage instead) and "
                "GPU memory over the soak.",
                "",
            ]
        lines += cancel_table(checks["cancels"]) + fuzz_table(checks["fuzz"])
    if soak_result:
        lines += soak_section(soak_result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--soak", type=int, default=0, help="mixed predictions in a row (0: no soak)"
    )
    parser.add_argument("--skip-checks", action="store_true", help="only the soak")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the soak's server, e.g. MALLOC_ARENA_MAX=1",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "reports" / "RELIABILITY.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checks = None if args.skip_checks else run_checks(scratch / "junit.xml")
        soak_result = None
        if args.soak:
            make_tiny_weights(scratch / "weights")
            server_env = dict(pair.split("=", 1) for pair in args.server_env)
            soak_result = soak(args.soak, scratch / "weights", scratch, server_env)
    write_report(args.out, checks, soak_result)
    print(args.out.read_text())
    sys.exit(1 if failed_cases(checks) else 0)


if __name__ == "__main__":
    main()
