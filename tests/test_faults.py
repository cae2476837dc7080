"""Faults inside a prediction, injected into our own code in-process (torch, diffusers and Cog run
for real): each gives a clear failure, leaves no file behind, and the next prediction works."""

from __future__ import annotations

import gc
import glob
import json
import os
import subprocess
import tempfile

import numpy as np
import pytest
import torch
from cog import CancelationException

import predict
from pipelines.common import Device
from pipelines.progress import Progress
from pipelines.prompts import PromptTranslator
from pipelines.safety import SafetyChecker

# Run and counted by `python -m bench.reliability` (bench/reports/RELIABILITY.md).
pytestmark = pytest.mark.reliability

SMALL = dict(
    tier=2,
    prompt="a kite over a beach",
    negative_prompt="",
    num_frames=8,
    width=64,
    height=64,
    fps=8,
    num_inference_steps=3,
    guidance_scale=7.5,
    seed=7,
    output_format="mp4",
    image=None,
    motion_bucket_id=127,
    noise_aug_strength=0.02,
    draft=False,
    camera_motion="none",
    camera_motion_strength=0.75,
    prompt_schedule="",
    interpolate_to_fps=None,
    translate_prompt=True,
    disable_safety_checker=False,
)


@pytest.fixture(scope="module")
def runner(tiny_weights_dir, tmp_path_factory):
    # Outputs go to a private temp dir, so other processes' files cannot blur "nothing left behind".
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEIGHTS_DIR", str(tiny_weights_dir))
        patch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("outputs")))
        model = predict.Runner()
        model.setup()
        # What setup made lives as long as the runner: set aside from the collector, so that each
        # live_tensors() scans only what came after (a run's leftovers), not all of torch's and
        # the models' objects again (half a second a call, twice a case).
        gc.collect()
        gc.freeze()
        try:
            yield model
        finally:
            gc.unfreeze()


def output_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "video-*")))


def running_ffmpeg() -> list[str]:
    """ffmpeg processes this process started that still run (an exited one not yet reaped is
    fine)."""
    rows = subprocess.run(
        ["ps", "-o", "stat=,comm=", "--ppid", str(os.getpid())], capture_output=True, text=True
    ).stdout
    return [
        row for row in rows.splitlines() if "ffmpeg" in row and not row.lstrip().startswith("Z")
    ]


def frames_of(path) -> np.ndarray:
    from tests.support.video_facts import read_video

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


TIER3 = dict(SMALL, tier=3, width=128, height=64, fps=6, guidance_scale=5.0)
# A tier-2 draft with a camera move: a fault must also leave v3's motion modules back in the UNet
# and the LoRA out of action (state_of checks both).
DRAFT = dict(SMALL, draft=True, camera_motion="zoom_in")
# A shot through FreeNoise, as a long one goes (a schedule turns it on at any length, and 20 frames,
# two decode chunks, keep it cheap), played at twice its rate: the frames between are made while
# the video is written, a stage of its own ("interpolating").
LONG = dict(
    SMALL,
    num_frames=20,
    num_inference_steps=1,
    prompt_schedule="0: a kite rises | 12: it falls",
    interpolate_to_fps=16,
)
# Every stage of both tiers, with the progress update on which the fault strikes (mid-stage where
# the stage has several).
STAGES = [
    (SMALL, "denoising", 2),
    (SMALL, "decoding", 1),
    (SMALL, "encoding", 3),
    (TIER3, "keyframe", 1),
    (TIER3, "animating", 2),
    (TIER3, "decoding", 1),
    (TIER3, "encoding", 5),
    (DRAFT, "denoising", 2),
    (DRAFT, "decoding", 1),
    (LONG, "denoising", 1),
    (LONG, "decoding", 2),
    (LONG, "interpolating", 7),
]
STAGE_IDS = [
    "tier2-denoising",
    "tier2-decoding",
    "tier2-encoding",
    "tier3-keyframe",
    "tier3-animating",
    "tier3-decoding",
    "tier3-encoding",
    "tier2-draft-denoising",
    "tier2-draft-decoding",
    "tier2-free-noise-denoising",
    "tier2-free-noise-decoding",
    "tier2-interpolating",
]


def pipelines_of(runner):
    tier2, tier3 = runner.tiers[2], runner.tiers[3]
    return [tier2.pipeline, tier3.keyframe_pipeline, tier3.animation_pipeline]


def live_tensors() -> tuple[int, int, int]:
    """How many tensor storages Python can still reach and their bytes, and on a GPU the bytes
    allocated there: what a failed prediction would go on holding. (Counts, not addresses: the
    schedulers replace their own small tensors at each run.) Only objects made since the runner's
    setup are scanned: the collector's view once `runner` froze setup's (gc.freeze)."""
    gc.collect()
    storages = {}
    for thing in gc.get_objects():
        if isinstance(thing, torch.Tensor) and thing.device.type != "meta":
            storage = thing.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    gpu = torch.cuda.memory_allocated() if torch.cuda.is_available() else 0
    return len(storages), sum(storages.values()), gpu


def state_of(runner) -> list:
    """What a prediction must leave as it found it: each pipeline's scheduler, dtypes and eval
    mode, torch's grad and inference modes (entered by the pipelines' decorators), the draft's
    motion modules and LoRAs, tier 2's UNet as it was before FreeNoise (the very same modules, and
    FreeNoise off), and the translator's and the safety checker's modes."""
    tier2 = runner.tiers[2].pipeline
    translator, checker = runner.translator.model, runner.safety_checker.checker
    return (
        [
            torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(),
            draft_state(runner),
            tier2.free_noise_enabled,
            [id(module) for module in tier2.unet.modules()],
        ]
        + [
            (
                dict(pipeline.scheduler.config),
                pipeline.unet.dtype,
                pipeline.vae.dtype,
                pipeline.unet.training,
                pipeline.vae.training,
            )
            for pipeline in pipelines_of(runner)
        ]
        + [
            (translator.dtype, translator.training, translator.generation_config.to_dict()),
            (checker.dtype, checker.training),
        ]
    )


def fail_in(method, error: BaseException):
    """Our own step `method` (the translation, the safety check) raising `error` once it ran."""

    def failing(self, *args, **kwargs):
        method(self, *args, **kwargs)
        raise error

    return failing


# Our own steps outside the progress bar: (class, method, inputs).
OWN_STEPS = {
    "translating": (
        PromptTranslator,
        "translate",
        dict(SMALL, prompt="ว่าวเหนือชายหาด, golden hour"),
    ),
    "tier2-safety-check": (SafetyChecker, "flagged", SMALL),
    "tier3-start-frame-check": (
        SafetyChecker,
        "check_start_frame",
        dict(SMALL, tier=3, width=128, height=64, fps=6, guidance_scale=5.0),
    ),
}


def draft_state(runner) -> tuple[bool, int, bool]:
    """Whether v3's motion modules are the ones in the UNet, how many LoRA-wrapped layers the
    Lightning modules hold, and whether every one of them is switched off."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    tier2 = runner.tiers[2]
    lightning = tier2.draft.lightning
    layers = [
        module
        for part in (*lightning.down, *lightning.up, lightning.mid_block)
        for module in part.modules()
        if isinstance(module, BaseTunerLayer)
    ]
    return (
        tier2.draft.standard.is_installed_in(tier2.pipeline.unet),
        len(layers),
        all(layer.disable_adapters for layer in layers),
    )


# Per runner, its last clean run: the request, the output folders it left and its frames. A run
# leaves state that depends on its request (the schedulers' small tensors), so a fault is compared
# with a clean run of the same request just before it: the last test's closing run where that was
# one (nothing ran since: the same single output folder), a fresh run otherwise.
_LAST_CLEAN_RUN: dict[int, tuple[str, set[str], np.ndarray]] = {}


def reference_frames(runner, inputs: dict) -> np.ndarray:
    """The frames of a clean run of `inputs` on `runner`, the run just before this call."""
    key = json.dumps(inputs, sort_keys=True)
    last = _LAST_CLEAN_RUN.get(id(runner))
    if last is None or last[0] != key or last[1] != output_dirs():
        frames = frames_of(runner.run(**inputs))
        _LAST_CLEAN_RUN[id(runner)] = (key, output_dirs(), frames)
    return _LAST_CLEAN_RUN[id(runner)][2]


def fails_cleanly(
    runner, inputs, fault: BaseException, stage: str, after: int, expected: type
) -> BaseException:
    """Run `inputs` with `fault` raised at `stage` (a progress stage, or one of OWN_STEPS), then
    check what the failure left: no new file, the pipelines as they were, and, while the error is
    still held (as Cog holds it to report it), no tensor of the failed run alive. Returns the error
    that reached the caller."""
    reference = reference_frames(runner, inputs)
    # One output folder, the last run's: each run deletes the one before it (already sent).
    assert len(output_dirs()) == 1
    state, before = state_of(runner), live_tensors()

    with pytest.MonkeyPatch.context() as patch:
        if stage in OWN_STEPS:
            owner, name, _ = OWN_STEPS[stage]
            patch.setattr(owner, name, fail_in(getattr(owner, name), fault))
        else:
            patch.setattr(Progress, "advance", fail_on(stage, fault, after))
        with pytest.raises(expected) as raised:
            runner.run(**inputs)

    assert live_tensors() == before  # the error held, its run's tensors already freed
    # Nothing left behind: not the failed run's folder, nor the reference's, which the failed run
    # deleted on starting, as every run that gets past the input checks does.
    assert not output_dirs()
    assert not running_ffmpeg()  # an encoder or interpolator cut off is ended, not left running
    assert state_of(runner) == state
    error = raised.value
    del raised
    np.testing.assert_array_equal(frames_of(runner.run(**inputs)), reference)  # the next one works
    _LAST_CLEAN_RUN[id(runner)] = (json.dumps(inputs, sort_keys=True), output_dirs(), reference)
    return error


@pytest.mark.parametrize("inputs, stage, after", STAGES, ids=STAGE_IDS)
def test_cancel_in_any_stage_propagates_leaves_nothing_and_pipelines_unchanged(
    runner, inputs, stage, after
):
    # Cog's CancelationException comes back as it went in: never swallowed or translated.
    cancel = CancelationException()
    assert fails_cleanly(runner, inputs, cancel, stage, after, CancelationException) is cancel


# An error takes a cancel's way out of run(), which every stage above shows, and out-of-memory (a
# RuntimeError, below) shows an error's own handling in every stage. What is left: that any other
# error is passed on unchanged, in the stages without a GPU and in one with.
ERROR_STAGES = [
    (case, case_id)
    for case, case_id in zip(STAGES, STAGE_IDS)
    if case[1] in ("encoding", "interpolating") or case_id == "tier2-denoising"
]


@pytest.mark.parametrize(
    "inputs, stage, after",
    [case for case, _ in ERROR_STAGES],
    ids=[case_id for _, case_id in ERROR_STAGES],
)
def test_an_error_in_any_stage_fails_cleanly(runner, inputs, stage, after):
    error = fails_cleanly(runner, inputs, RuntimeError("disk full"), stage, after, RuntimeError)
    assert str(error) == "disk full"


@pytest.mark.parametrize("step", sorted(OWN_STEPS))
def test_a_cancel_in_the_translation_or_the_safety_check_fails_cleanly(runner, step):
    # (An error takes the same path out of run() as a cancel; the stages above show both.)
    cancel = CancelationException()
    assert (
        fails_cleanly(runner, OWN_STEPS[step][2], cancel, step, 1, CancelationException) is cancel
    )


# Every stage of both tiers, and our own steps outside the progress bar (the translator and the
# safety checker run on the GPU too): out of memory anywhere is the same failure.
OUT_OF_MEMORY_CASES = [*STAGES, *((inputs, step, 1) for step, (_, _, inputs) in OWN_STEPS.items())]


@pytest.mark.parametrize("inputs, stage, after", OUT_OF_MEMORY_CASES, ids=[*STAGE_IDS, *OWN_STEPS])
def test_out_of_memory_in_any_stage_names_the_request_and_what_to_lower(
    runner, inputs, stage, after
):
    out_of_memory = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    error = fails_cleanly(runner, inputs, out_of_memory, stage, after, predict.GenerationError)
    size = (
        f"{inputs['num_frames']} frames {inputs['width']}×{inputs['height']} "
        f"(tier {inputs['tier']})"
    )
    assert str(error) == f"out of GPU memory at {size}: lower num_frames or the size"
    assert error.__cause__ is out_of_memory


def test_healthcheck_probes_the_device_the_predictions_run_on(runner):
    """Healthy on the runner's own device (on a GPU the probe kernel runs; on a CPU there is no
    GPU context to break), and unhealthy with CUDA's own error once that device is one no CUDA
    call can reach, as after a fatal CUDA error: the check looks at the device in use."""
    assert runner.healthcheck() is True
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "device", Device(torch.device("cuda", 99), runner.device.dtype))
        with pytest.raises(RuntimeError, match=r"^the GPU no longer answers: .+") as raised:
            runner.healthcheck()
    assert raised.value.__cause__ is not None  # CUDA's error, kept for the traceback
    assert runner.healthcheck() is True


def test_between_requests_the_standard_motion_modules_are_in_place_and_no_lora_is_active(runner):
    runner.run(**DRAFT)
    installed, lora_layers, all_off = draft_state(runner)
    # Every motion-module attention's q, k, v and out projections carry the LoRAs (one wrapper
    # per projection, however many adapters it holds), and all are off.
    lightning = runner.tiers[2].draft.lightning
    attentions = [
        module
        for part in (*lightning.down, *lightning.up, lightning.mid_block.motion_modules)
        for module in part.modules()
        if type(module).__name__ == "Attention"
    ]
    assert installed and all_off and lora_layers == 4 * len(attentions) > 0
