"""Tier 4's draft: FastVideo's FastWan 2.2 TI2V-5B, a DMD few-step distillation of Wan 2.2 TI2V-5B,
sampled in 3 transformer calls without classifier-free guidance.

diffusers has no pipeline for DMD sampling, so the loop is written here, following FastVideo's
`DmdDenoisingStage` (hao-ai-lab/FastVideo, fastvideo/pipelines/stages/denoising.py) with its
settings for this model (fastvideo/configs/pipelines/wan.py, `FastWan2_2_TI2V_5B_Config`:
`dmd_denoising_steps` 1000, 757, 522): at each timestep the transformer predicts the flow, the
clean latents are read off it (`pred_noise_to_pred_video` in fastvideo/models/utils.py: x - σ·v),
and, but for the last step, noise is added back at the next timestep's σ. The σ of a timestep is
looked up, as FastVideo does, in a flow-matching Euler schedule of shift 8. Everything else (the
prompt's UMT5 embedding, the initial noise, the caller's image as the first latent frame with
`expand_timesteps`, the VAE decode) is the stock pipelines' own code, on the same modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
)
from PIL import Image

from pipelines.common import Device, seeded_generator
from weights import WEIGHT_SETS

# FastWan2_2_TI2V_5B_Config.dmd_denoising_steps, and DmdDenoisingStage's scheduler shift.
DMD_TIMESTEPS = (1000, 757, 522)
DMD_SHIFT = 8.0
DRAFT_GUIDANCE = 1.0  # distilled without classifier-free guidance: one pass per step


def load_draft_transformer(
    weights_dir: Path, device: Device, dtype: torch.dtype
) -> WanTransformer3DModel:
    """In `dtype`, the standard transformer's (pipelines/tier4.py's wan_dtype)."""
    folder = WEIGHT_SETS["fastwan22_ti2v"].path(weights_dir)
    transformer = WanTransformer3DModel.from_pretrained(
        folder, subfolder="transformer", use_safetensors=True, dtype=dtype
    )
    return transformer.to(device.torch_device).eval()


def _sigma_lookup(scheduler: FlowMatchEulerDiscreteScheduler):
    timesteps, sigmas = scheduler.timesteps.double(), scheduler.sigmas.double()

    def sigma(timestep: int) -> float:
        return float(sigmas[torch.argmin((timesteps - timestep).abs())])

    return sigma


@torch.no_grad()
def dmd_sample(
    transformer: WanTransformer3DModel,
    text_pipeline: WanPipeline,
    image_pipeline: WanImageToVideoPipeline,
    *,
    prompt: str,
    width: int,
    height: int,
    num_frames: int,
    seed: int,
    image: Image.Image | None,
    on_step,
    max_sequence_length: int,
) -> np.ndarray:
    """Float frames in [0, 1], (num_frames, height, width, 3)."""
    device = text_pipeline._execution_device
    generator = seeded_generator(seed)
    prompt_embeds, _ = text_pipeline.encode_prompt(
        prompt,
        do_classifier_free_guidance=False,
        max_sequence_length=max_sequence_length,
        device=device,
    )
    prompt_embeds = prompt_embeds.to(transformer.dtype)
    channels = text_pipeline.vae.config.z_dim
    if image is None:
        latents = text_pipeline.prepare_latents(
            1, channels, height, width, num_frames, torch.float32, device, generator
        )
        condition, keep = None, torch.ones_like(latents)
    else:
        pixels = image_pipeline.video_processor.preprocess(image, height=height, width=width)
        latents, condition, keep = image_pipeline.prepare_latents(
            pixels.to(device, dtype=torch.float32),
            1,
            channels,
            height,
            width,
            num_frames,
            torch.float32,
            device,
            generator,
        )
    sigma = _sigma_lookup(FlowMatchEulerDiscreteScheduler(shift=DMD_SHIFT))
    for index, timestep in enumerate(DMD_TIMESTEPS):
        noisy = latents if condition is None else (1 - keep) * condition + keep * latents
        # expand_timesteps: one timestep per 2×2 patch; the image's frame is at 0 (clean).
        per_patch = (keep[0][0][:, ::2, ::2] * timestep).flatten().unsqueeze(0)
        flow = transformer(
            hidden_states=noisy.to(transformer.dtype),
            timestep=per_patch,
            encoder_hidden_states=prompt_embeds,
            return_dict=False,
        )[0]
        clean = (noisy.double() - sigma(timestep) * flow.double()).float()
        if index < len(DMD_TIMESTEPS) - 1:
            noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(device)
            next_sigma = sigma(DMD_TIMESTEPS[index + 1])
            latents = (1 - next_sigma) * clean + next_sigma * noise
        else:
            latents = clean
        on_step()
    if condition is not None:
        latents = (1 - keep) * condition + keep * latents
    return _decode(text_pipeline, latents)


def _decode(pipeline: WanPipeline, latents: torch.Tensor) -> np.ndarray:
    """WanPipeline's own decode (pipeline_wan.py, after its denoising loop)."""
    vae = pipeline.vae
    latents = latents.to(vae.dtype)
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents.device, latents.dtype)
    inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(shape).to(
        latents.device, latents.dtype
    )
    video = vae.decode(latents / inverse_std + mean, return_dict=False)[0]
    return pipeline.video_processor.postprocess_video(video, output_type="np")[0]
