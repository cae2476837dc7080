"""Weights on disk: incomplete sets and pickle-format files are refused, naming the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import predict
from cog_server import CogServer
from weights import WEIGHT_SETS, WeightsError, require_weights

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def weights_copy(tiny_weights_dir, tmp_path):
    copy = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, copy)
    return copy


def test_complete_tiny_weights_pass(tiny_weights_dir):
    require_weights(tiny_weights_dir, tier=2)
    require_weights(tiny_weights_dir, tier=3)


def test_a_missing_file_is_named(weights_copy):
    gone = WEIGHT_SETS["svd"].path(weights_copy) / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    gone.unlink()
    with pytest.raises(WeightsError, match="Tier 3 weights are incomplete") as error:
        require_weights(weights_copy, tier=3)
    assert str(gone) in str(error.value)


@pytest.mark.parametrize("name", ["unet/diffusion_pytorch_model.bin", "model.ckpt", "vae/weights.PT"])
def test_pickle_format_weights_are_refused_by_setup(weights_copy, monkeypatch, name):
    unsafe = WEIGHT_SETS["sd15"].path(weights_copy) / name
    unsafe.write_bytes(b"\x80\x04pickle")
    monkeypatch.setenv("WEIGHTS_DIR", str(weights_copy))
    with pytest.raises(WeightsError, match="Refusing pickle-format weights") as error:
        predict.Runner().setup()
    assert str(unsafe) in str(error.value)


def test_setup_failure_is_reported_by_the_server(weights_copy, tmp_path):
    unsafe = WEIGHT_SETS["svd"].path(weights_copy) / "unet" / "diffusion_pytorch_model.bin"
    unsafe.write_bytes(b"\x80\x04pickle")
    server = CogServer(weights_copy, tmp_path / "server.log")
    try:
        with pytest.raises(RuntimeError, match="Cog setup failed") as error:
            server.wait_until_ready(timeout=120)
        assert "Refusing pickle-format weights" in str(error.value) and "diffusion_pytorch_model.bin" in str(error.value)
    finally:
        server.stop()


def test_no_code_path_uses_pickle_loading():
    # torch.load and pickle are what make .bin/.ckpt files dangerous; none of our code calls them.
    found = subprocess.run(
        ["grep", "-rnE", r"torch\.load\(|pickle\.load|import pickle|weights_only", "--include=*.py",
         "predict.py", "weights.py", "pipelines", "scripts"],
        cwd=REPO, capture_output=True, text=True,
    ).stdout
    assert found == ""
