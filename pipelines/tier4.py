"""Tier 4: Wan 2.2 TI2V-5B, one transformer for text to video and, with the caller's image, image
to video.

Composes diffusers' `WanPipeline` and `WanImageToVideoPipeline`, both with `expand_timesteps`
(every latent patch gets its own timestep, so the first latent frame stays the caller's image):
the image pipeline is built from the text pipeline's components, so every model is in memory once.
Frames equal the stock pipelines' for the same components, inputs and seed
(tests/test_tier4_pipeline.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanPipeline

from pipelines.common import Device, seeded_generator
from pipelines.images import FrameCheck, load_start_image
from pipelines.inputs import VideoRequest
from pipelines.progress import Progress
from pipelines.tier4_draft import dmd_sample, load_draft_transformer
from weights import WEIGHT_SETS

# UMT5 reads up to 512 tokens of a prompt (Wan-Video/Wan2.2 wan/configs/shared_config.py text_len;
# WanPipeline's max_sequence_length default).
MAX_TEXT_TOKENS = 512
# The VAE stays in float32 whatever the transformers' precision, as the model card loads it (the Wan
# VAE's decode is the part that loses quality in half precision); bench/resident_memory.py counts
# it so.
VAE_DTYPE = torch.float32


def wan_dtype(device: Device) -> torch.dtype:
    """Tier 4's precision for its transformers and UMT5: half precision is bfloat16 whatever the
    device's half is. Wan 2.2 is published and run in bfloat16 (diffusers' WanPipeline example
    loads it so, its VAE in float32), and T5-family encoders are known to overflow float16's
    range; float16 is the GPU default only because tiers 2 and 3 publish float16 weights."""
    return torch.bfloat16 if device.dtype in (torch.float16, torch.bfloat16) else device.dtype


def load_text_pipeline(weights_dir: Path, device: Device) -> WanPipeline:
    """The repository's pipeline, its VAE in VAE_DTYPE."""
    folder = WEIGHT_SETS["wan22_ti2v"].path(weights_dir)
    vae = AutoencoderKLWan.from_pretrained(
        folder, subfolder="vae", use_safetensors=True, dtype=VAE_DTYPE
    )
    pipeline = WanPipeline.from_pretrained(
        folder, vae=vae, use_safetensors=True, dtype=wan_dtype(device)
    )
    pipeline.set_progress_bar_config(disable=True)  # progress comes from pipelines.progress
    return pipeline.to(device.torch_device)


def image_pipeline_from(text_pipeline: WanPipeline) -> WanImageToVideoPipeline:
    """Image to video on the same modules: TI2V-5B has no CLIP image encoder; the image is
    encoded by the VAE as the first latent frame."""
    pipeline = WanImageToVideoPipeline(
        **text_pipeline.components,
        boundary_ratio=text_pipeline.config.boundary_ratio,
        expand_timesteps=text_pipeline.config.expand_timesteps,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


class WanTextImageToVideo:
    """Tier 4. `generate` returns float frames in [0, 1], shape (num_frames, height, width, 3)."""

    def __init__(self, text_pipeline: WanPipeline, draft_transformer, device: Device):
        self.text_pipeline = text_pipeline
        self.image_pipeline = image_pipeline_from(text_pipeline)
        # Always resident beside the standard transformer (a second 5 B model, 10 GB: counted by
        # bench/resident_memory.py); the stock pipelines never see it, so the standard mode is
        # untouched.
        self.draft_transformer = draft_transformer
        self.device = device

    @classmethod
    def load(cls, weights_dir: Path, device: Device) -> WanTextImageToVideo:
        return cls(
            load_text_pipeline(weights_dir, device),
            load_draft_transformer(weights_dir, device, wan_dtype(device)),
            device,
        )

    def progress_units(self, request: VideoRequest) -> int:
        """One per denoising step (the draft's fixed 3), one for the VAE decode of the clip."""
        return request.num_inference_steps + 1

    def generate(
        self, request: VideoRequest, progress: Progress, check_start_frame: FrameCheck | None = None
    ) -> np.ndarray:
        # 1. The caller's image, read and checked before any model runs (and by the safety
        #    checker, as tier 3's is), or none: text to video.
        arguments = dict(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            height=request.height,
            width=request.width,
            num_frames=request.num_frames,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=seeded_generator(request.seed),
            max_sequence_length=MAX_TEXT_TOKENS,
            callback_on_step_end=progress.step_callback("denoising"),
            output_type="np",
        )
        self._log_truncation(request)
        image = None
        if request.image is not None:
            image = load_start_image(request.image, request.width, request.height)
            if check_start_frame is not None:
                check_start_frame(image, "your image")
        if request.draft:
            # 2. The draft: FastWan's 3 DMD steps (pipelines/tier4_draft.py).
            frames = dmd_sample(
                self.draft_transformer,
                self.text_pipeline,
                self.image_pipeline,
                prompt=request.prompt,
                width=request.width,
                height=request.height,
                num_frames=request.num_frames,
                seed=request.seed,
                image=image,
                on_step=lambda: progress.advance("denoising"),
                max_sequence_length=MAX_TEXT_TOKENS,
            )
        elif image is not None:
            # 2. Denoise and decode: diffusers' stock pipelines, unchanged.
            frames = self.image_pipeline(image=image, **arguments).frames[0]
        else:
            frames = self.text_pipeline(**arguments).frames[0]
        progress.advance("decoding")
        return np.asarray(frames, dtype=np.float32)

    def _log_truncation(self, request: VideoRequest) -> None:
        tokenizer = self.text_pipeline.tokenizer
        for name in ("prompt", "negative_prompt"):
            text = getattr(request, name)
            count = len(tokenizer(text).input_ids) if text else 0
            if count > MAX_TEXT_TOKENS:
                print(
                    f"Note: {name} is {count} UMT5 tokens; Wan reads the first {MAX_TEXT_TOKENS}.",
                    flush=True,
                )
