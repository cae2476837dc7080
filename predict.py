"""The Cog model: one typed entry point for every tier.

Inputs are declared once in `pipelines/inputs.py`; this file turns them into Cog's signature,
checks a request, hands it to its tier and writes the video. Every model is loaded in `setup()`;
nothing in `run()` loads weights or rebuilds a model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path as LocalPath
from typing import Optional

import torch
from cog import BaseRunner, Input, Path

from pipelines.common import check_gpu, free_memory, pick_device, release_freed_heap
from pipelines.inputs import INPUTS, VideoRequest, resolve_request
from pipelines.progress import Progress
from pipelines.tier2 import TextToVideo
from pipelines.tier3 import KeyframeToVideo
from pipelines.video import to_uint8, write_video
from weights import (
    HF_TOKEN_ENV,
    LOCK_FILE,
    WEIGHTS_URL_ENV,
    fetch_missing,
    missing_files,
    require_weights,
    tiny_weights_info,
    verify_weights,
    weights_dir,
)


class GenerationError(RuntimeError):
    """A prediction that could not finish; the message says what to change."""


def _input(name: str):
    return Input(**INPUTS[name].cog_kwargs())


class Runner(BaseRunner):
    def setup(self) -> None:
        started = time.monotonic()
        # First: a MODEL_DTYPE that cannot be used fails here, before any weights are fetched.
        self.device = pick_device()
        directory = weights_dir()
        self.tiny_weights = tiny_weights_info(directory) is not None
        if self.tiny_weights:
            print(f"WARNING: {directory} holds TINY RANDOM test weights; videos will be noise.", flush=True)
        for tier in (2, 3):
            self._prepare_weights(directory, tier)
        text_to_video = TextToVideo.load(directory, self.device)
        self.tiers = {
            2: text_to_video,
            # Tier 2's CLIP ViT-L text encoder also serves SDXL when its weights are identical.
            3: KeyframeToVideo.load(directory, self.device, clip_l=text_to_video.pipeline.text_encoder),
        }
        self._previous_output: LocalPath | None = None
        print(
            f"Loaded tiers 2 and 3 from {directory} on {self.device.torch_device} ({self.device.dtype}) "
            f"in {time.monotonic() - started:.1f}s",
            flush=True,
        )

    @staticmethod
    def _prepare_weights(directory: LocalPath, tier: int) -> None:
        """Use what is present and verified; fetch what is missing (unless HF_HUB_OFFLINE=1)."""
        if missing_files(directory, tier) and os.environ.get("HF_HUB_OFFLINE") != "1":
            fetch_missing(directory, tier, base_url=os.environ.get(WEIGHTS_URL_ENV),
                          token=os.environ.get(HF_TOKEN_ENV))
        require_weights(directory, tier)
        hashed = verify_weights(directory, tier)
        if hashed is None:
            print(f"WARNING: no {LOCK_FILE} in {directory}: tier {tier} weights are not verified "
                  f"(pin them with `python scripts/lock_weights.py {directory}`).", flush=True)
        else:
            print(f"Tier {tier} weights match {LOCK_FILE} ({hashed} files hashed, others cached).", flush=True)

    def run(
        self,
        tier: int = _input("tier"),
        prompt: str = _input("prompt"),
        negative_prompt: str = _input("negative_prompt"),
        num_frames: Optional[int] = _input("num_frames"),
        width: Optional[int] = _input("width"),
        height: Optional[int] = _input("height"),
        fps: Optional[int] = _input("fps"),
        num_inference_steps: Optional[int] = _input("num_inference_steps"),
        guidance_scale: Optional[float] = _input("guidance_scale"),
        seed: Optional[int] = _input("seed"),
        output_format: str = _input("output_format"),
        image: Optional[Path] = _input("image"),
        motion_bucket_id: int = _input("motion_bucket_id"),
        noise_aug_strength: float = _input("noise_aug_strength"),
    ) -> Path:
        request = resolve_request(
            dict(
                tier=tier,
                prompt=prompt,
                negative_prompt=negative_prompt,
                num_frames=num_frames,
                width=width,
                height=height,
                fps=fps,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                seed=seed,
                output_format=output_format,
                image=image,
                motion_bucket_id=motion_bucket_id,
                noise_aug_strength=noise_aug_strength,
            )
        )
        self._remove_previous_output()
        self._log_request(request)

        output_dir = LocalPath(tempfile.mkdtemp(prefix="video-"))
        try:
            video = self._make_video(request, output_dir / f"video.{request.output_format}")
        except BaseException as error:
            # Failed or cancelled (Cog's CancelationException is a BaseException, re-raised
            # untouched): leave no file behind and give the memory back before the next request.
            shutil.rmtree(output_dir, ignore_errors=True)
            free_memory(self.device, error)
            raise
        finally:
            release_freed_heap()
        self._previous_output = output_dir
        return Path(video)

    def healthcheck(self) -> bool:
        """Cog's /health-check asks this: a broken GPU context reports UNHEALTHY, with CUDA's
        error, instead of failing every prediction. (Cog counts a raise as unhealthy and
        shows its message; a bare False would only say "returned False".)"""
        check_gpu(self.device)
        return True

    def _make_video(self, request: VideoRequest, path: LocalPath) -> LocalPath:
        pipeline = self.tiers[request.tier]
        progress = Progress(pipeline.progress_units(request) + request.num_frames)
        try:
            frames = to_uint8(pipeline.generate(request, progress))
        except torch.OutOfMemoryError as error:
            raise GenerationError(
                f"out of GPU memory at {request.num_frames} frames {request.width}×{request.height} "
                f"(tier {request.tier}): lower num_frames or the size"
            ) from error
        return write_video(
            frames,
            path,
            fps=request.fps,
            output_format=request.output_format,
            on_frame=lambda: progress.advance("encoding"),
        )

    def _log_request(self, request: VideoRequest) -> None:
        origin = "random" if request.seed_was_random else "given"
        print(f"Seed: {request.seed} ({origin}; pass seed={request.seed} to reproduce this video)", flush=True)
        print(
            f"Tier {request.tier}: {request.num_frames} frames at {request.width}×{request.height}, "
            f"{request.fps} fps, {request.num_inference_steps} steps, guidance {request.guidance_scale}",
            flush=True,
        )
        if request.tier == 3:
            start = "the caller's image" if request.image is not None else "an SDXL keyframe"
            print(
                f"Animating {start} with motion_bucket_id {request.motion_bucket_id}, "
                f"noise_aug_strength {request.noise_aug_strength}",
                flush=True,
            )
        if self.tiny_weights:
            print("WARNING: running on TINY RANDOM test weights; the video is noise.", flush=True)

    def _remove_previous_output(self) -> None:
        # Cog has sent the previous prediction's file by now; keep the disk from filling up.
        if self._previous_output is not None:
            shutil.rmtree(self._previous_output, ignore_errors=True)
            self._previous_output = None
