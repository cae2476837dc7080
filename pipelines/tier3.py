"""Tier 3: a keyframe from SDXL (or the caller's image), animated by Stable Video Diffusion 1.1.

Composes diffusers' `StableDiffusionXLPipeline` (with the fp16-fix VAE) and
`StableVideoDiffusionPipeline`; decodes SVD's latents in chunks itself, so progress can be
reported per chunk. Keyframe and animation equal the stock pipelines' for the same components,
inputs and seed (tests/test_tier3_pipeline.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, StableVideoDiffusionPipeline
from PIL import Image

from pipelines.common import Device, log_prompt_truncation, seeded_generator
from pipelines.images import load_start_image
from pipelines.inputs import VideoRequest
from pipelines.progress import Progress
from weights import WEIGHT_SETS

# Frames the temporal VAE decodes at once. SVD's decoder attends across the frames of a chunk, so
# memory grows with it; 8 is what diffusers' SVD docs use to fit 25 frames at 1024×576.
DECODE_CHUNK_FRAMES = 8


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
        sdxl_vae.path(weights_dir), variant=sdxl_vae.variant, use_safetensors=True, dtype=device.dtype
    )
    pipeline = StableDiffusionXLPipeline.from_pretrained(
        sdxl.path(weights_dir), vae=vae, variant=sdxl.variant, use_safetensors=True, dtype=device.dtype
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

    def __init__(self, keyframe: StableDiffusionXLPipeline, animation: StableVideoDiffusionPipeline, device: Device):
        self.keyframe_pipeline = keyframe
        self.animation_pipeline = animation
        self.device = device

    @classmethod
    def load(cls, weights_dir: Path, device: Device, clip_l: torch.nn.Module | None = None) -> "KeyframeToVideo":
        return cls(load_keyframe_pipeline(weights_dir, device, clip_l), load_animation_pipeline(weights_dir, device), device)

    def progress_units(self, request: VideoRequest) -> int:
        """Keyframe steps (none with the caller's image), SVD steps, one per decoded frame."""
        keyframe_steps = 0 if request.image is not None else request.num_inference_steps
        return keyframe_steps + request.num_inference_steps + request.num_frames

    def generate(self, request: VideoRequest, progress: Progress) -> np.ndarray:
        # 1. The start frame: the caller's image, read and checked before any model runs, or a
        #    keyframe rendered by SDXL from the prompt.
        if request.image is not None:
            keyframe = load_start_image(request.image, request.width, request.height)
        else:
            keyframe = self.render_keyframe(request, progress)
        # 2. Animate it: SVD's denoising loop, stopped before decoding.
        latents = self.animate(keyframe, request, progress)
        # 3. Decode in chunks, with progress per chunk.
        return self.decode(latents, progress)

    def render_keyframe(self, request: VideoRequest, progress: Progress) -> Image.Image:
        pipeline = self.keyframe_pipeline
        for tokenizer in (pipeline.tokenizer, pipeline.tokenizer_2):
            log_prompt_truncation(tokenizer, request.prompt, "prompt")
        return pipeline(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            height=request.height,
            width=request.width,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=seeded_generator(request.seed),
            callback_on_step_end=progress.step_callback("keyframe"),
        ).images[0]

    def animate(self, keyframe: Image.Image, request: VideoRequest, progress: Progress) -> torch.Tensor:
        pipeline = self.animation_pipeline
        try:
            return pipeline(
                image=keyframe,
                height=request.height,
                width=request.width,
                num_frames=request.num_frames,
                num_inference_steps=request.num_inference_steps,
                # SVD's own guidance ramp (1 → 3 across frames, diffusers' defaults); `guidance_scale`
                # drives the keyframe. diffusers conditions SVD on fps - 1, as it was trained.
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

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor, progress: Progress) -> np.ndarray:
        pipeline = self.animation_pipeline
        chunks = []
        for start in range(0, latents.shape[1], DECODE_CHUNK_FRAMES):
            chunk = latents[:, start : start + DECODE_CHUNK_FRAMES]
            chunks.append(pipeline.decode_latents(chunk, chunk.shape[1], decode_chunk_size=DECODE_CHUNK_FRAMES))
            progress.advance("decoding", chunk.shape[1])
        video = torch.cat(chunks, dim=2)  # (batch, channels, frames, h, w)
        return pipeline.video_processor.postprocess_video(video=video, output_type="np")[0]

