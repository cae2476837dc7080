"""Tier 3: a keyframe from SDXL (or the caller's image), animated by Stable Video Diffusion 1.1.

Composes diffusers' `StableDiffusionXLPipeline` (with the fp16-fix VAE) and
`StableVideoDiffusionPipeline`; decodes SVD's latents in chunks itself, so progress can be
reported per chunk. The keyframe is rendered at SDXL's training resolution for the video's aspect
ratio and scaled to the video size. Keyframe and animation equal the stock pipelines' for the same
components, inputs and seed (tests/test_tier3_pipeline.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, StableVideoDiffusionPipeline
from PIL import Image
from transformers import CLIPTokenizer

from pipelines.common import Device, decode_in_chunks, log_prompt_truncation, seeded_generator
from pipelines.images import FrameCheck, fit_to_size, load_start_image
from pipelines.inputs import VideoRequest
from pipelines.progress import Progress
from weights import WEIGHT_SETS

# Frames SVD's temporal VAE decodes at once. Its decoder attends across the frames of a chunk, so
# memory grows with it; 8 is what diffusers' SVD docs use to fit 25 frames at 1024×576.
SVD_VAE_DECODE_FRAMES = 8

# SDXL was fine-tuned on these (width, height) buckets of about one megapixel, one per aspect ratio
# from 1:4 to 4:1: Podell et al., "SDXL: Improving Latent Diffusion Models for High-Resolution Image
# Synthesis" (arXiv:2307.01952), appendix table of the resolutions used for multi-aspect training
# (section 2.3). Listed at SDXL's base resolution of 1024 pixels.
SDXL_BUCKETS = (
    (512, 2048),
    (512, 1984),
    (512, 1920),
    (512, 1856),
    (576, 1792),
    (576, 1728),
    (576, 1664),
    (640, 1600),
    (640, 1536),
    (704, 1472),
    (704, 1408),
    (704, 1344),
    (768, 1344),
    (768, 1280),
    (832, 1216),
    (832, 1152),
    (896, 1152),
    (896, 1088),
    (960, 1088),
    (960, 1024),
    (1024, 1024),
    (1024, 960),
    (1088, 960),
    (1088, 896),
    (1152, 896),
    (1152, 832),
    (1216, 832),
    (1280, 768),
    (1344, 768),
    (1344, 704),
    (1408, 704),
    (1472, 704),
    (1536, 640),
    (1600, 640),
    (1664, 576),
    (1728, 576),
    (1792, 576),
    (1856, 512),
    (1920, 512),
    (1984, 512),
    (2048, 512),
)
SDXL_BASE_RESOLUTION = 1024


def keyframe_size(width: int, height: int, base: int = SDXL_BASE_RESOLUTION) -> tuple[int, int]:
    """The SDXL bucket (width, height) whose aspect ratio is nearest the video's (as a ratio, so
    2:1 is as far from 1:1 as 1:2), for a model whose base resolution is `base` (1024 for SDXL;
    the buckets scale with it, in multiples of 8)."""
    bucket_width, bucket_height = min(
        SDXL_BUCKETS, key=lambda bucket: abs(math.log((bucket[0] / bucket[1]) / (width / height)))
    )
    scale = base / SDXL_BASE_RESOLUTION
    return 8 * round(bucket_width * scale / 8), 8 * round(bucket_height * scale / 8)


def _same_weights(module: torch.nn.Module, other: torch.nn.Module) -> bool:
    ours, theirs = module.state_dict(), other.state_dict()
    return ours.keys() == theirs.keys() and all(
        torch.equal(ours[name].to(theirs[name].device), theirs[name]) for name in ours
    )


def load_keyframe_pipeline(
    weights_dir: Path, device: Device, clip_l: torch.nn.Module | None = None
) -> StableDiffusionXLPipeline:
    """SDXL base with the fp16-fix VAE. `clip_l` is tier 2's CLIP ViT-L text encoder: SDXL's first
    encoder is the same model, and when its weights are identical one copy serves both tiers."""
    sdxl, sdxl_vae = WEIGHT_SETS["sdxl"], WEIGHT_SETS["sdxl_vae"]
    # SDXL's own VAE overflows in fp16 (NaNs, black frames); this fine-tune of it does not.
    vae = AutoencoderKL.from_pretrained(
        sdxl_vae.path(weights_dir),
        variant=sdxl_vae.variant,
        use_safetensors=True,
        dtype=device.dtype,
    )
    pipeline = StableDiffusionXLPipeline.from_pretrained(
        sdxl.path(weights_dir),
        vae=vae,
        variant=sdxl.variant,
        use_safetensors=True,
        dtype=device.dtype,
    )
    if clip_l is not None and _same_weights(pipeline.text_encoder, clip_l):
        pipeline.register_modules(text_encoder=clip_l)
    pipeline.set_progress_bar_config(disable=True)  # progress comes from pipelines.progress
    return pipeline.to(device.torch_device)


def load_animation_pipeline(weights_dir: Path, device: Device) -> StableVideoDiffusionPipeline:
    svd = WEIGHT_SETS["svd"]
    pipeline = StableVideoDiffusionPipeline.from_pretrained(
        svd.path(weights_dir), variant=svd.variant, use_safetensors=True, dtype=device.dtype
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device.torch_device)


class KeyframeToVideo:
    """Tier 3. `generate` returns float frames in [0, 1], shape (num_frames, height, width, 3)."""

    def __init__(
        self,
        keyframe: StableDiffusionXLPipeline,
        animation: StableVideoDiffusionPipeline,
        device: Device,
    ):
        self.keyframe_pipeline = keyframe
        self.animation_pipeline = animation
        self.device = device

    @classmethod
    def load(
        cls, weights_dir: Path, device: Device, clip_l: torch.nn.Module | None = None
    ) -> KeyframeToVideo:
        return cls(
            load_keyframe_pipeline(weights_dir, device, clip_l),
            load_animation_pipeline(weights_dir, device),
            device,
        )

    @property
    def clip_tokenizer(self) -> CLIPTokenizer:
        """SDXL's first tokenizer: CLIP ViT-L's, the one tier 2 reads with."""
        return self.keyframe_pipeline.tokenizer

    def progress_units(self, request: VideoRequest) -> int:
        """Keyframe steps (none with the caller's image), SVD steps, one per decoded frame."""
        keyframe_steps = 0 if request.image is not None else request.num_inference_steps
        return keyframe_steps + request.num_inference_steps + request.num_frames

    def generate(
        self, request: VideoRequest, progress: Progress, check_start_frame: FrameCheck | None = None
    ) -> np.ndarray:
        # 1. The start frame: the caller's image, read and checked before any model runs, or a
        #    keyframe rendered by SDXL from the prompt and scaled to the video size. Then
        #    `check_start_frame` (the safety checker) sees it before anything is animated.
        if request.image is not None:
            keyframe, source = (
                load_start_image(request.image, request.width, request.height),
                "your image",
            )
        else:
            keyframe = fit_to_size(
                self.render_keyframe(request, progress), request.width, request.height
            )
            source = "the SDXL keyframe"
        if check_start_frame is not None:
            check_start_frame(keyframe, source)
        # 2. Animate it: SVD's denoising loop, stopped before decoding.
        latents = self.animate(keyframe, request, progress)
        # 3. Decode in chunks, with progress per chunk.
        return self.decode(latents, progress)

    def render_keyframe(self, request: VideoRequest, progress: Progress) -> Image.Image:
        """The keyframe at SDXL's training resolution for the video's aspect ratio (the video size
        itself is well under the megapixel SDXL was trained at: 1024×576 is 0.59 MP)."""
        pipeline = self.keyframe_pipeline
        for tokenizer in (pipeline.tokenizer, pipeline.tokenizer_2):
            log_prompt_truncation(tokenizer, request.prompt, "prompt")
        # The base resolution the loaded UNet declares, as diffusers uses for SDXL's default size.
        width, height = keyframe_size(
            request.width, request.height, pipeline.default_sample_size * pipeline.vae_scale_factor
        )
        print(
            f"Keyframe: {width}×{height} (SDXL's training size for this aspect ratio), scaled to "
            f"{request.width}×{request.height} for the video",
            flush=True,
        )
        return pipeline(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            height=height,
            width=width,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=seeded_generator(request.seed),
            callback_on_step_end=progress.step_callback("keyframe"),
        ).images[0]

    def animate(
        self, keyframe: Image.Image, request: VideoRequest, progress: Progress
    ) -> torch.Tensor:
        pipeline = self.animation_pipeline
        try:
            return pipeline(
                image=keyframe,
                height=request.height,
                width=request.width,
                num_frames=request.num_frames,
                num_inference_steps=request.num_inference_steps,
                # SVD's own guidance ramp (1 → 3 across frames, diffusers' defaults);
                # `guidance_scale` drives the keyframe. diffusers conditions SVD on fps - 1, as it
                # was trained.
                fps=request.fps,
                motion_bucket_id=request.motion_bucket_id,
                noise_aug_strength=request.noise_aug_strength,
                generator=seeded_generator(request.seed),
                output_type="latent",
                callback_on_step_end=progress.step_callback("animating"),
            ).frames
        finally:
            # In float16 diffusers moves SVD's VAE (force_upcast) to fp32 to encode the start frame
            # and back right after; a cancel or error in between would leave it in fp32 for every
            # later prediction. Cast only then: each cast logs a warning from diffusers.
            if pipeline.vae.dtype != self.device.dtype:
                pipeline.vae.to(dtype=self.device.dtype)

    def decode(self, latents: torch.Tensor, progress: Progress) -> np.ndarray:
        """SVD's latents, (batch, frames, channels, height, width), to frames."""
        pipeline = self.animation_pipeline
        return decode_in_chunks(
            latents,
            # SVD's decode_latents is told the chunk's frame count, to fold the decoded images back
            # into (batch, frames).
            lambda chunk: pipeline.decode_latents(
                chunk, chunk.shape[1], decode_chunk_size=SVD_VAE_DECODE_FRAMES
            ),
            pipeline.video_processor,
            progress,
            frames_axis=1,
            chunk_frames=SVD_VAE_DECODE_FRAMES,
        )
