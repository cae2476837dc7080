"""bench/lever_matrix.py's CPU smoke mode: one row per variant, each compared with eager."""

from __future__ import annotations

import datetime
import json
import math
import subprocess
import sys

from scripts import REPO

# Float32 on the CPU: another kernel or fused matrices only round differently
# (tests/test_levers.py's tolerance for tier 2).
TOLERANCE = 1e-3
VARIANTS = [
    "eager",
    "SDPA_BACKEND=efficient",
    "CHANNELS_LAST=1",
    "FUSE_QKV=1",
    "all together but COMPILE",
]


def test_smoke_lever_matrix_has_a_row_per_variant_compared_with_eager(tmp_path):
    out = tmp_path / "matrix"
    subprocess.run(
        [sys.executable, "-m", "bench.lever_matrix", "--smoke", "--tiers", "2", "--out", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=90,
    )
    results = json.loads((out / "lever_matrix.json").read_text())
    assert results["smoke"] is True and results["complete"] is True
    assert results["date"] == datetime.date.today().isoformat() and "CPU" in results["machine"]
    assert set(results["tiers"]) == {"2"}
    rows = results["tiers"]["2"]["variants"]
    assert list(rows) == VARIANTS
    assert rows["eager"]["max_abs_error"] == 0 and rows["eager"]["eager_over_variant"] == 1
    for name, row in rows.items():
        assert not row["levers"]["compile"], name  # COMPILE only with --with-compile
        assert row["max_abs_error"] < TOLERANCE, f"{name}: {row['max_abs_error']}"
        ratio = row["eager_over_variant"]
        assert isinstance(ratio, float) and math.isfinite(ratio) and ratio > 0, name
        assert row["seconds"] > 0 and row["frames_finite"]
        assert row["peak_gpu_gib"] is None  # no CUDA
    # One load of the tier for every variant: eager loads it and warms it up, each lever is
    # applied to those models and removed after, running once.
    assert rows["eager"]["load_seconds"] > 0 and rows["eager"]["warm_up_seconds"] > 0
    for name in VARIANTS[1:]:
        assert rows[name]["load_seconds"] is None and rows[name]["warm_up_seconds"] is None, name
    # Tier 2's UNet keeps q, k and v apart: the lever says so in the log it is recorded with.
    assert any("FUSE_QKV: not applied" in line for line in rows["FUSE_QKV=1"]["lever_log"])
    assert rows["eager"]["lever_log"] == []
    table = (out / "lever_matrix.md").read_text()
    assert table.startswith(f"# Lever matrix, {results['date']}: CPU")
    assert table.count("\n| 2 | ") == len(VARIANTS)
    for name in VARIANTS:
        assert f"| {name} |" in table


def test_on_a_gpu_compile_runs_once_per_tier_beside_every_other_lever():
    """The GPU check's matrix compiles once per tier (its time limit), and still shows what
    COMPILE adds: "all together" against "all together but COMPILE"."""
    from bench.lever_matrix import variants

    gpu = variants(gpu=True, with_compile=True, compile_mode="default", compile_alone=False)
    assert list(gpu) == [
        "eager",
        "SDPA_BACKEND=flash",
        "CHANNELS_LAST=1",
        "FUSE_QKV=1",
        "all together but COMPILE",
        "all together",
    ]
    assert [name for name, levers in gpu.items() if levers.compile] == ["all together"]
    both = variants(gpu=True, with_compile=True, compile_mode="default", compile_alone=True)
    assert [name for name, levers in both.items() if levers.compile] == [
        "COMPILE=1",
        "all together",
    ]


def test_the_gpu_matrix_asks_each_tier_for_a_request_the_inputs_accept():
    """Tier 4 at 41 frames (not 121) and every tier at 2 steps: a request refused by
    pipelines/inputs.py would only show on the GPU, after the weights were written."""
    from bench.lever_matrix import GPU_SIZES, GPU_STEPS
    from pipelines.inputs import TIERS, resolve_request

    for tier in TIERS:
        request = resolve_request(
            dict(
                tier=tier, prompt="a fox", num_inference_steps=GPU_STEPS, **GPU_SIZES.get(tier, {})
            )
        )
        assert request.num_inference_steps == GPU_STEPS
    assert resolve_request(dict(tier=4, prompt="a fox", **GPU_SIZES[4])).num_frames == 41
