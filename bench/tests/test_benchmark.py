"""bench/benchmark.py's CPU smoke mode runs every path of the harness that needs no GPU."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from pipelines.inputs import TIERS
from scripts import REPO


def test_smoke_benchmark_times_both_variants_counts_flops_and_compares_frames(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "bench.benchmark", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    results = json.loads((tmp_path / "benchmark.json").read_text())
    assert results["smoke"] is True and results["date"] and "CPU" in results["machine"]
    assert results["setup_seconds"] > 0 and results["peak_matmul_tflops"] > 0
    # Setup's verification is reported both ways (first boot, hashes cached).
    assert (
        results["weights_gib"] > 0
        and results["verify_cached_seconds"] > 0
        and results["verify_first_boot_seconds"] > 0
    )
    assert set(results["tiers"]) == {str(tier) for tier in TIERS}
    for tier, stages in (
        ("2", {"denoising", "decoding", "encoding"}),
        ("3", {"keyframe", "animating", "decoding", "encoding"}),
        ("4", {"denoising", "decoding", "encoding"}),
    ):
        row = results["tiers"][tier]
        assert row["stock_seconds"] > 0 and row["ours_seconds"] > 0
        assert math.isclose(row["speedup"], row["stock_seconds"] / row["ours_seconds"])
        assert set(row["ours_stages"]) == stages and all(s > 0 for s in row["ours_stages"].values())
        assert row["tflop"] > 0 and row["share_of_peak"] > 0
        # Same weights, inputs and seed: our pipeline computes exactly what the stock one does.
        assert row["max_abs_error"] == 0 and row["psnr_db"] == math.inf, (
            f"tier {tier}'s frames differ from stock's by up to {row['max_abs_error']} "
            f"(tests/test_tier{tier}_pipeline.py names the stage)"
        )
        assert row["frames_finite"] is True and row["min_frame_std"] > 0
        # Every smoke tier runs fewer steps than its defaults; the tiers whose steps are one
        # stage are stated at the defaults too (tier 4's full-size run needs it).
        at_defaults = row["ours_seconds_at_default_steps"]
        assert (at_defaults is None) == (tier == "3"), at_defaults
        assert at_defaults is None or at_defaults > row["ours_seconds"]
    # The drafts, ours alone at their recipes, with every tier resident.
    assert set(results["drafts"]) == {"2", "4"}
    for tier, steps in (("2", 4), ("4", 3)):
        draft = results["drafts"][tier]
        assert f"{steps} steps (draft)" in draft["settings"], draft["settings"]
        assert draft["ours_seconds"] > 0 and draft["tflop"] > 0 and draft["frames_finite"]
    table = (tmp_path / "benchmark.md").read_text()
    # Two headers, the tiers and the drafts.
    assert "CPU smoke run" in table and table.count("\n| ") == 2 + len(TIERS) + 2


def test_full_size_models_are_built_from_their_configs():
    """Built on the meta device (no memory), so CI checks the GPU path's constructors: every model
    carries its bench/model_configs.json entry, and one CLIP ViT-L object serves SD 1.5 and SDXL."""
    import torch

    from bench import benchmark
    from pipelines.common import Device

    models = benchmark.build_full_size_models(Device(torch.device("meta"), torch.float16))
    entries = json.loads(benchmark.CONFIGS.read_text())
    for name, parts in models.items():
        for part, model in parts.items():
            entry = entries[benchmark.FULL_SIZE_SETS[name][part]]
            config = model.config if isinstance(model.config, dict) else model.config.to_dict()
            for key, value in entry["config"].items():
                if isinstance(value, dict):  # a transformers config's sub-config
                    continue
                built = config[key]
                assert (list(built) if isinstance(built, tuple) else built) == value, (
                    f"{name}.{part}: {key} is {built!r}, its config says {value!r}"
                )
    assert models["sdxl"]["text_encoder"] is models["sd15"]["text_encoder"]


def test_every_tier_is_written_at_full_size_and_the_draft_transformer_is_linked(tmp_path):
    """The full-size weights hold tier 4 (its three models from their configs, on the meta device
    here) and its draft as the same model, whose files are linked, not written a second time: the
    layout is checked with tiny models of the same kind."""
    import torch

    from bench import benchmark
    from pipelines.common import Device
    from scripts import tiny_wan
    from weights import WEIGHT_SETS, required_files

    assert 4 in benchmark.FULL_SIZE_TIERS
    models = benchmark.build_every_full_size_model(Device(torch.device("meta"), torch.float16))
    wan = models["wan22_ti2v"]
    assert {type(model).__name__ for model in wan.values()} == {
        "WanTransformer3DModel",
        "AutoencoderKLWan",
        "UMT5EncoderModel",
    }
    assert wan["draft_transformer"] is wan["transformer"]
    assert set(models) == set(benchmark.FULL_SIZE_SETS) | {"wan22_ti2v"}

    transformer = tiny_wan.tiny_transformer()
    tiny_wan.make_wan22(tmp_path, {"transformer": transformer, "draft_transformer": transformer})
    assert all((tmp_path / name).is_file() for name in required_files(4) if "wan" in name)
    base = WEIGHT_SETS["wan22_ti2v"].path(tmp_path) / "transformer"
    draft = WEIGHT_SETS["fastwan22_ti2v"].path(tmp_path) / "transformer"
    for written in base.iterdir():
        assert (draft / written.name).stat().st_ino == written.stat().st_ino, written.name


def test_flops_per_video_standard_and_draft_at_the_defaults(tmp_path):
    """Counted on the meta device: a video is its text encoding, every UNet step and the decode; the
    draft's 4 unguided steps with Lightning's modules cost a fraction of the standard 25."""
    subprocess.run(
        [sys.executable, "-m", "bench.benchmark", "--flops", "--out", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    counted = json.loads((tmp_path / "flops.json").read_text())
    standard, draft = counted["modes"]["standard"], counted["modes"]["draft"]
    assert (standard["steps"], standard["guidance"], draft["steps"], draft["guidance"]) == (
        25,
        7.5,
        4,
        1.0,
    )
    for mode in (standard, draft):
        assert mode["total"] == (
            mode["text_encoder"] + mode["steps"] * mode["unet_step"] + mode["vae_decode"]
        )
    # Half the batch, plus the mid-block motion module v3 lacks: a little over half a standard step.
    assert 0.5 < draft["unet_step"] / standard["unet_step"] < 0.51
    assert (
        draft["vae_decode"] == standard["vae_decode"]
        and draft["text_encoder"] * 2 == standard["text_encoder"]
    )
    assert math.isclose(counted["ratio"], standard["total"] / draft["total"])
    assert counted["ratio"] > standard["steps"] / draft["steps"]  # and half the batch a step
    assert math.isclose(draft["h100_half_peak_dollars"], 2 * draft["h100_floor_dollars"])


def test_draft_switch_script_writes_its_section_with_date_and_machine(tmp_path):
    """bench/draft_switch.py on the tiny weights: its section of BENCHMARKS.md, replaced (not
    appended) on a second run, with what was measured."""
    import datetime

    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nEarlier sections stay.\n")
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-m", "bench.draft_switch", "--out", str(out)],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=600,
        )
    text = out.read_text()
    assert (
        text.startswith("# Benchmarks\n\nEarlier sections stay.\n")
        and text.count("## Draft mode") == 1
    )
    assert datetime.date.today().isoformat() in text and "CPU (" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| tiny test weights")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    to_draft, to_standard, whole, with_camera = (float(cell) for cell in cells[1:5])
    # A swap is a few attribute assignments: far under a millisecond each way.
    assert 0 < to_draft < 1000 and 0 < to_standard < 1000 and 0 < whole < with_camera
    assert abs(float(cells[5].split()[0])) < 1  # MiB: switching allocates nothing


def test_the_full_size_run_times_tier_4_at_few_steps_and_every_draft_at_its_recipe():
    """What the GPU check's benchmark sends: every tier at its defaults but tier 4's steps (its
    50-step time is stated from the seconds per step), and the drafts at their fixed recipes."""
    from bench import benchmark

    standard = benchmark.benchmark_requests(smoke=False)
    assert set(standard) == set(TIERS)
    wan = standard[4]
    assert (wan.width, wan.height, wan.num_frames) == (1280, 704, 121)
    assert wan.num_inference_steps == benchmark.TIER4_GPU_STEPS < 50
    assert standard[2].num_inference_steps == standard[3].num_inference_steps == 25
    drafts = benchmark.benchmark_requests(smoke=False, draft=True)
    assert {tier: (r.draft, r.num_inference_steps) for tier, r in drafts.items()} == {
        2: (True, 4),
        4: (True, 3),
    }
    # The statement at the defaults: the measured seconds plus 48 more steps at the measured
    # seconds per step.
    row = dict(seconds=10.0, stages={"denoising": 4.0, "decoding": 6.0})
    assert benchmark.at_default_steps(row, wan) == 10.0 + 48 * 2.0
    assert benchmark.at_default_steps(row, standard[2]) is None  # ran at its defaults
