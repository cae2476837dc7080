"""Tier 2: text to video with the AnimateDiff v3 motion adapter on Stable Diffusion 1.5.

Composes diffusers' own `AnimateDiffPipeline` for the denoising loop and decodes the latents in
chunks itself, so progress can be reported per chunk. The frames equal the stock pipeline's for
the same components, inputs and seed (tests/test_tier2_pipeline.py checks that).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

from pipelines.common import Device, log_prompt_truncation, seeded_generator
from pipelines.draft import DraftMode
from pipelines.inputs import VideoRequest
from pipelines.progress import Progress
from weights import WEIGHT_SETS

# AnimateDiff v3's recommended sampler (diffusers' AnimateDiff docs; guoyww/AnimateDiff
# configs/inference/inference-v3.yaml): DDIM on SD 1.5's betas with a *linear* schedule, linspace
# timesteps and no sample clipping.
SCHEDULER_OVERRIDES = dict(
    beta_schedule="linear", clip_sample=False, timestep_spacing="linspace", steps_offset=1
)
# Frames the VAE decodes at once: 16 is the whole default clip at 512×512 in fp16 (about 3 GB of
# activations on a GPU); larger clips are decoded in several passes so memory stays bounded.
DECODE_CHUNK_FRAMES = 16


def load_pipeline(weights_dir: Path, device: Device) -> AnimateDiffPipeline:
    """Build the AnimateDiff pipeline from the SD 1.5 and motion adapter folders, onto `device`."""
    sd15, animatediff = WEIGHT_SETS["sd15"], WEIGHT_SETS["animatediff"]
    adapter = MotionAdapter.from_pretrained(
        animatediff.path(weights_dir), variant=animatediff.variant, use_safetensors=True,
        dtype=device.dtype,
    )
    scheduler = DDIMScheduler.from_pretrained(
        sd15.path(weights_dir), subfolder="scheduler", **SCHEDULER_OVERRIDES
    )
    pipeline = AnimateDiffPipeline.from_pretrained(
        sd15.path(weights_dir),
        motion_adapter=adapter,
        scheduler=scheduler,
        # Not used for text-to-video; passing None keeps them from being looked for on disk.
        feature_extractor=None,
        image_encoder=None,
        variant=sd15.variant,
        use_safetensors=True,  # never a pickle-format file
        dtype=device.dtype,
    )
    # The adapter's weights now live inside the UNetMotionModel; the pipeline would otherwise keep
    # the standalone adapter too, a second copy of its weights (0.83 GB in fp16).
    pipeline.register_modules(motion_adapter=None)
    pipeline.set_progress_bar_config(disable=True)  # progress comes from pipelines.progress
    return pipeline.to(device.torch_device)


class TextToVideo:
    """Tier 2. `generate` returns float frames in [0, 1], shape (num_frames, height, width, 3)."""

    def __init__(self, pipeline: AnimateDiffPipeline, draft: DraftMode):
        self.pipeline = pipeline
        self.draft = draft

    @classmethod
    def load(cls, weights_dir: Path, device: Device) -> "TextToVideo":
        pipeline = load_pipeline(weights_dir, device)
        return cls(pipeline, DraftMode.load(weights_dir, device, pipeline))

    def progress_units(self, request: VideoRequest) -> int:
        """Progress steps this tier reports: one per denoising step, one per decoded frame."""
        return request.num_inference_steps + request.num_frames

    def generate(self, request: VideoRequest, progress: Progress) -> np.ndarray:
        if request.draft:  # Lightning's motion modules in the UNet for this request only
            with self.draft.active(request.camera_motion, request.camera_motion_strength) as pipeline:
                return self._generate(pipeline, request, progress)
        return self._generate(self.pipeline, request, progress)

    def _generate(self, pipeline: AnimateDiffPipeline, request: VideoRequest, progress: Progress) -> np.ndarray:
        # 1. Check the prompt: CLIP reads 77 tokens; say so when the rest is dropped.
        log_prompt_truncation(pipeline.tokenizer, request.prompt, "prompt")
        log_prompt_truncation(pipeline.tokenizer, request.negative_prompt, "negative_prompt")

        # 2. Denoise: diffusers' loop, stopped before decoding so decoding can report progress.
        latents = pipeline(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt or None,
            num_frames=request.num_frames,
            height=request.height,
            width=request.width,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            generator=seeded_generator(request.seed),
            output_type="latent",
            callback_on_step_end=progress.step_callback("denoising"),
        ).frames

        # 3. Decode in chunks of frames, the way the pipeline itself would, with progress per chunk.
        return self.decode(latents, progress)

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor, progress: Progress) -> np.ndarray:
        pipeline = self.pipeline
        num_frames = latents.shape[2]
        chunks = []
        for start in range(0, num_frames, DECODE_CHUNK_FRAMES):
            chunk = latents[:, :, start : start + DECODE_CHUNK_FRAMES]
            chunks.append(pipeline.decode_latents(chunk, decode_chunk_size=DECODE_CHUNK_FRAMES))
            progress.advance("decoding", chunk.shape[2])
        video = torch.cat(chunks, dim=2)
        # (batch, channels, frames, h, w) -> frames × h × w × 3 floats in [0, 1]
        return pipeline.video_processor.postprocess_video(video=video, output_type="np")[0]
