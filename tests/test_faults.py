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
def runner(tiny_weights_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEIGHTS_DIR", str(tiny_weights_dir))
        model = predict.Runner()
        model.setup()
    return model


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


@pytest.mark.parametrize("stage, after", [("denoising", 2), ("decoding", 1), ("encoding", 3)])
def test_cancel_in_any_stage_propagates_leaves_nothing_and_pipeline_unchanged(runner, monkeypatch, stage, after):
    reference = frames_of(runner.run(**SMALL))
    scheduler_config = dict(runner.tiers[2].pipeline.scheduler.config)
    before = output_dirs()

    monkeypatch.setattr(Progress, "advance", fail_on(stage, CancelationException(), after))
    with pytest.raises(CancelationException):  # never swallowed or translated
        runner.run(**SMALL)
    monkeypatch.undo()

    assert not output_dirs() - before  # nothing new left behind
    assert dict(runner.tiers[2].pipeline.scheduler.config) == scheduler_config
    assert runner.tiers[2].pipeline.unet.dtype == runner.device.dtype
    np.testing.assert_array_equal(frames_of(runner.run(**SMALL)), reference)


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
