"""Tier 2 loaded through the production code from the tiny-weights folder, checked against
diffusers' stock AnimateDiffPipeline (same components, scheduler, inputs and seed)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter
from diffusers.models.attention import FreeNoiseTransformerBlock

from pipelines.common import pick_device
from pipelines.inputs import resolve_request
from pipelines.progress import Progress
from pipelines.tier2 import TextToVideo, free_noise_windows
from tests.support.parity import (
    assert_same_frames,
    dropped_input_suspects,
    stage_suspects,
    stock_video,
)
from weights import WEIGHT_SETS


@pytest.fixture(scope="module")
def tier2(tiny_weights_dir):
    return TextToVideo.load(tiny_weights_dir, pick_device())


def small_request(**overrides):
    inputs = dict(
        tier=2,
        prompt="a lighthouse in a storm, waves crashing",
        width=64,
        height=64,
        num_frames=16,
        num_inference_steps=3,
        seed=1234,
    )
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
    adapter = MotionAdapter.from_pretrained(
        WEIGHT_SETS["animatediff"].path(weights_dir), dtype=torch.float32
    )
    scheduler = DDIMScheduler.from_pretrained(
        sd15,
        subfolder="scheduler",
        clip_sample=False,
        timestep_spacing="linspace",
        beta_schedule="linear",
        steps_offset=1,
    )
    return AnimateDiffPipeline.from_pretrained(
        sd15,
        motion_adapter=adapter,
        scheduler=scheduler,
        variant="fp16",
        dtype=torch.float32,
        feature_extractor=None,
        image_encoder=None,
    )


def decoded(tier2, latents) -> np.ndarray:
    """Latents through tier 2's own decoding."""
    return tier2.decode(latents, Progress(latents.shape[2], stream=io.StringIO()))


def test_frames_equal_stock_animatediff_pipeline(tier2, tiny_weights_dir):
    request = small_request(negative_prompt="blurry", guidance_scale=6.0)
    ours = generate(tier2, request)

    settings = dict(
        prompt=request.prompt,
        negative_prompt="blurry",
        num_frames=16,
        height=64,
        width=64,
        num_inference_steps=3,
        guidance_scale=6.0,
    )
    stock = stock_video(stock_pipeline(tiny_weights_dir), settings, seed=1234)
    frames = stock()
    assert ours.shape == frames.shape == (16, 64, 64, 3)
    # Where they differ: in the denoising or the decoding, and from an input left out?
    suspects = stage_suspects(
        "denoising", "decoding", lambda: decoded(tier2, stock("latent")), frames, atol=1e-5
    )
    suspects |= dropped_input_suspects(
        ours,
        {
            "prompt": lambda: stock(prompt=""),
            "negative_prompt": lambda: stock(negative_prompt=None),
            "guidance_scale": lambda: stock(guidance_scale=7.5),  # stock's default
        },
        atol=1e-5,
    )
    assert_same_frames(
        ours,
        frames,
        "tier 2's frames, against stock AnimateDiffPipeline's",
        atol=1e-5,
        suspects=suspects,
    )


def test_same_seed_same_frames_other_seed_other_frames(tier2):
    first = generate(tier2, small_request())
    again = generate(tier2, small_request())
    other = generate(tier2, small_request(seed=4321))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_sizes_that_are_multiples_of_8_but_not_64_work(tier2):
    frames = generate(
        tier2, small_request(width=72, height=88, num_frames=8, num_inference_steps=1)
    )
    assert frames.shape == (8, 88, 72, 3)


def test_more_frames_than_one_decode_chunk(tier2):
    frames = generate(tier2, small_request(num_frames=24, num_inference_steps=1))
    assert frames.shape == (24, 64, 64, 3)


def test_scheduler_is_animatediff_v3s(tier2):
    config = tier2.pipeline.scheduler.config
    assert (
        config.beta_schedule,
        config.clip_sample,
        config.timestep_spacing,
        config.steps_offset,
    ) == ("linear", False, "linspace", 1)


def test_motion_adapter_weights_are_held_once(tier2):
    # The adapter stays (FreeNoise reads its config) but its modules are the UNet's own.
    unet_weights = {parameter.data_ptr() for parameter in tier2.pipeline.unet.parameters()}
    adapter_weights = [
        parameter.data_ptr() for parameter in tier2.pipeline.motion_adapter.parameters()
    ]
    assert adapter_weights and all(pointer in unet_weights for pointer in adapter_weights)
    assert type(tier2.pipeline.unet).__name__ == "UNetMotionModel"


def test_long_prompt_is_cut_and_the_user_is_told(tier2):
    # The tiny tokenizer reads one token per character: 200 characters is far past 77 tokens.
    printed = io.StringIO()
    with redirect_stdout(printed):
        generate(
            tier2,
            small_request(prompt="a very long prompt " * 10, num_inference_steps=1, num_frames=8),
        )
    assert "CLIP reads the first 77" in printed.getvalue()


# Long shots and prompt schedules (docs/LONG_SHOTS.md): FreeNoise, only where it is needed.


def test_long_shot_with_a_schedule_equals_stock_free_noise(tier2, stock_long_shot):
    """96 frames, three segments: the frames diffusers' stock AnimateDiffPipeline gives with
    enable_free_noise (its defaults: 16-frame windows, stride 4) and the same texts as a dict."""
    request, stock = stock_long_shot
    printed = io.StringIO()
    with redirect_stdout(printed):
        ours = generate(tier2, request)
    assert ours.shape == stock.shape == (96, 64, 64, 3)
    # Which frames differ says which FreeNoise windows or schedule segments to look at.
    assert_same_frames(ours, stock, "the long shot's frames, against stock FreeNoise's")
    assert (
        "  frame 0: 'a man in a red coat, he opens the door'\n"
        "  frame 24: 'a man in a red coat, he steps inside'\n"
        "  frames 48–95: 'a man in a red coat, he sits down'"
    ) in printed.getvalue()


def test_a_schedule_on_a_clip_shorter_than_a_window_equals_stock(tier2, tiny_weights_dir):
    request = small_request(
        num_frames=8, num_inference_steps=2, prompt="a kite", prompt_schedule="0: rises | 5: falls"
    )
    stock = stock_pipeline(tiny_weights_dir)
    stock.enable_free_noise(context_length=8, context_stride=4)  # the clip is one window
    expected = stock(
        prompt={0: "a kite, rises", 5: "a kite, falls"},
        num_frames=8,
        height=64,
        width=64,
        num_inference_steps=2,
        guidance_scale=7.5,
        generator=torch.Generator("cpu").manual_seed(1234),
        output_type="np",
    ).frames[0]
    assert_same_frames(
        generate(tier2, request), expected, "a scheduled short clip, against stock FreeNoise's"
    )


class MotionBlocksWhileDenoising(Progress):
    """The progress bar, noting at each denoising step which transformer blocks the motion modules
    run and whether the pipeline has FreeNoise on."""

    def __init__(self, total: int, pipeline):
        super().__init__(total, stream=io.StringIO())
        self.pipeline, self.seen = pipeline, set()

    def advance(self, stage: str, units: int = 1) -> None:
        if stage == "denoising":
            unet = self.pipeline.unet
            blocks = {
                type(block).__name__
                for unet_block in (*unet.down_blocks, *unet.up_blocks)
                for motion_module in unet_block.motion_modules
                for block in motion_module.transformer_blocks
            }
            self.seen.add((frozenset(blocks), self.pipeline.free_noise_enabled))
        super().advance(stage, units)


@pytest.mark.parametrize(
    "num_frames, schedule, free_noise",
    [(16, "", False), (32, "", False), (33, "", True), (8, "0: a door | 4: a window", True)],
    ids=["16 frames", "32 frames", "33 frames", "8 frames with a schedule"],
)
def test_free_noise_runs_only_past_32_frames_or_with_a_schedule_and_is_gone_afterwards(
    tier2, num_frames, schedule, free_noise
):
    request = small_request(num_frames=num_frames, num_inference_steps=1, prompt_schedule=schedule)
    unet = tier2.pipeline.unet
    modules_before = [id(module) for module in unet.modules()]
    progress = MotionBlocksWhileDenoising(tier2.progress_units(request), tier2.pipeline)
    assert tier2.generate(request, progress).shape == (num_frames, 64, 64, 3)
    # Split inference wraps FreeNoise's blocks, so its wrapper is what the motion modules hold then.
    assert progress.seen == (
        {(frozenset({"SplitInferenceModule"}), True)}
        if free_noise
        else {(frozenset({"BasicTransformerBlock"}), False)}
    )
    # Afterwards the UNet holds exactly the modules it held before, and FreeNoise is off.
    assert [id(module) for module in unet.modules()] == modules_before
    assert not tier2.pipeline.free_noise_enabled


def test_a_long_shot_builds_no_block_and_no_second_copy_of_the_weights(tier2, monkeypatch):
    """FreeNoise's blocks are built once, when the tier is loaded, on the motion modules' own weight
    tensors: a long shot swaps them in and builds none (diffusers' `enable_free_noise` builds one
    per motion-module transformer block, each with weights of its own, whenever it is called)."""
    built = []
    build = FreeNoiseTransformerBlock.__init__

    def counted(self, *args, **kwargs):
        built.append(self)
        build(self, *args, **kwargs)

    monkeypatch.setattr(FreeNoiseTransformerBlock, "__init__", counted)
    blocks = [
        block
        for module in tier2.pipeline.unet.modules()
        if type(module).__name__ == "AnimateDiffTransformer3D"
        for block in module.transformer_blocks
    ]
    TextToVideo(tier2.pipeline, tier2.draft)  # what loading the tier builds: the count sees it
    assert len(built) == len(blocks) == len(tier2.free_noise_blocks) > 0
    built.clear()

    request = small_request(num_frames=34, num_inference_steps=1)
    assert generate(tier2, request).shape == (34, 64, 64, 3)
    generate(tier2, request)
    assert built == []  # two long shots, no block built
    for parent, name, free_noise_block in tier2.free_noise_blocks:
        original = getattr(parent, name)  # back in place after the shots
        assert original in blocks
        shared = original.state_dict()
        for key, tensor in free_noise_block.state_dict().items():
            assert tensor.data_ptr() == shared[key].data_ptr(), key  # the very same weights


def test_a_long_shot_leaves_the_next_short_clip_unchanged(tier2):
    before = generate(tier2, small_request(num_inference_steps=1))
    generate(tier2, small_request(num_frames=34, num_inference_steps=1))
    np.testing.assert_array_equal(generate(tier2, small_request(num_inference_steps=1)), before)


# Shorter than a window, exactly one, and past it by each remainder of 4 (and of 3), up to 96.
@pytest.mark.parametrize("num_frames", [8, 15, 16, 17, 18, 19, 20, 33, 34, 35, 38, 39, 94, 95, 96])
def test_free_noise_windows_weigh_every_frame_alike(num_frames):
    """A FreeNoise block whose attention and feed-forward add nothing must return its input: each
    frame is the weighted mean of its windows. diffusers 0.42.1 gets the weights wrong when the
    last window ends 2 or more frames past the others (34 frames with its default stride 4: the
    last frame comes out at half its value); the windows we choose never leave more than one."""
    window, stride = free_noise_windows(num_frames)
    assert window == min(16, num_frames) and stride in (4, 3, 2)
    frames = torch.ones(1, num_frames, 8)
    with torch.no_grad():
        np.testing.assert_allclose(
            identity_free_noise_block(window, stride)(frames), frames, rtol=1e-6
        )
        if (
            num_frames - 16
        ) % 4 > 1 and num_frames > 16:  # where diffusers' default stride would leave 2 or 3
            assert stride != 4
            assert not torch.allclose(identity_free_noise_block(16, 4)(frames), frames)


@torch.no_grad()
def identity_free_noise_block(window: int, stride: int) -> FreeNoiseTransformerBlock:
    """A FreeNoise block whose attention and feed-forward add zero."""
    block = FreeNoiseTransformerBlock(
        dim=8,
        num_attention_heads=1,
        attention_head_dim=8,
        double_self_attention=True,
        context_length=window,
        context_stride=stride,
    )
    for parameter in block.parameters():
        parameter.zero_()  # the norms' scales too, so every branch's output is zero
    return block
