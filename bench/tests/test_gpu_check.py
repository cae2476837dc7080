"""bench/gpu_check.py's CPU smoke mode: the server checks of the one-command GPU run, on tiny
weights, so that a broken harness is found here and not in the GPU's few minutes."""

from __future__ import annotations

import json
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
    ]
    assert (
        results["default_tier2"]["status"] == "succeeded"
        and results["default_tier2"]["min_frame_spread"] > 10
    )
    assert "out_of_memory" not in results
    summary = (tmp_path / "gpu_check.md").read_text()
    assert "2 succeeded" in summary and "out of memory: not tried (no GPU)" in summary
