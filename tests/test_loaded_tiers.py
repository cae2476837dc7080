"""LOADED_TIERS: a container that loads only some tiers, and refuses the others naming `tier`."""

from __future__ import annotations

import shutil

import pytest

import predict
from pipelines.inputs import InputError
from tests.support.declared_inputs import declared_inputs

SMALL = dict(prompt="a kite", width=64, height=64, num_inference_steps=1, seed=3)


@pytest.fixture(scope="module")
def tier4_only(tiny_weights_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEIGHTS_DIR", str(tiny_weights_dir))
        patch.setenv("LOADED_TIERS", "4")
        model = predict.Runner()
        model.setup()
    return model


def run(model, **inputs):
    every_input = {name: declared.field.default for name, declared in declared_inputs().items()}
    return model.run(**{**every_input, **SMALL, **inputs})


def test_only_the_named_tiers_are_loaded(tier4_only):
    assert tuple(tier4_only.tiers) == (4,)
    # The translator still judges text by the CLIP vocabulary tiers 2 and 3 read with.
    assert "a</w>" in tier4_only.translator.clip_tokenizer.get_vocab()
    video = run(tier4_only, tier=4, num_frames=9)
    assert video.stat().st_size > 0
    shutil.rmtree(video.parent)


@pytest.mark.parametrize("tier", [2, 3])
def test_another_tier_is_refused_naming_tier_and_the_loaded_ones(tier4_only, tier):
    with pytest.raises(InputError, match=rf"^tier {tier} is not loaded .*LOADED_TIERS=4.*: 4$"):
        run(tier4_only, tier=tier, num_frames=8)


@pytest.mark.parametrize("value, loaded", [("", (2, 3, 4)), ("4", (4,)), (" 3, 2 ", (2, 3))])
def test_loaded_tiers_reads_the_variable(monkeypatch, value, loaded):
    monkeypatch.setenv("LOADED_TIERS", value)
    assert predict.loaded_tiers() == loaded


@pytest.mark.parametrize("value", ["5", "two", ",", "2;3"])
def test_a_bad_loaded_tiers_fails_setup_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("LOADED_TIERS", value)
    with pytest.raises(ValueError, match=rf"^LOADED_TIERS must be .*got {value!r}"):
        predict.loaded_tiers()
