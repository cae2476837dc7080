"""Faults inside a prediction, injected into our own code in-process (torch, diffusers and Cog run
for real): each gives a clear failure, leaves no file behind, and the next prediction works."""

from __future__ import annotations

import glob
import os
import tempfile

import numpy as np
import pytest
import torch
from cog import CancelationException

import predict
from pipelines.progress import Progress

SMALL = dict(tier=2, prompt="a kite over a beach", negative_prompt="", num_frames=8, width=64, height=64,
             fps=8, num_inference_steps=3, guidance_scale=7.5, seed=7, output_format="mp4", image=None,
             motion_bucket_id=127, noise_aug_strength=0.02)


@pytest.fixture(scope="module")
def runner(tiny_weights_dir, tmp_path_factory):
    # Outputs go to a private temp dir, so other processes' files cannot blur "nothing left behind".
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEIGHTS_DIR", str(tiny_weights_dir))
        patch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("outputs")))
        model = predict.Runner()
        model.setup()
        yield model


def output_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "video-*")))


def frames_of(path) -> np.ndarray:
    from tests.video_facts import read_video

    return read_video(path).frames


def fail_on(stage: str, error: BaseException, after: int = 1):
    """A Progress.advance that raises `error` on the `after`-th call for `stage`."""
    real_advance = Progress.advance
    calls = []

    def advance(self, current_stage, units=1):
        if current_stage == stage:
            calls.append(1)
            if len(calls) == after:
                raise error
        real_advance(self, current_stage, units)

    return advance


def test_out_of_memory_names_the_request_and_what_to_lower(runner, monkeypatch):
    def out_of_memory(request, progress):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    before = output_dirs()
    monkeypatch.setattr(runner.tiers[2], "generate", out_of_memory)
    with pytest.raises(predict.GenerationError) as error:
        runner.run(**SMALL)
    assert str(error.value) == "out of GPU memory at 8 frames 64×64 (tier 2): lower num_frames or the size"
    assert isinstance(error.value.__cause__, torch.OutOfMemoryError)
    assert not output_dirs() - before  # nothing new left behind
    monkeypatch.undo()
    assert runner.run(**SMALL).exists()


TIER3 = dict(SMALL, tier=3, width=128, height=64, fps=6, guidance_scale=5.0)


def pipelines_of(runner):
    tier2, tier3 = runner.tiers[2], runner.tiers[3]
    return [tier2.pipeline, tier3.keyframe_pipeline, tier3.animation_pipeline]


@pytest.mark.parametrize(
    "inputs, stage, after",
    [(SMALL, "denoising", 2), (SMALL, "decoding", 1), (SMALL, "encoding", 3),
     (TIER3, "keyframe", 1), (TIER3, "animating", 2), (TIER3, "decoding", 1), (TIER3, "encoding", 5)],
    ids=["tier2-denoising", "tier2-decoding", "tier2-encoding",
         "tier3-keyframe", "tier3-animating", "tier3-decoding", "tier3-encoding"],
)
def test_cancel_in_any_stage_propagates_leaves_nothing_and_pipelines_unchanged(runner, monkeypatch, inputs, stage, after):
    reference = frames_of(runner.run(**inputs))
    schedulers = [dict(pipeline.scheduler.config) for pipeline in pipelines_of(runner)]
    before = output_dirs()

    monkeypatch.setattr(Progress, "advance", fail_on(stage, CancelationException(), after))
    with pytest.raises(CancelationException):  # never swallowed or translated
        runner.run(**inputs)
    monkeypatch.undo()

    assert not output_dirs() - before  # nothing new left behind
    for pipeline, scheduler in zip(pipelines_of(runner), schedulers):
        assert dict(pipeline.scheduler.config) == scheduler
        assert pipeline.unet.dtype == pipeline.vae.dtype == runner.device.dtype
    np.testing.assert_array_equal(frames_of(runner.run(**inputs)), reference)


def test_an_error_while_encoding_fails_cleanly(runner, monkeypatch):
    before = output_dirs()
    monkeypatch.setattr(Progress, "advance", fail_on("encoding", RuntimeError("disk full"), after=4))
    with pytest.raises(RuntimeError, match="disk full"):
        runner.run(**SMALL)
    monkeypatch.undo()
    assert not output_dirs() - before  # nothing new left behind
    assert runner.run(**SMALL).exists()


def test_healthcheck_on_cpu_is_healthy(runner):
    assert runner.healthcheck() is True
