"""bench/gpu_check.py's CPU smoke mode: the server checks of the GPU check, on tiny
weights, so that a broken harness is found here and not in the GPU's few minutes."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from scripts import REPO


def test_smoke_gpu_check_runs_setup_soak_and_a_default_prediction_through_the_server(
    tiny_weights_dir, tmp_path
):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--smoke",
            "--weights-dir",
            str(tiny_weights_dir),
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert results["smoke"] is True and results["date"] and "CPU" in results["machine"]
    assert results["setup_seconds"] > 0 and results["worker_gpu_after_setup_gib"] is None
    assert [(row["tier"], row["status"]) for row in results["soak"]] == [
        (2, "succeeded"),
        (3, "succeeded"),
        (4, "succeeded"),
    ]
    assert (
        results["default_tier2"]["status"] == "succeeded"
        and results["default_tier2"]["min_frame_spread"] > 10
    )
    assert "out_of_memory" not in results
    summary = (tmp_path / "gpu_check.md").read_text()
    assert "3 succeeded" in summary and "out of memory: not tried (no GPU)" in summary
    # Two boots with COMPILE=1, in a report of their own: the first compiles and writes the cache,
    # the second compiles nothing and takes every graph from it.
    assert "compile_cache" not in results
    boots = json.loads((tmp_path / "compile_cache.json").read_text())
    assert boots["smoke"] is True and boots["date"] == results["date"]
    first, second = boots["boots"]
    for boot in (first, second):
        assert boot["first_prediction"]["status"] == boot["second_prediction"]["status"]
        assert boot["first_prediction"]["status"] == "succeeded" and boot["cache_files"], boot
    compiled, _ = first["graphs_compiled_and_from_cache"]
    assert compiled > 0, first
    assert second["graphs_compiled_and_from_cache"][0] == 0, second
    assert second["graphs_compiled_and_from_cache"][1] >= compiled, second
    assert "the compile cache saves a cold boot" in (tmp_path / "compile_cache.md").read_text()


def test_each_part_of_the_gpu_check_stays_within_ten_minutes_by_its_limits():
    """Each part is one job of at most 10 minutes on a rented GPU: its steps' time limits add up
    to less, with a minute left for installing the wheels, the import check and collecting the
    reports."""
    script = (REPO / "bench" / "gpu_check.sh").read_text()
    levers, _, tiers = script.partition('if [ "$PART" = levers ]; then')[2].partition("\nfi\n")
    for part, text in (("levers", levers), ("tiers", tiers)):
        limits = [int(seconds) for seconds in re.findall(r"\btimeout (\d+) ", text)]
        assert limits and sum(limits) <= 540, (part, limits)
    # The usage names both parts, and an unknown part is refused before any work.
    refused = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "all"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "levers" in refused.stdout


def test_on_a_gpu_setups_memory_is_set_beside_the_weights_counted_on_the_meta_device():
    """The GPU run reads the worker's memory after setup against bench/resident_memory.py's count,
    which only a GPU can confirm; the smoke run has nothing to compare (tiny weights)."""
    from bench import gpu_check

    counted = gpu_check.counted_weights_gib()
    assert 40 < counted < 60  # every tier at full size: about 50 GB of weights
    results = dict(
        setup_seconds=41.0,
        worker_gpu_after_setup_gib=48.5,
        weights_counted_gib=counted,
        soak=[],
        default_tier2=dict(
            request=dict(tier=2), status="succeeded", seconds=2.0, worker_gpu_gib=48.6
        ),
    )
    (setup,) = [line for line in gpu_check.summary_lines(results) if "setup to READY" in line]
    assert "48.50 GiB" in setup and f"counts them: {counted:.2f} GiB" in setup
    del results["weights_counted_gib"]
    (setup,) = [line for line in gpu_check.summary_lines(results) if "setup to READY" in line]
    assert "counts them" not in setup
