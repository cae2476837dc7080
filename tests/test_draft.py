"""Tier 2's draft mode in-process, loaded through the production code from the tiny weights:
frames equal to AnimateDiff-Lightning's model-card recipe in stock diffusers (with and without a
camera-move LoRA), one spatial UNet for both motion modules, and no weights read per request."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler, MotionAdapter
from safetensors.torch import load_file

from pipelines.common import pick_device
from pipelines.draft import CAMERA_MOTIONS, DRAFT_STEPS, LORA_FILE, MotionModules
from pipelines.tier2 import TextToVideo
from tests.support.parity import assert_same_frames, matches, stage_suspects
from tests.test_tier2_pipeline import decoded, generate, small_request
from weights import WEIGHT_SETS


@pytest.fixture(scope="module")
def tier2(tiny_weights_dir, tmp_path_factory):
    """Loaded from a copy of the weights that is deleted once loaded: a request that read weights
    from disk would fail."""
    copy = tmp_path_factory.mktemp("draft-weights") / "weights"
    shutil.copytree(tiny_weights_dir, copy)
    loaded = TextToVideo.load(copy, pick_device())
    shutil.rmtree(copy)
    return loaded


def draft_request(**overrides):
    return small_request(draft=True, **overrides)


def model_card_pipeline(weights_dir):
    """AnimateDiff-Lightning's model card, step by step, on the same SD 1.5 folder: MotionAdapter
    given the checkpoint's state dict, AnimateDiffPipeline, Euler with trailing timesteps and
    linear betas. (The card's `MotionAdapter()` is the full-size architecture; the tiny one is the
    tiny v3 adapter's shape with v2's mid-block module, as in scripts/make_tiny_weights.py.)"""
    config = MotionAdapter.load_config(WEIGHT_SETS["animatediff"].path(weights_dir))
    adapter = MotionAdapter.from_config({**config, "use_motion_mid_block": True})
    lightning = WEIGHT_SETS["animatediff_lightning"]
    adapter.load_state_dict(load_file(lightning.path(weights_dir) / lightning.files[0]))
    pipeline = AnimateDiffPipeline.from_pretrained(
        WEIGHT_SETS["sd15"].path(weights_dir),
        motion_adapter=adapter,
        variant="fp16",
        dtype=torch.float32,
        feature_extractor=None,
        image_encoder=None,
    )
    pipeline.scheduler = EulerDiscreteScheduler.from_config(
        pipeline.scheduler.config, timestep_spacing="trailing", beta_schedule="linear"
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def model_card_frames(pipeline, request, output_type="np"):
    output = pipeline(
        prompt=request.prompt,
        num_frames=request.num_frames,
        height=request.height,
        width=request.width,
        guidance_scale=1.0,
        num_inference_steps=4,
        generator=torch.Generator("cpu").manual_seed(request.seed),
        output_type=output_type,
    ).frames
    return output if output_type == "latent" else output[0]


@pytest.fixture(scope="module")
def model_card(tiny_weights_dir):
    return model_card_pipeline(tiny_weights_dir)


def test_draft_frames_equal_the_model_cards_recipe(tier2, model_card):
    # Steps and guidance sent with a draft are set aside for the recipe's 4 and 1.
    request = draft_request(num_inference_steps=30, guidance_scale=8.0)
    assert (request.num_inference_steps, request.guidance_scale) == (DRAFT_STEPS, 1.0)
    ours = generate(tier2, request)
    stock = model_card_frames(model_card, request)
    assert ours.shape == stock.shape == (16, 64, 64, 3)
    assert_same_frames(
        ours,
        stock,
        "a draft's frames, against the model card's recipe",
        atol=1e-5,
        suspects=stage_suspects(
            "denoising",
            "decoding",
            lambda: decoded(tier2, model_card_frames(model_card, request, "latent")),
            stock,
            atol=1e-5,
        ),
    )


def test_a_camera_motion_equals_the_stock_pipeline_with_that_lora_at_its_strength(
    tier2, tiny_weights_dir
):
    stock = model_card_pipeline(tiny_weights_dir)
    folder = WEIGHT_SETS[CAMERA_MOTIONS["pan_left"]].path(tiny_weights_dir)
    stock.load_lora_weights(
        folder, weight_name=LORA_FILE, adapter_name="pan_left"
    )  # diffusers' AnimateDiff docs
    stock.set_adapters(["pan_left"], [0.6])
    request = draft_request(camera_motion="pan_left", camera_motion_strength=0.6, num_frames=8)
    ours = generate(tier2, request)
    with_lora = model_card_frames(stock, request)

    def at_full_strength() -> bool:
        stock.set_adapters(["pan_left"], [1.0])  # diffusers' default weight for an adapter
        return matches(ours, model_card_frames(stock, request), atol=1e-5)

    assert_same_frames(
        ours,
        with_lora,
        "a draft panning left at 0.6, against stock with the pan_left LoRA at 0.6",
        atol=1e-5,
        suspects={
            "camera_motion_strength does not reach the LoRA (ours equal stock's at 1.0)": (
                at_full_strength
            )
        },
    )
    assert (
        np.abs(ours - generate(tier2, draft_request(num_frames=8))).max() > 1e-3
    )  # the move did something


def test_both_motion_modules_share_one_spatial_unet_and_switching_allocates_nothing(tier2):
    draft, unet = tier2.draft, tier2.pipeline.unet
    assert draft.pipeline.unet is unet and draft.pipeline.vae is tier2.pipeline.vae
    assert draft.pipeline.text_encoder is tier2.pipeline.text_encoder
    assert (
        draft.pipeline.scheduler is not tier2.pipeline.scheduler
    )  # the standard one is never swapped
    assert draft.standard.is_installed_in(unet)
    resident = {
        tensor.data_ptr()
        for module in (unet, *draft.lightning.down, *draft.lightning.up, draft.lightning.mid_block)
        for tensor in module.state_dict().values()
    }
    standard_tensors = len(unet.state_dict())
    with draft.active("tilt_up", 0.75) as pipeline:
        assert pipeline is draft.pipeline and draft.lightning.is_installed_in(unet)
        # The same resnets and attentions in the mid block: no second copy of any spatial layer.
        assert unet.mid_block.resnets is draft.standard.mid_block.resnets
        assert unet.mid_block.attentions is draft.standard.mid_block.attentions
        during = {tensor.data_ptr() for tensor in unet.state_dict().values()}
        assert during <= resident
    assert draft.standard.is_installed_in(unet) and len(unet.state_dict()) == standard_tensors


def test_an_error_inside_a_draft_puts_the_standard_modules_back_and_the_lora_out(tier2):
    from peft.tuners.tuners_utils import BaseTunerLayer

    draft, unet = tier2.draft, tier2.pipeline.unet
    with pytest.raises(RuntimeError, match="mid-request"), draft.active("roll_clockwise", 1.2):
        assert not draft.standard.is_installed_in(unet)
        raise RuntimeError("mid-request")
    assert draft.standard.is_installed_in(unet)
    wrapped = [
        m
        for m in draft.lightning.mid_block.motion_modules.modules()
        if isinstance(m, BaseTunerLayer)
    ]
    assert wrapped and all(layer.disable_adapters for layer in wrapped)


def test_lightning_modules_are_a_different_network_from_v3s(tier2):
    """Guards the test above it: were both the same module, switching would prove nothing."""
    draft = tier2.draft
    assert isinstance(draft.standard, MotionModules) and draft.standard != draft.lightning
    assert not hasattr(draft.standard.mid_block, "motion_modules")  # v3 has no mid-block module
    v3 = draft.standard.down[0][0].proj_in.weight
    lightning = draft.lightning.down[0][0].proj_in.weight
    assert v3.shape == lightning.shape and not torch.equal(v3, lightning)
