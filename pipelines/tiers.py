"""What every tier is to its callers, and the one place that builds them all.

predict.py's setup() and scripts/benchmark.py both obtain their tiers from `load_tiers` and use
them only through `Tier`, so what a prediction runs is what the benchmark measures, with the
models shared the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from transformers import CLIPTokenizer

from pipelines.common import Device
from pipelines.images import FrameCheck
from pipelines.inputs import VideoRequest
from pipelines.progress import Progress
from pipelines.tier2 import TextToVideo
from pipelines.tier3 import KeyframeToVideo


@runtime_checkable
class Tier(Protocol):
    """A tier: its models loaded once, then any number of requests, one at a time."""

    @property
    def clip_tokenizer(self) -> CLIPTokenizer:
        """The CLIP ViT-L tokenizer the tier reads prompts with (the same vocabulary in every tier:
        the prompt translator judges by it what the models can read)."""
        ...

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


def load_tiers(weights_dir: Path, device: Device) -> dict[int, Tier]:
    """Every tier of `pipelines.inputs.TIERS`, by number, its models on `device`."""
    text_to_video = TextToVideo.load(weights_dir, device)
    return {
        2: text_to_video,
        # Tier 2's CLIP ViT-L text encoder also serves SDXL when its weights are identical.
        3: KeyframeToVideo.load(weights_dir, device, clip_l=text_to_video.pipeline.text_encoder),
    }


def progress_total(tier: Tier, request: VideoRequest) -> int:
    """The units of a whole prediction: the tier's, then one per frame written to the video
    (interpolated frames included)."""
    return tier.progress_units(request) + request.output_frames
