"""Tier 3 loaded through the production code, checked against diffusers' stock
StableDiffusionXLPipeline and StableVideoDiffusionPipeline (same components, inputs and seed)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, StableVideoDiffusionPipeline
from PIL import Image

from pipelines.common import pick_device
from pipelines.inputs import resolve_request
from pipelines.progress import Progress
from pipelines.tier2 import TextToVideo
from pipelines.tier3 import KeyframeToVideo
from weights import WEIGHT_SETS


@pytest.fixture(scope="module")
def tier2(tiny_weights_dir):
    return TextToVideo.load(tiny_weights_dir, pick_device())


@pytest.fixture(scope="module")
def tier3(tiny_weights_dir, tier2):
    return KeyframeToVideo.load(tiny_weights_dir, pick_device(), clip_l=tier2.pipeline.text_encoder)


def request(**overrides):
    inputs = dict(tier=3, prompt="a lighthouse at dusk, long exposure", negative_prompt="blurry",
                  width=128, height=64, num_frames=10, num_inference_steps=2, seed=99, guidance_scale=6.0,
                  fps=7, motion_bucket_id=90, noise_aug_strength=0.05)
    inputs.update(overrides)
    return resolve_request(inputs)


def quiet_progress(tier, req):
    return Progress(tier.progress_units(req), stream=io.StringIO())


def test_keyframe_equals_stock_sdxl_with_the_fp16_fix_vae(tier3, tiny_weights_dir):
    req = request()
    ours = tier3.render_keyframe(req, quiet_progress(tier3, req))

    vae = AutoencoderKL.from_pretrained(WEIGHT_SETS["sdxl_vae"].path(tiny_weights_dir), dtype=torch.float32)
    stock = StableDiffusionXLPipeline.from_pretrained(
        WEIGHT_SETS["sdxl"].path(tiny_weights_dir), vae=vae, variant="fp16", dtype=torch.float32)
    theirs = stock(prompt=req.prompt, negative_prompt="blurry", height=64, width=128, num_inference_steps=2,
                   guidance_scale=6.0, generator=torch.Generator("cpu").manual_seed(99)).images[0]
    assert ours.size == theirs.size == (128, 64)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_animation_equals_stock_svd(tier3, tiny_weights_dir):
    req = request()
    keyframe = Image.fromarray((np.random.default_rng(0).random((64, 128, 3)) * 255).astype(np.uint8))
    progress = quiet_progress(tier3, req)
    ours = tier3.decode(tier3.animate(keyframe, req, progress), progress)

    stock = StableVideoDiffusionPipeline.from_pretrained(
        WEIGHT_SETS["svd"].path(tiny_weights_dir), variant="fp16", dtype=torch.float32)
    theirs = stock(image=keyframe, height=64, width=128, num_frames=10, num_inference_steps=2, fps=7,
                   motion_bucket_id=90, noise_aug_strength=0.05, decode_chunk_size=8,
                   generator=torch.Generator("cpu").manual_seed(99), output_type="np").frames[0]
    assert ours.shape == theirs.shape == (10, 64, 128, 3)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_text_to_video_reports_every_step_and_is_deterministic(tier3):
    req = request(num_frames=9)
    progress = quiet_progress(tier3, req)
    first = tier3.generate(req, progress)
    assert progress.done == progress.total == 2 + 2 + 9
    again = tier3.generate(req, quiet_progress(tier3, req))
    np.testing.assert_array_equal(first, again)
    other = tier3.generate(request(num_frames=9, seed=100), quiet_progress(tier3, req))
    assert np.abs(first - other).max() > 1e-3


def test_clip_l_is_held_once_when_its_weights_are_identical(tier2, tier3, tiny_weights_dir):
    assert tier3.keyframe_pipeline.text_encoder is tier2.pipeline.text_encoder
    # ... and not shared when they differ.
    other = torch.nn.Linear(2, 2)
    separate = KeyframeToVideo.load(tiny_weights_dir, pick_device(), clip_l=other)
    assert separate.keyframe_pipeline.text_encoder is not other


def test_keyframe_uses_the_fp16_fix_vae(tier3):
    assert tier3.keyframe_pipeline.vae.config.force_upcast is False
    assert tier3.keyframe_pipeline.vae.config.scaling_factor == 0.13025
