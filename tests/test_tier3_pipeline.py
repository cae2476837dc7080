"""Tier 3 loaded through the production code, checked against diffusers' stock
StableDiffusionXLPipeline and StableVideoDiffusionPipeline (same components, inputs and seed)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, StableVideoDiffusionPipeline
from PIL import Image

from pipelines.common import pick_device
from pipelines.images import fit_to_size
from pipelines.inputs import resolve_request
from pipelines.progress import Progress
from pipelines.tier3 import SDXL_BUCKETS, SVD_VAE_DECODE_FRAMES, KeyframeToVideo, keyframe_size
from pipelines.tiers import load_tiers
from tests.support.parity import (
    assert_same_frames,
    dropped_input_suspects,
    stage_suspects,
    stock_video,
)
from weights import WEIGHT_SETS


@pytest.fixture(scope="module")
def tiers(tiny_weights_dir):
    """Built as setup() builds them."""
    return load_tiers(tiny_weights_dir, pick_device())


@pytest.fixture(scope="module")
def tier2(tiers):
    return tiers[2]


@pytest.fixture(scope="module")
def tier3(tiers):
    return tiers[3]


def request(**overrides):
    inputs = dict(
        tier=3,
        prompt="a lighthouse at dusk, long exposure",
        negative_prompt="blurry",
        width=128,
        height=64,
        num_frames=10,
        num_inference_steps=2,
        seed=99,
        guidance_scale=6.0,
        fps=7,
        motion_bucket_id=90,
        noise_aug_strength=0.05,
    )
    inputs.update(overrides)
    return resolve_request(inputs)


def quiet_progress(tier, req):
    return Progress(tier.progress_units(req), stream=io.StringIO())


def test_keyframe_equals_stock_sdxl_at_the_training_size_for_the_aspect_ratio(
    tier3, tiny_weights_dir
):
    req = request()  # 128×64, 2:1: SDXL's 1408×704 bucket, halved for the tiny UNet's 512 pixels
    ours = tier3.render_keyframe(req, quiet_progress(tier3, req))

    vae = AutoencoderKL.from_pretrained(
        WEIGHT_SETS["sdxl_vae"].path(tiny_weights_dir), dtype=torch.float32
    )
    pipeline = StableDiffusionXLPipeline.from_pretrained(
        WEIGHT_SETS["sdxl"].path(tiny_weights_dir), vae=vae, variant="fp16", dtype=torch.float32
    )

    settings = dict(
        prompt=req.prompt,
        negative_prompt="blurry",
        height=352,
        width=704,
        num_inference_steps=2,
        guidance_scale=6.0,
    )

    def stock(**changed) -> Image.Image:
        """The stock pipeline's keyframe for the request, with `changed` inputs instead."""
        generator = torch.Generator("cpu").manual_seed(99)
        return pipeline(**{**settings, **changed}, generator=generator).images[0]

    theirs = stock()
    assert ours.size == theirs.size == (704, 352)
    assert_same_frames(
        as_frames(ours),
        as_frames(theirs),
        "the keyframe, against stock StableDiffusionXLPipeline's",
        suspects=dropped_input_suspects(
            as_frames(ours),
            {
                "prompt": lambda: as_frames(stock(prompt="")),
                "negative_prompt": lambda: as_frames(stock(negative_prompt=None)),
                "guidance_scale": lambda: as_frames(stock(guidance_scale=5.0)),  # stock's default
            },
        ),
    )


@pytest.mark.parametrize(
    "video, keyframe",
    [
        ((1024, 576), (1344, 768)),  # 16:9, tier 3's default size
        ((576, 1024), (768, 1344)),
        ((512, 512), (1024, 1024)),
        ((640, 480), (1152, 896)),  # 4:3 = 1.33: 1152×896 is 1.29, 1216×832 is 1.46
        ((128, 64), (1408, 704)),
        (
            (1024, 64),
            (2048, 512),
        ),  # past SDXL's widest bucket: the widest, then cropped to the video
    ],
)
def test_the_keyframe_is_sdxls_training_bucket_nearest_the_videos_aspect_ratio(video, keyframe):
    assert keyframe_size(*video) == keyframe
    width, height = keyframe
    assert 0.9e6 < width * height < 1.2e6  # about one megapixel, as SDXL was trained


def test_the_buckets_are_the_papers_and_scale_with_the_models_base_resolution():
    assert len(SDXL_BUCKETS) == 41 and len({w / h for w, h in SDXL_BUCKETS}) == 41
    assert all((h, w) in SDXL_BUCKETS for w, h in SDXL_BUCKETS)  # portrait mirrors landscape
    assert keyframe_size(1024, 576, base=512) == (672, 384)  # the tiny UNet: sample_size 64 × 8


def test_the_start_frame_is_checked_at_the_video_size_before_anything_is_animated(tier3):
    req = request(num_frames=8)
    seen = []
    tier3.generate(
        req,
        quiet_progress(tier3, req),
        check_start_frame=lambda image, source: seen.append((image, source)),
    )
    ((image, source),) = seen
    assert image.size == (128, 64) and source == "the SDXL keyframe"

    class Refused(Exception):
        pass

    def refuse(image, source):
        raise Refused(source)

    progress = quiet_progress(tier3, req)
    with pytest.raises(Refused):
        tier3.generate(req, progress, check_start_frame=refuse)
    assert progress.done == req.num_inference_steps  # the keyframe's steps, and no SVD step

    uri = "data:image/png;base64," + base64.b64encode(_png(300, 200)).decode()
    seen.clear()
    tier3.generate(
        request(image=uri, num_frames=8),
        quiet_progress(tier3, req),
        check_start_frame=lambda image, source: seen.append((image, source)),
    )
    ((image, source),) = seen
    assert image.size == (128, 64) and source == "your image"


def as_frames(image: Image.Image) -> np.ndarray:
    """An image as a clip of one frame."""
    return np.asarray(image)[None]


def _png(width, height) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 220)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_keyframe_is_scaled_to_cover_the_video_and_its_centre_kept(tier3):
    """What SVD receives from a text prompt: the 1 MP keyframe fitted the way a caller's image
    is."""
    req = request(width=96, height=64)  # 3:2: SDXL's 1216×832 bucket (608×416 for the tiny model)
    keyframe = tier3.render_keyframe(req, quiet_progress(tier3, req))
    assert keyframe.size == (608, 416)
    seen = []
    tier3.generate(
        req, quiet_progress(tier3, req), check_start_frame=lambda image, source: seen.append(image)
    )
    np.testing.assert_array_equal(np.asarray(seen[0]), np.asarray(fit_to_size(keyframe, 96, 64)))


def test_animation_equals_stock_svd(tier3, tiny_weights_dir):
    # Each SVD input away from stock's default (fps 7, motion_bucket_id 127, noise_aug_strength
    # 0.02), so one that never reaches the model shows.
    req = request(fps=5)
    keyframe = Image.fromarray(
        (np.random.default_rng(0).random((64, 128, 3)) * 255).astype(np.uint8)
    )
    progress = quiet_progress(tier3, req)
    ours = tier3.decode(tier3.animate(keyframe, req, progress), progress)

    pipeline = StableVideoDiffusionPipeline.from_pretrained(
        WEIGHT_SETS["svd"].path(tiny_weights_dir), variant="fp16", dtype=torch.float32
    )
    settings = dict(
        image=keyframe,
        height=64,
        width=128,
        num_frames=10,
        num_inference_steps=2,
        fps=5,
        motion_bucket_id=90,
        noise_aug_strength=0.05,
        decode_chunk_size=SVD_VAE_DECODE_FRAMES,
    )
    stock = stock_video(pipeline, settings, seed=99)
    theirs = stock()
    assert ours.shape == theirs.shape == (10, 64, 128, 3)

    def stock_latents_decoded_by_us() -> np.ndarray:
        latents = stock("latent")
        return tier3.decode(latents, Progress(latents.shape[1], stream=io.StringIO()))

    suspects = stage_suspects(
        "animating", "decoding", stock_latents_decoded_by_us, theirs, atol=1e-5
    )
    suspects |= dropped_input_suspects(
        ours,
        {
            "fps": lambda: stock(fps=7),
            "motion_bucket_id": lambda: stock(motion_bucket_id=127),
            "noise_aug_strength": lambda: stock(noise_aug_strength=0.02),
        },
        atol=1e-5,
    )
    assert_same_frames(
        ours,
        theirs,
        "tier 3's animation, against stock StableVideoDiffusionPipeline's",
        atol=1e-5,
        suspects=suspects,
    )


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
    # load_tiers, as setup() calls it, hands tier 2's CLIP ViT-L to SDXL ...
    assert tier3.keyframe_pipeline.text_encoder is tier2.pipeline.text_encoder
    # ... and not shared when they differ.
    other = torch.nn.Linear(2, 2)
    separate = KeyframeToVideo.load(tiny_weights_dir, pick_device(), clip_l=other)
    assert separate.keyframe_pipeline.text_encoder is not other


def test_keyframe_uses_the_fp16_fix_vae(tier3):
    assert tier3.keyframe_pipeline.vae.config.force_upcast is False
    assert tier3.keyframe_pipeline.vae.config.scaling_factor == 0.13025
