"""bench/safety_keyframe_flops.py: the checker's and the keyframe's FLOPs, counted on the meta
device."""

from __future__ import annotations

import pytest

from bench import safety_keyframe_flops as flops
from bench.benchmark import build_full_size_models
from pipelines.inputs import TIER_DEFAULTS, TIERS


@pytest.fixture(scope="module")
def models():
    return build_full_size_models(flops.META)


def test_the_checked_squares_per_video_follow_the_sample_and_the_frame_shape():
    assert flops.squares_checked(2) == 5  # frames 1, 5, 9, 13, 16 of 16, one square each
    assert flops.squares_checked(3) == 2 * (
        7 + 1
    )  # 7 of 25 frames and the start frame, two squares each
    assert (
        flops.squares_checked(2, every_frame=True) == 16
        and flops.squares_checked(3, every_frame=True) == 52
    )


def test_the_keyframe_costs_its_steps_and_one_decode_and_grows_with_its_size(models):
    small = flops.keyframe_flops(models, 512, 512, steps=2)
    more_steps = flops.keyframe_flops(models, 512, 512, steps=5)
    larger = flops.keyframe_flops(models, 1024, 512, steps=2)
    for counted in (small, more_steps, larger):
        assert counted["denoising"] == counted["unet_step"] * (5 if counted is more_steps else 2)
        assert counted["total"] == counted["denoising"] + counted["decode"]
    assert more_steps["unet_step"] == small["unet_step"] and more_steps["decode"] == small["decode"]
    # Twice the pixels: the convolutions double, attention (the UNet's, the VAE's mid block)
    # grows with their square.
    assert 2 <= larger["unet_step"] / small["unet_step"] <= 4
    assert 2 <= larger["decode"] / small["decode"] <= 4


def test_the_report_prices_each_tier_by_its_checked_squares():
    report = flops.report()
    per_square = float(report.split("One checked square: ")[1].split(" GFLOP")[0])
    for tier in TIERS:
        d = TIER_DEFAULTS[tier]
        (row,) = [
            line
            for line in report.splitlines()
            if line.startswith(f"| {tier} | {d['num_frames']} frames {d['width']}×{d['height']} |")
        ]
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert int(cells[4]) == flops.squares_checked(tier)
        assert float(cells[5]) == pytest.approx(
            flops.squares_checked(tier) * per_square / 1e3, abs=0.01
        )
    # The keyframe at SDXL's size for 16:9 costs more than at the video's own size.
    before, now = (
        float(line.split("|")[-2])
        for line in report.splitlines()
        if line.startswith("| 1024×576 (the video size") or line.startswith("| 1344×768 (SDXL")
    )
    assert now > before
