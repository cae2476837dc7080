"""The Stable Diffusion safety checker, on what a video shows.

Replicate's own image models run this checker (replicate/cog-sdxl, which lets API callers pass
`disable_safety_checker`); it is the one published with SD 1.5 (`safety_checker/`: CLIP ViT-L/14's
image encoder and 17 + 3 concept embeddings with thresholds; `feature_extractor/`). Before any
model animates it, tier 3's start frame (the SDXL keyframe or the caller's image) is checked; after
decoding, a sample of both tiers' frames is checked before encoding. A flagged clip fails with
`UnsafeContentError` and no video. `disable_safety_checker=true` skips both checks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from PIL import Image
from transformers import CLIPImageProcessor

from pipelines.common import Device
from weights import WEIGHT_SETS

# Frames of the output that are checked: every 4th from the first, and the last, so any 4 frames in
# a row hold a checked one: what is on screen for 4 frames (half a second at tier 2's 8 fps, 0.67 s
# at tier 3's 6) is seen. Both tiers denoise all frames together, tied by temporal attention, so a
# picture lasting one frame is unusual, though not impossible. That is 5 of tier 2's 16 frames and
# 7 of tier 3's 25, a third of the cost of every frame; docs/LANGUAGES_SAFETY.md has the
# figures (bench/safety_keyframe_flops.py).
FRAME_STRIDE = 4


class UnsafeContentError(RuntimeError):
    """The safety checker flagged the clip; no video is returned."""


def frames_to_check(num_frames: int) -> list[int]:
    """Every FRAME_STRIDE-th frame from the first, and the last frame."""
    indices = list(range(0, num_frames, FRAME_STRIDE))
    return indices if indices[-1] == num_frames - 1 else [*indices, num_frames - 1]


def covering_squares(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of the fewest squares, evenly spaced, that cover the frame.

    The checker's feature extractor resizes the short side to 224 and keeps the centre square: on a
    1024×576 frame that is only the middle 56 % of the width. Each square is checked instead (two
    for 16:9), so nothing at the edges of a wide or tall frame goes unchecked."""
    side, length = min(width, height), max(width, height)
    count = math.ceil(length / side)
    starts = [round(i * (length - side) / (count - 1)) for i in range(count)] if count > 1 else [0]
    if width >= height:
        return [(start, 0, start + side, side) for start in starts]
    return [(0, start, side, start + side) for start in starts]


class SafetyChecker:
    def __init__(
        self,
        checker: StableDiffusionSafetyChecker,
        feature_extractor: CLIPImageProcessor,
        device: Device,
    ):
        self.checker, self.feature_extractor, self.device = checker, feature_extractor, device

    @classmethod
    def load(cls, weights_dir: Path, device: Device) -> SafetyChecker:
        sd15 = WEIGHT_SETS["sd15"]
        checker = StableDiffusionSafetyChecker.from_pretrained(
            sd15.path(weights_dir),
            subfolder="safety_checker",
            variant=sd15.variant,
            use_safetensors=True,
            dtype=device.dtype,
        )
        feature_extractor = CLIPImageProcessor.from_pretrained(
            sd15.path(weights_dir), subfolder="feature_extractor"
        )
        return cls(checker.to(device.torch_device).eval(), feature_extractor, device)

    @torch.inference_mode()
    def flagged(self, images: list[Image.Image]) -> list[bool]:
        """Whether the checker flags each image (any of its covering squares)."""
        squares = [image.crop(box) for image in images for box in covering_squares(*image.size)]
        pixels = self.feature_extractor(images=squares, return_tensors="pt").pixel_values
        pixels = pixels.to(self.device.torch_device, dtype=self.device.dtype)
        # forward_onnx is diffusers' batched form of the same test (each concept's cosine similarity
        # against its threshold); unlike forward it does not log that it blacked images out, which
        # does not apply here. The second argument is what it would black out: nothing we keep.
        _, flags = self.checker.forward_onnx(
            pixels, torch.zeros(len(squares), device=pixels.device)
        )
        per_square = flags.tolist()
        flagged, at = [], 0
        for image in images:
            count = len(covering_squares(*image.size))
            flagged.append(any(per_square[at : at + count]))
            at += count
        return flagged

    def check_start_frame(self, image: Image.Image, source: str) -> None:
        """Tier 3's start frame, before SVD animates it. `source` names it for the message."""
        if self.flagged([image])[0]:
            raise UnsafeContentError(
                f"the safety checker flagged the start frame ({source}) as possibly not safe for "
                f"work; no video was made. Try another prompt, image or seed (API callers can "
                f"turn the check off with disable_safety_checker=true)"
            )
        print(f"Safety checker: the start frame ({source}) passed.", flush=True)

    def check_frames(self, frames: np.ndarray) -> None:
        """A sample of the decoded video's frames (uint8, frames × height × width × 3)."""
        indices = frames_to_check(len(frames))
        flags = self.flagged([Image.fromarray(frames[index]) for index in indices])
        hits = [index for index, flag in zip(indices, flags) if flag]
        if hits:
            shown = ", ".join(str(index + 1) for index in hits)
            raise UnsafeContentError(
                f"the safety checker flagged {'frame' if len(hits) == 1 else 'frames'} {shown} "
                f"of {len(frames)} as possibly not safe for work; "
                f"no video is returned. Try another prompt or seed (API callers can turn the "
                f"check off with disable_safety_checker=true)"
            )
        print(
            f"Safety checker: frames {', '.join(str(i + 1) for i in indices)} "
            f"of {len(frames)} passed.",
            flush=True,
        )
