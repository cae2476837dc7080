"""Tier 2: text to video with the AnimateDiff v3 motion adapter on Stable Diffusion 1.5.

Composes diffusers' own `AnimateDiffPipeline` for the denoising loop and decodes the latents in
chunks itself, so progress can be reported per chunk. Clips longer than the motion module's 32
frames, and clips with a prompt schedule, are denoised with diffusers' FreeNoise, switched on for
that request only. The frames equal the stock pipeline's for the same components, settings, inputs
and seed (tests/test_tier2_pipeline.py checks that).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter, UNetMotionModel
from diffusers.models.attention import FreeNoiseTransformerBlock
from transformers import CLIPTokenizer

from pipelines.common import Device, decode_in_chunks, log_prompt_truncation, seeded_generator
from pipelines.draft import DraftMode
from pipelines.images import FrameCheck
from pipelines.inputs import VideoRequest
from pipelines.progress import Progress
from weights import WEIGHT_SETS

# AnimateDiff v3's recommended sampler (diffusers' AnimateDiff docs; guoyww/AnimateDiff
# configs/inference/inference-v3.yaml): DDIM on SD 1.5's betas with a *linear* schedule, linspace
# timesteps and no sample clipping.
SCHEDULER_OVERRIDES = dict(
    beta_schedule="linear", clip_sample=False, timestep_spacing="linspace", steps_offset=1
)
# Frames SD 1.5's VAE decodes at once: 16 is the whole default clip at 512×512 in fp16 (about 3 GB
# of activations on a GPU); larger clips are decoded in several passes so memory stays bounded.
SD15_VAE_DECODE_FRAMES = 16
# FreeNoise (Qiu et al. 2023, arXiv:2310.15169; diffusers' `enable_free_noise`): the motion module
# attends within overlapping windows of frames and each frame takes the weighted mean of its
# windows, so a clip can outgrow the motion module, and each frame can have its own prompt.
# AnimateDiff v3's positions; clips up to this long run as they always did.
MOTION_MODULE_FRAMES = 32
FREE_NOISE_WINDOW_FRAMES = 16  # what AnimateDiff v3 was trained on, and diffusers' default
FREE_NOISE_STRIDES = (4, 3, 2)  # 4 is diffusers' default; `free_noise_windows` says why not always
# diffusers' split inference, with FreeNoise: the UNet's layers take part of the batch at a time
# (diffusers' defaults: 16 frames, or 256 pixel positions in the motion modules). None turns it
# off (bench/long_clip_memory.py --without-split-inference measures what it saves).
SPLIT_INFERENCE: dict[str, int] | None = dict(spatial_split_size=256, temporal_split_size=16)


def load_pipeline(weights_dir: Path, device: Device) -> AnimateDiffPipeline:
    """Build the AnimateDiff pipeline from the SD 1.5 and motion adapter folders, onto `device`."""
    sd15, animatediff = WEIGHT_SETS["sd15"], WEIGHT_SETS["animatediff"]
    adapter = MotionAdapter.from_pretrained(
        animatediff.path(weights_dir),
        variant=animatediff.variant,
        use_safetensors=True,
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
    # the standalone adapter's copy too (0.83 GB in fp16). Point the adapter at the UNet's modules
    # instead of dropping it: diffusers' FreeNoise reads the adapter's config.
    _share_motion_modules(pipeline.motion_adapter, pipeline.unet)
    pipeline.set_progress_bar_config(disable=True)  # progress comes from pipelines.progress
    return pipeline.to(device.torch_device)


def _share_motion_modules(adapter: MotionAdapter, unet: UNetMotionModel) -> None:
    for adapter_blocks, unet_blocks in (
        (adapter.down_blocks, unet.down_blocks),
        (adapter.up_blocks, unet.up_blocks),
    ):
        for adapter_block, unet_block in zip(adapter_blocks, unet_blocks):
            adapter_block.motion_modules = unet_block.motion_modules
    if adapter.mid_block is not None:
        adapter.mid_block.motion_modules = unet.mid_block.motion_modules


def uses_free_noise(request: VideoRequest) -> bool:
    """Only where it is needed, so every clip that worked before FreeNoise stays exactly the
    same."""
    return request.num_frames > MOTION_MODULE_FRAMES or bool(request.prompt_schedule)


def free_noise_windows(num_frames: int) -> tuple[int, int]:
    """FreeNoise's window and stride for a clip. A clip shorter than a window is one window.
    diffusers 0.42's FreeNoiseTransformerBlock weights a last window that ends 2 or more frames
    past the others wrongly (each of those frames is divided by the first frame's weight: scaled by
    1/2, 2/3...; tests/test_tier2_pipeline.py shows it), so the stride is the largest of 4, 3 and 2
    that leaves at most one frame over; 2 always does."""
    window = min(FREE_NOISE_WINDOW_FRAMES, num_frames)
    stride = next(stride for stride in FREE_NOISE_STRIDES if (num_frames - window) % stride <= 1)
    return window, stride


def frame_prompts(request: VideoRequest) -> str | dict[int, str]:
    """The prompt, or with a schedule the prompt and each segment's text from its frame on: the
    dict diffusers' FreeNoise takes, which blends each text linearly into the next."""
    if not request.prompt_schedule:
        return request.prompt
    return {
        frame: f"{request.prompt.strip().rstrip(',')}, {text}"
        for frame, text in request.prompt_schedule
    }


def log_schedule(prompts: dict[int, str], num_frames: int) -> None:
    frames = list(prompts)
    print(
        f"Prompt schedule as understood: each text is exact at its frame and blends linearly into "
        f"the next; the last is held to frame {num_frames - 1}:",
        flush=True,
    )
    for frame, text in prompts.items():
        span = (
            f"frames {frame}–{num_frames - 1}"
            if frame == frames[-1] and frame < num_frames - 1
            else f"frame {frame}"
        )
        print(f"  {span}: {text!r}", flush=True)


class TextToVideo:
    """Tier 2. `generate` returns float frames in [0, 1], shape (num_frames, height, width, 3)."""

    def __init__(self, pipeline: AnimateDiffPipeline, draft: DraftMode):
        self.pipeline = pipeline
        self.draft = draft
        # Built once, here: a long shot swaps them in, never builds them on the device anew.
        self.free_noise_blocks = build_free_noise_blocks(pipeline)

    @classmethod
    def load(cls, weights_dir: Path, device: Device) -> TextToVideo:
        pipeline = load_pipeline(weights_dir, device)
        return cls(pipeline, DraftMode.load(weights_dir, device, pipeline))

    @property
    def clip_tokenizer(self) -> CLIPTokenizer:
        """SD 1.5's tokenizer: CLIP ViT-L's."""
        return self.pipeline.tokenizer

    def progress_units(self, request: VideoRequest) -> int:
        """Progress steps this tier reports: one per denoising step, one per decoded frame."""
        return request.num_inference_steps + request.num_frames

    def generate(
        self, request: VideoRequest, progress: Progress, check_start_frame: FrameCheck | None = None
    ) -> np.ndarray:
        """Every frame is denoised together from noise: there is no start frame, so
        `check_start_frame` (part of the tier interface, pipelines/tiers.py) is never called."""
        if request.draft:  # Lightning's motion modules in the UNet for this request only
            with self.draft.active(
                request.camera_motion, request.camera_motion_strength
            ) as pipeline:
                return self._generate(pipeline, request, progress)
        return self._generate(self.pipeline, request, progress)

    def _generate(
        self, pipeline: AnimateDiffPipeline, request: VideoRequest, progress: Progress
    ) -> np.ndarray:
        # 1. The text of each frame: the prompt, or the prompt with the schedule's segments. CLIP
        #    reads 77 tokens; say so when the rest is dropped.
        prompt = frame_prompts(request)
        if isinstance(prompt, dict):
            log_schedule(prompt, request.num_frames)
            for number, text in enumerate(prompt.values(), start=1):
                log_prompt_truncation(
                    pipeline.tokenizer, text, f"prompt_schedule segment {number} with the prompt"
                )
        else:
            log_prompt_truncation(pipeline.tokenizer, prompt, "prompt")
        log_prompt_truncation(pipeline.tokenizer, request.negative_prompt, "negative_prompt")

        # 2. Denoise: diffusers' loop, stopped before decoding so decoding can report progress;
        #    through FreeNoise's windows for a long clip or a schedule (never a draft's: refused by
        #    pipelines/inputs.py, since free_noise() works on the standard pipeline).
        with self.free_noise(request.num_frames) if uses_free_noise(request) else nullcontext():
            latents = pipeline(
                prompt=prompt,
                negative_prompt=request.negative_prompt or None,  # every frame, as one text
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

    @contextmanager
    def free_noise(self, num_frames: int) -> Iterator[None]:
        """FreeNoise, with split inference, on the shared pipeline for one request, and the pipeline
        exactly as it was afterwards, whatever happens (a cancel or an error included). Both
        replace modules of the UNet in place: FreeNoise swaps each motion-module transformer block
        for a FreeNoise one holding the same weights (built once, by `build_free_noise_blocks`),
        split inference wraps modules. Every module in place before is recorded here and put
        back, rather than undone through diffusers: `disable_free_noise` would build blocks
        anew, and in diffusers 0.42.1 fails on a UNet with no motion modules in its mid block
        (AnimateDiff v3's); split inference has no undo."""
        pipeline = self.pipeline
        window, stride = free_noise_windows(num_frames)
        modules_in_place = _module_slots(pipeline.unet)
        try:
            for parent, name, block in self.free_noise_blocks:
                setattr(parent, name, block)
            # On blocks that are FreeNoise's already, diffusers only sets the window and stride.
            pipeline.enable_free_noise(context_length=window, context_stride=stride)
            if SPLIT_INFERENCE is not None:
                _enable_split_inference(pipeline, **SPLIT_INFERENCE)
            yield
        finally:
            for parent, name, child in modules_in_place:
                setattr(parent, name, child)
            pipeline._free_noise_context_length = None  # how disable_free_noise turns it off

    def decode(self, latents: torch.Tensor, progress: Progress) -> np.ndarray:
        """AnimateDiff's latents, (batch, channels, frames, height, width), to frames."""
        pipeline = self.pipeline
        return decode_in_chunks(
            latents,
            lambda chunk: pipeline.decode_latents(chunk, decode_chunk_size=SD15_VAE_DECODE_FRAMES),
            pipeline.video_processor,
            progress,
            frames_axis=2,
            chunk_frames=SD15_VAE_DECODE_FRAMES,
        )


def build_free_noise_blocks(
    pipeline: AnimateDiffPipeline,
) -> list[tuple[torch.nn.Module, str, FreeNoiseTransformerBlock]]:
    """(parent, name, block): the FreeNoise transformer block for each of the motion modules'
    transformer blocks, as diffusers' `enable_free_noise` builds them, holding the very tensors of
    the blocks they stand in for (no second copy of the weights); the UNet is left as it was."""
    modules_in_place = _module_slots(pipeline.unet)
    try:
        pipeline.enable_free_noise()
        built = []
        for parent, name, child in modules_in_place:
            block = getattr(parent, name)
            if isinstance(block, FreeNoiseTransformerBlock) and block is not child:
                block.load_state_dict(child.state_dict(), strict=True, assign=True)
                built.append((parent, name, block))
        return built
    finally:
        for parent, name, child in modules_in_place:
            setattr(parent, name, child)
        pipeline._free_noise_context_length = None  # how disable_free_noise turns it off


def _module_slots(module: torch.nn.Module) -> list[tuple[torch.nn.Module, str, torch.nn.Module]]:
    """(parent, name, child) for every module under `module`."""
    return [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
    ]


def _enable_split_inference(
    pipeline: AnimateDiffPipeline, spatial_split_size: int, temporal_split_size: int
) -> None:
    """diffusers' `enable_free_noise_split_inference`, on the down and up blocks: the UNet's spatial
    layers take 16 frames at a time, its motion modules 256 pixel positions at a time, so what the
    UNet holds while denoising does not grow with the clip (README, "Long shots and film-rate
    playback", has the figures). Not on the mid block: AnimateDiff v3's has no motion modules,
    and diffusers 0.42.1 would wrap its resnets, which that block calls with positional arguments
    the wrapper cannot split (it fails). The mid block works at an eighth of the latent's size."""
    spatial, temporal = spatial_split_size, temporal_split_size
    for block in (*pipeline.unet.down_blocks, *pipeline.unet.up_blocks):
        pipeline._enable_split_inference_motion_modules_(block.motion_modules, spatial)
        if getattr(block, "attentions", None) is not None:
            pipeline._enable_split_inference_attentions_(block.attentions, temporal)
        pipeline._enable_split_inference_resnets_(block.resnets, temporal)
        for samplers in (getattr(block, "downsamplers", None), getattr(block, "upsamplers", None)):
            if samplers is not None:
                pipeline._enable_split_inference_samplers_(samplers, temporal)
