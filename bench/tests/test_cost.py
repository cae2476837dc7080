"""bench/cost.py: what the FLOPs of a video follow from (tiny Wan configs), and its report."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from bench import cost
from pipelines.common import Device
from scripts import REPO, tiny_wan

# The tiny Wan 2.2 TI2V components the tiny weights hold (scripts/tiny_wan.py).
TINY = {
    "transformer": tiny_wan.TRANSFORMER_CONFIG,
    "vae": tiny_wan.VAE_CONFIG,
    "text_encoder": dict(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, vocab_size=1000),
}
SMALL = cost.Tier4Settings(
    width=128, height=64, num_frames=9, steps=2, guidance=5.0, text_tokens=16
)


@pytest.fixture(scope="module")
def models():
    return cost.build_tier4_models(Device(torch.device("meta"), torch.float32), TINY)


def test_the_denoiser_scales_with_the_steps_and_nothing_else_does(models):
    two = cost.tier4_parts(models, SMALL, from_image=False)
    five = cost.tier4_parts(models, replace(SMALL, steps=5), from_image=False)
    assert five["denoiser"] == pytest.approx(two["denoiser"] * 5 / 2)
    assert five["text encoder"] == two["text encoder"] and five["VAE decode"] == two["VAE decode"]


def test_guidance_doubles_the_denoiser_and_the_prompts_read(models):
    guided = cost.tier4_parts(models, SMALL, from_image=False)
    unguided = cost.tier4_parts(models, replace(SMALL, guidance=1.0), from_image=False)
    assert guided["denoiser"] == pytest.approx(2 * unguided["denoiser"])
    assert guided["text encoder"] == pytest.approx(2 * unguided["text encoder"])
    assert guided["VAE decode"] == unguided["VAE decode"]


def test_more_frames_cost_at_least_linearly_and_at_most_quadratically(models):
    """Linear layers grow with the latent frames, attention with their square; the decoder with
    the frames it writes."""
    short = cost.tier4_parts(models, SMALL, from_image=False)  # 9 frames: 3 latent frames
    long = cost.tier4_parts(models, replace(SMALL, num_frames=17), from_image=False)  # 5
    latent_ratio = 5 / 3
    assert latent_ratio <= long["denoiser"] / short["denoiser"] <= latent_ratio**2
    assert latent_ratio <= long["VAE decode"] / short["VAE decode"] <= 17 / 9
    assert long["text encoder"] == short["text encoder"]


def test_an_image_adds_one_vae_encode_and_changes_nothing_else(models):
    text = cost.tier4_parts(models, SMALL, from_image=False)
    image = cost.tier4_parts(models, SMALL, from_image=True)
    assert set(image) - set(text) == {"VAE encode"} and image["VAE encode"] > 0
    assert {name: image[name] for name in text} == text


def test_the_decode_counted_on_three_frames_is_the_full_count(models):
    """Wan's VAE decodes frame by frame with a cache, so a long decode is extrapolated from its
    first three latent frames: it must equal counting every frame."""
    vae = models["vae"]
    latents = torch.zeros(1, vae.config.z_dim, 7, 4, 8, device="meta")
    assert cost.wan_vae_decode_flops(vae, latents) == cost.counted(lambda: vae.decode(latents))


def test_the_price_is_the_floor_time_at_the_stated_rate():
    video = cost.VideoCost(4, "standard", "text", "", {"denoiser": 2e15, "VAE decode": 1e15})
    seconds = 3e15 / 1e12 / cost.H100_PEAK_TFLOPS
    assert video.floor_seconds() == pytest.approx(seconds)
    assert video.dollars(0.5) == pytest.approx(2 * seconds * cost.H100_DOLLARS_PER_SECOND)


def test_the_report_has_every_tier_and_mode_dated_with_the_machine(tmp_path):
    """The real configs, counted end to end; each price agrees with its row's own FLOPs."""
    out = tmp_path / "COST.md"
    subprocess.run(
        [sys.executable, "-m", "bench.cost", "--out", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    text = out.read_text()
    assert text.startswith(f"# Cost per video, counted {datetime.date.today().isoformat()} on CPU")
    rows = re.findall(
        r"^\| (\d) \| (standard|draft) \| (text|image) \| [^|]+ \| ([\d,]+) \| ([\d.]+) s "
        r"\| ([\d.]+) \| ([\d.]+) \|$",
        text,
        flags=re.M,
    )
    assert {(int(r[0]), r[1], r[2]) for r in rows} == {
        (2, "standard", "text"),
        (2, "draft", "text"),
        (3, "standard", "text"),
        (3, "standard", "image"),
        (4, "standard", "text"),
        (4, "standard", "image"),
        (4, "draft", "text"),
        (4, "draft", "image"),
    }
    for _, _, _, tflop, seconds, floor, half in rows:
        tflop = float(tflop.replace(",", ""))
        assert float(seconds) == pytest.approx(tflop / cost.H100_PEAK_TFLOPS, abs=0.01)
        assert float(floor) == pytest.approx(
            float(seconds) * cost.H100_DOLLARS_PER_SECOND, abs=1e-4
        )
        assert float(half) == pytest.approx(float(floor) / cost.UTILISATION, abs=2e-4)
    # The draft is cheaper wherever there is one, and an image costs tier 4 more than text alone.
    total = {(int(r[0]), r[1], r[2]): float(r[3].replace(",", "")) for r in rows}
    assert total[2, "draft", "text"] < total[2, "standard", "text"]
    assert total[4, "draft", "image"] < total[4, "standard", "image"]
    assert total[4, "standard", "image"] >= total[4, "standard", "text"]
    # The last section: the GPU choice, every card of bench/cost.py's list priced.
    gpu_section = text.split("## Which GPU, with tier 4 resident")[1]
    for gpu in cost.GPUS:
        assert f"| `{gpu.hardware}` ({gpu.name}) | {gpu.memory_gb:.0f} GB |" in gpu_section
