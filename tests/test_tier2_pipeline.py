"""Tier 2 loaded through the production code from the tiny-weights folder, checked against
diffusers' stock AnimateDiffPipeline (same components, scheduler, inputs and seed)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

from pipelines.common import pick_device
from pipelines.inputs import resolve_request
from pipelines.progress import Progress
from pipelines.tier2 import TextToVideo
from weights import WEIGHT_SETS


@pytest.fixture(scope="module")
def tier2(tiny_weights_dir):
    return TextToVideo.load(tiny_weights_dir, pick_device())


def small_request(**overrides):
    inputs = dict(tier=2, prompt="a lighthouse in a storm, waves crashing", width=64, height=64,
                  num_frames=16, num_inference_steps=3, seed=1234)
    inputs.update(overrides)
    return resolve_request(inputs)


def generate(tier2, request):
    progress = Progress(tier2.progress_units(request), stream=io.StringIO())
    frames = tier2.generate(request, progress)
    assert progress.done == progress.total
    return frames


def stock_pipeline(weights_dir):
    """How diffusers' AnimateDiff docs build the v3 pipeline, independently of our loader."""
    sd15 = WEIGHT_SETS["sd15"].path(weights_dir)
    adapter = MotionAdapter.from_pretrained(WEIGHT_SETS["animatediff"].path(weights_dir), dtype=torch.float32)
    scheduler = DDIMScheduler.from_pretrained(
        sd15, subfolder="scheduler", clip_sample=False, timestep_spacing="linspace",
        beta_schedule="linear", steps_offset=1,
    )
    return AnimateDiffPipeline.from_pretrained(
        sd15, motion_adapter=adapter, scheduler=scheduler, variant="fp16", dtype=torch.float32,
        feature_extractor=None, image_encoder=None,
    )


def test_frames_equal_stock_animatediff_pipeline(tier2, tiny_weights_dir):
    request = small_request(negative_prompt="blurry", guidance_scale=6.0)
    ours = generate(tier2, request)

    stock = stock_pipeline(tiny_weights_dir)(
        prompt=request.prompt, negative_prompt="blurry", num_frames=16, height=64, width=64,
        num_inference_steps=3, guidance_scale=6.0,
        generator=torch.Generator("cpu").manual_seed(1234), output_type="np",
    ).frames[0]

    assert ours.shape == stock.shape == (16, 64, 64, 3)
    np.testing.assert_allclose(ours, stock, atol=1e-5, rtol=0)


def test_same_seed_same_frames_other_seed_other_frames(tier2):
    first = generate(tier2, small_request())
    again = generate(tier2, small_request())
    other = generate(tier2, small_request(seed=4321))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_sizes_that_are_multiples_of_8_but_not_64_work(tier2):
    frames = generate(tier2, small_request(width=72, height=88, num_frames=8, num_inference_steps=1))
    assert frames.shape == (8, 88, 72, 3)


def test_more_frames_than_one_decode_chunk(tier2):
    frames = generate(tier2, small_request(num_frames=24, num_inference_steps=1))
    assert frames.shape == (24, 64, 64, 3)


def test_scheduler_is_animatediff_v3s(tier2):
    config = tier2.pipeline.scheduler.config
    assert (config.beta_schedule, config.clip_sample, config.timestep_spacing, config.steps_offset) == (
        "linear", False, "linspace", 1)


def test_motion_adapter_weights_are_held_once(tier2):
    assert tier2.pipeline.motion_adapter is None
    assert type(tier2.pipeline.unet).__name__ == "UNetMotionModel"


def test_long_prompt_is_cut_and_the_user_is_told(tier2):
    # The tiny tokenizer reads one token per character: 200 characters is far past 77 tokens.
    printed = io.StringIO()
    with redirect_stdout(printed):
        generate(tier2, small_request(prompt="a very long prompt " * 10, num_inference_steps=1, num_frames=8))
    assert "CLIP reads the first 77" in printed.getvalue()
