"""What every tier is to its callers, and the one place that builds them all.

predict.py's setup() and bench/benchmark.py both obtain their tiers from `load_tiers` and use
them only through `Tier`, so what a prediction runs is what the benchmark measures, with the
models shared the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from transformers import CLIPTokenizer

from pipelines.common import Device
from pipelines.images import FrameCheck
from pipelines.inputs import TIERS, VideoRequest
from pipelines.levers import Levers, apply_levers, remove_levers
from pipelines.progress import Progress
from pipelines.tier2 import TextToVideo
from pipelines.tier3 import KeyframeToVideo
from pipelines.tier4 import WanTextImageToVideo
from weights import WEIGHT_SETS


@runtime_checkable
class Tier(Protocol):
    """A tier: its models loaded once, then any number of requests, one at a time."""

    def progress_units(self, request: VideoRequest) -> int:
        """Exactly the units `generate` reports to its `progress` for `request` (tests/test_tiers.py
        holds every tier to it)."""
        ...

    def generate(
        self, request: VideoRequest, progress: Progress, check_start_frame: FrameCheck | None = None
    ) -> np.ndarray:
        """The clip as float frames in [0, 1], num_frames × height × width × 3. A tier that animates
        a start frame hands it, and where it came from, to `check_start_frame` (the safety checker)
        before animating it; a check that raises stops the request there."""
        ...


def load_tiers(
    weights_dir: Path, device: Device, tiers=TIERS, levers: Levers | None = None
) -> dict[int, Tier]:
    """The tiers numbered `tiers` (every tier of `pipelines.inputs.TIERS` by default), by number,
    their models on `device`, with the speed levers applied (pipelines/levers.py; unset, their
    defaults)."""
    levers = levers or Levers()
    loaded: dict[int, Tier] = {}
    if 2 in tiers:
        loaded[2] = TextToVideo.load(weights_dir, device)
    if 3 in tiers:
        # Tier 2's CLIP ViT-L text encoder also serves SDXL when its weights are identical.
        clip_l = loaded[2].pipeline.text_encoder if 2 in loaded else None
        loaded[3] = KeyframeToVideo.load(weights_dir, device, clip_l=clip_l)
    if 4 in tiers:
        loaded[4] = WanTextImageToVideo.load(weights_dir, device)
    for number, tier in loaded.items():
        for target in lever_targets(number, tier):
            target.apply(levers)
    return loaded


@dataclass(frozen=True)
class LeverTarget:
    """One denoiser of a tier and the VAEs that decode its latents, with how the levers apply to
    them (pipelines/levers.py's apply_levers)."""

    denoiser: torch.nn.Module
    vaes: tuple[torch.nn.Module, ...]
    compile_mode: str
    fuse_denoiser: str | None = None  # why its q, k and v must stay apart; None: fuse them
    label: str = ""

    def apply(self, levers: Levers) -> None:
        apply_levers(
            levers,
            self.denoiser,
            self.vaes,
            compile_mode=self.compile_mode,
            fuse_denoiser=self.fuse_denoiser,
            label=self.label,
        )

    def remove(self) -> None:
        """Every lever but COMPILE taken off again (pipelines/levers.py's remove_levers)."""
        remove_levers(self.denoiser, self.vaes)


def lever_targets(number: int, tier: Tier) -> list[LeverTarget]:
    """What the levers reach in tier `number`: what load_tiers applies them to, and what the lever
    matrix (bench/lever_matrix.py) applies them to and removes again on one load."""
    if number == 2:
        animatediff = tier.pipeline
        return [
            LeverTarget(
                animatediff.unet,
                (animatediff.vae,),
                # No CUDA graphs: draft mode swaps motion modules and camera-move LoRAs in and out.
                compile_mode="max-autotune-no-cudagraphs",
                fuse_denoiser="draft mode swaps in motion modules and LoRAs that need q, k and v "
                "apart",
            )
        ]
    if number == 3:
        keyframe, animation = tier.keyframe_pipeline, tier.animation_pipeline
        # The modes of diffusers' published records: SDXL with max-autotune (its
        # tutorials/fast_diffusion.md), SVD with reduce-overhead (its SVD pipeline docs).
        return [
            LeverTarget(keyframe.unet, (keyframe.vae,), compile_mode="max-autotune"),
            LeverTarget(animation.unet, (animation.vae,), compile_mode="reduce-overhead"),
        ]
    if number == 4:
        # Both pipelines hold the same transformer and VAE, so levers applied once reach both. No
        # CUDA graphs: the image and text paths and the draft call the transformers at other shapes.
        text = tier.text_pipeline
        return [
            LeverTarget(text.transformer, (text.vae,), compile_mode="max-autotune-no-cudagraphs"),
            LeverTarget(
                tier.draft_transformer,
                (),
                compile_mode="max-autotune-no-cudagraphs",
                label="tier 4's draft",
            ),
        ]
    raise ValueError(f"no tier {number}; the tiers are {TIERS}")


def load_clip_tokenizer(weights_dir: Path) -> CLIPTokenizer:
    """SD 1.5's CLIP ViT-L tokenizer, which tiers 2 and 3 read prompts with: the prompt translator
    judges by its vocabulary what those models can read (tier 4's UMT5 reads more; one rule keeps
    the tiers consistent, docs/THAI.md)."""
    return CLIPTokenizer.from_pretrained(WEIGHT_SETS["sd15"].path(weights_dir) / "tokenizer")


def progress_total(tier: Tier, request: VideoRequest) -> int:
    """The units of a whole prediction: the tier's, then one per frame written to the video
    (interpolated frames included)."""
    return tier.progress_units(request) + request.output_frames
