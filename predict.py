"""The Cog model: one typed entry point for every tier.

Inputs are declared once, in `run()`'s signature, where `cog build` reads them; `pipelines/inputs.py`
checks a request against the same limits (and the per-tier ones a schema cannot express), this file
hands it to its tier and writes the video. Every model is loaded in `setup()`;
nothing in `run()` loads weights or rebuilds a model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import closing
from pathlib import Path as LocalPath
from typing import Optional

import torch
from cog import BaseRunner, Input, Path

from pipelines.common import (
    check_gpu,
    free_memory,
    pick_device,
    release_freed_heap,
    require_usable_gpu,
)
from pipelines.inputs import TIERS, InputError, VideoRequest, resolve_request
from pipelines.interpolation import interpolate
from pipelines.levers import CompileCache, Levers
from pipelines.progress import Progress
from pipelines.prompts import PromptTranslator
from pipelines.safety import SafetyChecker
from pipelines.tier4 import wan_dtype
from pipelines.tiers import Tier, load_clip_tokenizer, load_tiers, progress_total
from pipelines.video import to_uint8, write_video
from weights import missing_files, require_weights, tiny_weights_info, weights_dir
from weights_fetch import HF_TOKEN_ENV, WEIGHTS_URL_ENV, fetch_missing
from weights_lock import LOCK_FILE, verify_weights

# Which tiers a container loads: comma-separated numbers (e.g. "4"); unset or empty, every tier.
LOADED_TIERS_ENV = "LOADED_TIERS"


def loaded_tiers() -> tuple[int, ...]:
    """The tiers named by $LOADED_TIERS, checked against TIERS; every tier when it is unset."""
    configured = os.environ.get(LOADED_TIERS_ENV, "").strip()
    if not configured:
        return TIERS
    try:
        chosen = {int(part) for part in configured.split(",") if part.strip()}
    except ValueError:
        chosen = set()
    if not chosen or not chosen <= set(TIERS):
        raise ValueError(
            f"{LOADED_TIERS_ENV} must be comma-separated tier numbers from "
            f"{', '.join(map(str, TIERS))} (e.g. {LOADED_TIERS_ENV}=4); got {configured!r}"
        )
    return tuple(sorted(chosen))


class GenerationError(RuntimeError):
    """A prediction that could not finish; the message says what to change."""


class Runner(BaseRunner):
    def setup(self) -> None:
        started = time.monotonic()
        # First: a GPU torch cannot use, or a MODEL_DTYPE that cannot be used, fails here, before
        # any weights are fetched.
        require_usable_gpu()
        self.device = pick_device()
        # The speed levers (docs/SPEED.md): a bad value fails here too, naming the variable.
        levers = Levers.from_environment()
        directory = weights_dir()
        self.tiny_weights = tiny_weights_info(directory) is not None
        if self.tiny_weights:
            print(
                f"WARNING: {directory} holds TINY RANDOM test weights; videos will be noise.",
                flush=True,
            )
        self.loaded_tiers = loaded_tiers()
        # Tier 2's sets hold the prompt translator and the safety checker every tier uses, so
        # they are prepared whichever tiers are loaded.
        for tier in sorted({2, *self.loaded_tiers}):
            self._prepare_weights(directory, tier)
        # Kernels compiled by an earlier boot with the same torch, GPU and levers are loaded before
        # anything compiles; what a prediction compiles anew is written after it (run()).
        self.compile_cache = CompileCache.for_weights(directory, levers, self.device.torch_device)
        if levers.compile:
            self.compile_cache.load()
        self.tiers: dict[int, Tier] = load_tiers(
            directory, self.device, self.loaded_tiers, levers=levers
        )
        # Shared by every tier: Thai prompts to English (judged by the vocabulary of the CLIP
        # tokenizer tiers 2 and 3 read with: tier 2's is used), and the safety checker on what the
        # video shows.
        clip_tokenizer = (
            self.tiers[2].clip_tokenizer if 2 in self.tiers else load_clip_tokenizer(directory)
        )
        self.translator = PromptTranslator.load(directory, self.device, clip_tokenizer)
        self.safety_checker = SafetyChecker.load(directory, self.device)
        self._previous_output: LocalPath | None = None
        print(
            f"Loaded tiers {' and '.join(map(str, self.loaded_tiers))} from {directory} on "
            f"{self.device.torch_device} ({self.device.dtype}"
            + (f"; tier 4 in {wan_dtype(self.device)}" if 4 in self.tiers else "")
            + f") in {time.monotonic() - started:.1f}s",
            flush=True,
        )

    @staticmethod
    def _prepare_weights(directory: LocalPath, tier: int) -> None:
        """Use what is present and verified; fetch what is missing (unless HF_HUB_OFFLINE=1)."""
        if missing_files(directory, tier) and os.environ.get("HF_HUB_OFFLINE") != "1":
            fetch_missing(
                directory,
                tier,
                base_url=os.environ.get(WEIGHTS_URL_ENV),
                token=os.environ.get(HF_TOKEN_ENV),
            )
        require_weights(directory, tier)
        hashed = verify_weights(directory, tier)
        if hashed is None:
            print(
                f"WARNING: no {LOCK_FILE} in {directory}: tier {tier} weights are not verified "
                f"(pin them with `python -m scripts.lock_weights {directory}`).",
                flush=True,
            )
        else:
            print(
                f"Tier {tier} weights match {LOCK_FILE} ({hashed} files hashed, others cached).",
                flush=True,
            )

    # The public interface, declared once. `cog build` reads these `Input(...)`s without importing
    # this file (a static parser: every value must be a literal written here; see
    # scripts/cog_schema.py for its rules, enforced by tests/test_cog_schema.py). An input left out
    # as None takes its tier's default; pipelines/inputs.py holds the per-tier defaults and limits
    # and checks every value, since a server without the schema passes anything through
    # (tests/test_inputs.py keeps the two in agreement).
    def run(
        self,
        tier: int = Input(
            description="2: AnimateDiff v3 text-to-video (512×512, 16 frames). 3: an SDXL keyframe from the prompt, or your image, animated by Stable Video Diffusion 1.1 (1024×576, 25 frames). 4: Wan 2.2 TI2V-5B, text or your image to video (1280×704, 121 frames at 24 fps).",
            default=2,
            choices=[2, 3, 4],
        ),
        prompt: str = Input(
            description="What the clip shows. Required for tier 2, and for tiers 3 and 4 without an image. CLIP (tiers 2 and 3) reads the first 77 tokens, UMT5 (tier 4) the first 512; the logs say when a prompt was cut.",
            default="",
            max_length=4000,
        ),
        negative_prompt: str = Input(
            description="What the clip should not show (tiers 2 and 4, and tier 3's keyframe).",
            default="",
            max_length=4000,
        ),
        num_frames: Optional[int] = Input(
            description="Frames in the video. Tier 2: 8–96, default 16. Tier 3: 8–25, default 25. Tier 4: 9–121, default 121. Tier 4 takes 4k+1 frames (9, 13, … 117, 121). Tier 2 makes clips longer than 32 frames in overlapping 16-frame windows (FreeNoise).",
            default=None,
            ge=8,
            le=121,
        ),
        width: Optional[int] = Input(
            description="Width in pixels, a multiple of 8. Tier 2: 64–1024, default 512. Tier 3: 64–1024, default 1024. Tier 4: 64–1280, default 1280. Tier 4 takes multiples of 32 and width × height at most 1280×704 (portrait 704×1280 too).",
            default=None,
            ge=64,
            le=1280,
        ),
        height: Optional[int] = Input(
            description="Height in pixels, a multiple of 8. Tier 2: 64–1024, default 512. Tier 3: 64–1024, default 576. Tier 4: 64–1280, default 704. Tier 4 takes multiples of 32 and width × height at most 1280×704.",
            default=None,
            ge=64,
            le=1280,
        ),
        fps: Optional[int] = Input(
            description="Frames per second of the video. Tier 2: default 8. Tier 3: default 6 (SVD is also conditioned on it). Tier 4: default 24.",
            default=None,
            ge=1,
            le=30,
        ),
        num_inference_steps: Optional[int] = Input(
            description="Denoising steps per model (tier 3: for the keyframe and for the animation each). Tier 2: default 25. Tier 3: default 25. Tier 4: default 50.",
            default=None,
            ge=1,
            le=100,
        ),
        guidance_scale: Optional[float] = Input(
            description="Classifier-free guidance of the text-conditioned model: AnimateDiff in tier 2, the SDXL keyframe in tier 3, Wan in tier 4. 1 turns guidance off. Tier 2: default 7.5. Tier 3: default 5.0. Tier 4: default 5.0.",
            default=None,
            ge=1.0,
            le=20.0,
        ),
        seed: Optional[int] = Input(
            description="Random seed. Leave empty for a random one; the logs print it so the clip can be reproduced.",
            default=None,
            ge=0,
            le=4294967295,
        ),
        output_format: str = Input(
            description="Video container: mp4 (H.264, plays in every browser), webm (VP9) or gif.",
            default="mp4",
            choices=["mp4", "gif", "webm"],
        ),
        image: Optional[Path] = Input(
            description="Tiers 3 and 4: the first frame to animate (PNG, JPEG, WebP...; through the API an http(s) URL or a data URI). With it tier 3 renders no keyframe and tier 4 makes image-to-video; the prompt may be empty. It is scaled to cover width×height and the centre is cropped, so another aspect ratio loses its edges and is never stretched.",
            default=None,
        ),
        motion_bucket_id: int = Input(
            description="Tier 3: how much SVD moves the scene (SVD 1.1 was tuned at 127). Other tiers leave it at 127.",
            default=127,
            ge=1,
            le=255,
        ),
        noise_aug_strength: float = Input(
            description="Tier 3: noise added to the start frame before animating; more lets SVD depart further from it. Tier 4 leaves it at 0.02.",
            default=0.02,
            ge=0.0,
            le=1.0,
        ),
        draft: bool = Input(
            description="Tier 2: a quick draft of the same shot for about an eighth of the compute (AnimateDiff-Lightning, 4 steps, no guidance), up to 32 frames and without prompt_schedule. Tier 4: FastWan 2.2 (3 steps, no guidance, about a fifteenth of the compute). num_inference_steps and guidance_scale are ignored; every other input works as usual.",
            default=False,
        ),
        camera_motion: str = Input(
            description="Camera move for a tier 2 draft (draft=true): AnimateDiff's motion LoRA for that move. Other tiers and modes refuse anything but none.",
            default="none",
            choices=[
                "none",
                "zoom_in",
                "zoom_out",
                "pan_left",
                "pan_right",
                "tilt_up",
                "tilt_down",
                "roll_clockwise",
                "roll_anticlockwise",
            ],
        ),
        camera_motion_strength: float = Input(
            description="How strongly the camera move is applied; 0.7–0.8 is what AnimateDiff-Lightning recommends, above 1 is exaggerated.",
            default=0.75,
            ge=0.0,
            le=1.5,
        ),
        prompt_schedule: str = Input(
            description="Tier 2: what happens when, as 'frame: text' segments separated by |, e.g. '0: he opens the door | 24: he steps inside | 48: he sits down'. Each text is added to the prompt from its frame on and blends into the next; frames start at 0, increase and stay below num_frames; at most 16 segments. Empty: the prompt alone.",
            default="",
            max_length=4000,
        ),
        interpolate_to_fps: Optional[int] = Input(
            description="Play the video at this rate for the same duration: every generated frame is kept and ffmpeg's motion-compensated interpolation makes the frames between. A whole multiple of fps, e.g. 24 with fps 8 or 6; for gif it must also divide 100. Empty: play at fps.",
            default=None,
            ge=1,
            le=60,
        ),
        translate_prompt: bool = Input(
            description="Translate the Thai in prompt and negative_prompt to English before the model reads them; other parts are kept as written and the logs show the text used. Text in a script the model cannot read fails. false: the text goes to the model exactly as written, unchecked.",
            default=True,
        ),
        disable_safety_checker: bool = Input(
            description="Skip the Stable Diffusion safety checker, which otherwise checks the start frame of tiers 3 and 4 and a sample of every video's frames, and refuses a flagged clip with no output.",
            default=False,
        ),
    ) -> Path:
        # Every input by name, as sent: at the first statement, locals() holds just the parameters.
        inputs = dict(locals())
        del inputs["self"]
        request = resolve_request(inputs)
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
        if request.tier not in self.tiers:
            raise InputError(
                f"tier {request.tier} is not loaded in this container (LOADED_TIERS="
                f"{','.join(map(str, self.loaded_tiers))}); use one of the loaded tiers: "
                f"{', '.join(map(str, self.loaded_tiers))}"
            )
        try:
            return self._render(request, path)
        except torch.OutOfMemoryError as error:
            # Wherever it struck (the translator, a tier, the safety checker, playback, encoding):
            # one failure that names the request's size; run() frees the memory for the next one.
            raise GenerationError(
                f"out of GPU memory at {request.num_frames} frames {request.width}×{request.height} "
                f"(tier {request.tier}): lower num_frames or the size"
            ) from error

    def _render(self, request: VideoRequest, path: LocalPath) -> LocalPath:
        # The text the models read: English, with Thai parts translated (or a refusal).
        request = self.translator.prepare(request)
        tier = self.tiers[request.tier]
        progress = Progress(progress_total(tier, request))
        checking = not request.disable_safety_checker
        if not checking:
            print("Safety checker: off (disable_safety_checker=true).", flush=True)
        # A start frame (tiers 3 and 4) is checked before it is animated.
        check_start_frame = self.safety_checker.check_start_frame if checking else None
        frames = to_uint8(tier.generate(request, progress, check_start_frame))
        self.compile_cache.save_new()
        if checking:
            self.safety_checker.check_frames(frames)  # before anything is encoded or interpolated
        # Film-rate playback: the frames between are made as the encoder takes them (one progress
        # step per frame written, named for the slower of the two), never all held at once.
        stage = "interpolating" if request.output_frames > request.num_frames else "encoding"
        with closing(interpolate(frames, request.fps, request.playback_fps)) as played_frames:
            return write_video(
                played_frames,
                path,
                fps=request.playback_fps,
                output_format=request.output_format,
                on_frame=lambda: progress.advance(stage),
            )

    def _log_request(self, request: VideoRequest) -> None:
        origin = "random" if request.seed_was_random else "given"
        print(
            f"Seed: {request.seed} ({origin}; pass seed={request.seed} to reproduce this video)",
            flush=True,
        )
        print(
            f"Tier {request.tier}: {request.num_frames} frames at {request.width}×{request.height}, "
            f"{request.fps} fps, {request.num_inference_steps} steps, guidance {request.guidance_scale}",
            flush=True,
        )
        if request.tier == 4:
            print(
                "Wan 2.2 TI2V-5B: "
                + ("image to video from the caller's image" if request.image else "text to video"),
                flush=True,
            )
        if request.tier == 3:
            start = "the caller's image" if request.image is not None else "an SDXL keyframe"
            print(
                f"Animating {start} with motion_bucket_id {request.motion_bucket_id}, "
                f"noise_aug_strength {request.noise_aug_strength}",
                flush=True,
            )
        if request.draft:
            camera = (
                "no camera move"
                if request.camera_motion == "none"
                else (
                    f"camera {request.camera_motion} at strength {request.camera_motion_strength}"
                )
            )
            ignored = ", ".join(
                f"{name}={value}" for name, value in request.ignored_by_draft.items()
            )
            print(
                f"Draft ({'FastWan 2.2, DMD' if request.tier == 4 else 'AnimateDiff-Lightning'}): {request.num_inference_steps} steps, guidance "
                f"{request.guidance_scale}, {camera}; draft ignores num_inference_steps and guidance_scale"
                + (f" (sent: {ignored})" if ignored else ""),
                flush=True,
            )
        if request.output_frames > request.num_frames:
            print(
                f"Playing at {request.playback_fps} fps: {request.playback_fps // request.fps - 1} frames made "
                f"between each two generated ones by ffmpeg's minterpolate, {request.output_frames} frames "
                f"in all ({request.num_frames / request.fps:g} s, as at {request.fps} fps)",
                flush=True,
            )
        if self.tiny_weights:
            print("WARNING: running on TINY RANDOM test weights; the video is noise.", flush=True)

    def _remove_previous_output(self) -> None:
        # Cog has sent the previous prediction's file by now; keep the disk from filling up.
        if self._previous_output is not None:
            shutil.rmtree(self._previous_output, ignore_errors=True)
            self._previous_output = None
