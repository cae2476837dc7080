"""scripts/benchmark.py's CPU smoke mode runs every path of the harness that needs no GPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_smoke_benchmark_times_both_variants_counts_flops_and_compares_frames(tmp_path):
    subprocess.run([sys.executable, "scripts/benchmark.py", "--smoke", "--out", str(tmp_path)],
                   cwd=REPO, check=True, capture_output=True, timeout=600)
    results = json.loads((tmp_path / "benchmark.json").read_text())
    assert results["smoke"] is True and results["date"] and "CPU" in results["machine"]
    assert results["setup_seconds"] > 0 and results["peak_matmul_tflops"] > 0
    # Setup's verification is reported both ways (first boot, hashes cached).
    assert results["weights_gib"] > 0 and results["verify_cached_seconds"] > 0 and results["verify_first_boot_seconds"] > 0
    assert set(results["tiers"]) == {"2", "3"}
    for tier, stages in (("2", {"denoising", "decoding", "encoding"}),
                         ("3", {"keyframe", "animating", "decoding", "encoding"})):
        row = results["tiers"][tier]
        assert row["stock_seconds"] > 0 and row["ours_seconds"] > 0
        assert math.isclose(row["speedup"], row["stock_seconds"] / row["ours_seconds"])
        assert set(row["ours_stages"]) == stages and all(s > 0 for s in row["ours_stages"].values())
        assert row["tflop"] > 0 and 0 < row["share_of_peak"]
        # Same weights, inputs and seed: our pipeline computes exactly what the stock one does.
        assert row["max_abs_error"] == 0 and row["psnr_db"] == math.inf
    table = (tmp_path / "benchmark.md").read_text()
    assert "CPU smoke run" in table and table.count("\n| ") == 3  # header + two tiers


def test_full_size_models_are_the_real_architectures():
    """Built on the meta device (no memory), so CI checks the GPU path's constructors; parameter
    counts are those in shared/reference/flops.md."""
    import torch

    sys.path.insert(0, str(REPO / "scripts"))
    import benchmark
    from pipelines.common import Device

    models = benchmark.build_full_size_models(Device(torch.device("meta"), torch.float16))
    counts = {f"{s}.{n}": sum(p.numel() for p in m.parameters()) for s, parts in models.items() for n, m in parts.items()}
    millions = {name: round(count / 1e6, 1) for name, count in counts.items()}
    assert millions["sdxl.unet"] == 2567.5 and millions["svd.unet"] == 1524.6
    assert millions["sdxl.text_encoder_2"] == 694.7 and millions["sdxl.text_encoder"] == 123.1
    assert millions["svd.image_encoder"] == 632.1 and millions["svd.vae"] == 97.7
    assert millions["sdxl.fp16_fix_vae"] == millions["sd15.vae"] == 83.7
    assert round((counts["sd15.unet"] + counts["animatediff.adapter"]) / 1e6, 1) == 1276.7  # UNetMotionModel
    assert models["sdxl"]["text_encoder"] is models["sd15"]["text_encoder"]
    assert millions["sd15.safety_checker"] == 304.0  # CLIP ViT-L/14's image tower: 608 MB in fp16, as published
