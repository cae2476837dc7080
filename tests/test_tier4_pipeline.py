"""Tier 4 loaded through the production code, checked against diffusers' stock WanPipeline and
WanImageToVideoPipeline (same components, inputs and seed), in one process."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanPipeline
from PIL import Image

from pipelines.common import pick_device
from pipelines.images import load_start_image
from pipelines.inputs import resolve_request
from pipelines.progress import Progress
from pipelines.tiers import load_tiers
from tests.support.parity import assert_same_frames
from weights import WEIGHT_SETS

INPUTS = dict(
    tier=4,
    prompt="a red tram crossing a bridge at dawn",
    negative_prompt="blurry",
    width=96,
    height=64,
    num_frames=9,
    num_inference_steps=2,
    guidance_scale=4.0,
    seed=11,
)


def png_uri(size=(120, 90), colour=(200, 40, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def tier4(tiny_weights_dir):
    """Built as setup() builds it."""
    return load_tiers(tiny_weights_dir, pick_device(), (4,))[4]


@pytest.fixture(scope="module")
def stock(tiny_weights_dir):
    """The stock pipelines, loaded from the same folder as the model card loads them (VAE in
    float32), the image pipeline from its own from_pretrained."""
    folder = WEIGHT_SETS["wan22_ti2v"].path(tiny_weights_dir)
    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", dtype=torch.float32)
    text = WanPipeline.from_pretrained(folder, vae=vae, dtype=torch.float32)
    image = WanImageToVideoPipeline.from_pretrained(folder, vae=vae, dtype=torch.float32)
    for pipeline in (text, image):
        pipeline.set_progress_bar_config(disable=True)
    return text, image


def run(tier, request):
    progress = Progress(tier.progress_units(request), stream=io.StringIO())
    frames = tier.generate(request, progress)
    # Exactly the units announced: the server's percentage reaches 100 and never passes it.
    assert progress.done == tier.progress_units(request)
    return frames


def stock_frames(pipeline, request, **extra):
    return pipeline(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        height=request.height,
        width=request.width,
        num_frames=request.num_frames,
        num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale,
        generator=torch.Generator().manual_seed(request.seed),
        output_type="np",
        **extra,
    ).frames[0]


def test_defaults_are_the_published_ones():
    request = resolve_request(dict(tier=4, prompt="x", seed=1))
    assert (request.width, request.height, request.num_frames, request.fps) == (1280, 704, 121, 24)
    assert (request.num_inference_steps, request.guidance_scale) == (50, 5.0)


def test_one_copy_of_every_model_serves_text_and_image(tier4):
    text, image = tier4.text_pipeline, tier4.image_pipeline
    for name in ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(image, name) is getattr(text, name), name
    assert image.config.expand_timesteps and text.config.expand_timesteps
    assert text.scheduler.config.flow_shift == 5.0


def test_text_to_video_equals_stock_wan_pipeline(tier4, stock):
    request = resolve_request(INPUTS)
    ours = run(tier4, request)
    assert ours.shape == (9, 64, 96, 3)
    assert_same_frames(ours, stock_frames(stock[0], request), "tier 4's frames, against stock's")


def test_image_to_video_equals_stock_wan_image_to_video_pipeline(tier4, stock):
    request = resolve_request({**INPUTS, "image": png_uri(), "prompt": "", "height": 128})
    ours = run(tier4, request)
    image = load_start_image(request.image, request.width, request.height)
    theirs = stock_frames(stock[1], request, image=image)
    assert ours.shape == (9, 128, 96, 3)
    assert_same_frames(ours, theirs, "tier 4's image-to-video frames, against stock's")
    # The image reached the model: without it, text to video gives other frames.
    assert not np.allclose(ours, run(tier4, resolve_request({**INPUTS, "height": 128})))


class CallCounter:
    """A forward hook on a transformer: how many times it ran."""

    def __init__(self, module):
        self.calls = 0
        self.handle = module.register_forward_hook(self.count)

    def count(self, *_):
        self.calls += 1

    def close(self):
        self.handle.remove()


@pytest.mark.parametrize("with_image", [False, True], ids=["text", "image"])
def test_draft_runs_the_draft_transformer_three_times_and_leaves_standard_unchanged(
    tier4, with_image
):
    extra = {"image": png_uri()} if with_image else {}
    standard = resolve_request({**INPUTS, **extra})
    draft = resolve_request({**INPUTS, **extra, "draft": True, "num_inference_steps": 9})
    assert (draft.num_inference_steps, draft.guidance_scale) == (3, 1.0)
    assert draft.ignored_by_draft == {"num_inference_steps": 9, "guidance_scale": 4.0}
    before = run(tier4, standard)
    counters = CallCounter(tier4.draft_transformer), CallCounter(tier4.text_pipeline.transformer)
    try:
        frames = run(tier4, draft)
    finally:
        for counter in counters:
            counter.close()
    assert [counter.calls for counter in counters] == [3, 0]
    assert frames.shape == before.shape and np.isfinite(frames).all()
    assert frames.min() >= 0 and frames.max() <= 1 and frames.std() > 0.01
    assert not np.allclose(frames, before)
    # Back to standard: the same frames as before the draft, to the bit.
    assert_same_frames(run(tier4, standard), before, "tier 4's standard frames after a draft")
