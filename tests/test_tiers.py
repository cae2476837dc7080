"""The tier interface and its loader (pipelines/tiers.py) on the tiny weights, as setup() builds
them: every tier of TIERS, each speaking `Tier`, and each reporting exactly the progress it
announces. Progress counts past its total, so a stage that over-counts fails these tests just as one
that under-counts does (the bar a client reads stops at 100 % either way)."""

from __future__ import annotations

import base64
import inspect
import io
import shutil
from typing import ClassVar

import pytest
from PIL import Image

import predict
from pipelines.inputs import TIERS, resolve_request
from pipelines.progress import Progress
from pipelines.tiers import Tier
from tests.support.declared_inputs import declared_inputs


@pytest.fixture(scope="module")
def runner(tiny_weights_dir):
    """setup() as the server runs it: its tiers are what `load_tiers` builds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEIGHTS_DIR", str(tiny_weights_dir))
        model = predict.Runner()
        model.setup()
    return model


def test_every_tier_is_loaded_and_speaks_the_tier_interface(runner):
    assert tuple(runner.tiers) == TIERS
    for number, tier in runner.tiers.items():
        assert isinstance(tier, Tier), number
        for method in ("progress_units", "generate"):
            assert inspect.signature(getattr(type(tier), method)) == inspect.signature(
                getattr(Tier, method)
            ), (number, method)


def test_one_clip_l_serves_every_tier(runner):
    """Tier 3's SDXL reads with tier 2's CLIP ViT-L text encoder (identical weights, one copy),
    and every tier's tokenizer has the vocabulary the prompt translator judges by."""
    tier2, tier3 = runner.tiers[2], runner.tiers[3]
    assert tier3.keyframe_pipeline.text_encoder is tier2.pipeline.text_encoder
    assert runner.translator.clip_tokenizer is tier2.clip_tokenizer
    assert tier3.clip_tokenizer.get_vocab() == tier2.clip_tokenizer.get_vocab()


def png_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (30, 120, 220)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


SMALL = dict(prompt="a kite over a beach", width=64, height=64, num_frames=8, seed=7)
# Every path through each tier that counts differently: decode chunks (16 frames in tier 2, 8 in
# tier 3; one left over), FreeNoise, a draft's fixed steps, a keyframe or the caller's image.
REQUESTS = {
    "tier 2": dict(SMALL, tier=2, num_inference_steps=2),
    "tier 2, 33 frames through FreeNoise in three decode chunks": dict(
        SMALL, tier=2, num_frames=33, num_inference_steps=1
    ),
    "tier 2 with a prompt schedule": dict(
        SMALL, tier=2, num_inference_steps=1, prompt_schedule="0: rises | 4: falls"
    ),
    "tier 2 draft": dict(SMALL, tier=2, draft=True, camera_motion="zoom_in"),
    "tier 3 from text, two decode chunks": dict(
        SMALL, tier=3, width=128, num_frames=9, num_inference_steps=2
    ),
    "tier 3 from an image": dict(
        SMALL, tier=3, width=128, num_inference_steps=2, image=png_data_uri()
    ),
    "tier 4 from text": dict(SMALL, tier=4, num_frames=9, num_inference_steps=2),
    "tier 4 from an image": dict(
        SMALL, tier=4, num_frames=9, num_inference_steps=2, image=png_data_uri()
    ),
}


@pytest.mark.parametrize("name", REQUESTS)
def test_each_tier_reports_exactly_the_progress_it_announces(runner, name):
    request = resolve_request(REQUESTS[name])
    tier = runner.tiers[request.tier]
    progress = Progress(tier.progress_units(request), stream=io.StringIO())
    frames = tier.generate(request, progress)
    assert len(frames) == request.num_frames
    assert progress.done == progress.total, (
        f"{name}: {progress.done} progress units reported, {progress.total} announced"
    )


class CountedProgress(Progress):
    """The progress bar, each one kept for the test to read once the prediction is over."""

    made: ClassVar[list[Progress]] = []

    def __init__(self, total: int, stream=None):
        super().__init__(total, stream)
        self.made.append(self)


@pytest.mark.parametrize(
    "inputs",
    [
        # Film-rate playback: two frames written per generated one, as a gif.
        dict(
            SMALL,
            tier=2,
            num_inference_steps=2,
            fps=10,
            interpolate_to_fps=20,
            output_format="gif",
        ),
        dict(SMALL, tier=3, width=128, num_inference_steps=1, output_format="webm"),
    ],
    ids=["tier 2 interpolated to a gif", "tier 3 to webm"],
)
def test_a_whole_prediction_counts_exactly_its_total(runner, monkeypatch, inputs):
    """The tier's units, then one per frame written (interpolated ones included): the bar ends at
    exactly its total, neither short of it nor past it."""
    monkeypatch.setattr(predict, "Progress", CountedProgress)
    CountedProgress.made.clear()
    every_input = {name: declared.field.default for name, declared in declared_inputs().items()}
    video = runner.run(**{**every_input, **inputs})
    shutil.rmtree(video.parent)  # the fuzzer's check for files left behind counts output folders
    (progress,) = CountedProgress.made
    assert progress.done == progress.total, (
        f"{progress.done} progress units reported, {progress.total} announced"
    )
