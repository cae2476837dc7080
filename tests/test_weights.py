"""Weights on disk: incomplete sets, pickle-format files and files that differ from the lock are
refused, naming the file; the verified-files cache spares a warm start the hashing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import predict
from pipelines.inputs import TIERS
from scripts.cog_server import CogServer
from tests.support import REPO
from weights import WEIGHT_SETS, WEIGHT_TIERS, WeightsError, require_weights
from weights_lock import LOCK_FILE, VERIFIED_CACHE, verify_weights


@pytest.fixture
def weights_copy(tiny_weights_dir, tmp_path):
    copy = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, copy)
    # Start unverified: servers started earlier in the run may have cached hashes, and copytree
    # keeps mtimes.
    (copy / VERIFIED_CACHE).unlink(missing_ok=True)
    return copy


def test_complete_tiny_weights_pass(tiny_weights_dir):
    require_weights(tiny_weights_dir, tier=2)
    require_weights(tiny_weights_dir, tier=3)


def test_the_command_line_tools_know_every_tier_without_importing_torch():
    """download_weights and pack_weights offer --tier from the manifest, which must list the same
    tiers as the model; importing weights must not pull in torch (the download needs only the Hub's
    client)."""
    assert WEIGHT_TIERS == TIERS
    imports = subprocess.run(
        [sys.executable, "-c", "import sys, weights, weights_fetch; print('torch' in sys.modules)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imports.stdout.strip() == "False"


def test_a_missing_file_is_named(weights_copy):
    gone = (
        WEIGHT_SETS["svd"].path(weights_copy) / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    )
    gone.unlink()
    with pytest.raises(WeightsError, match="Tier 3 weights are incomplete") as error:
        require_weights(weights_copy, tier=3)
    assert str(gone) in str(error.value)
    assert "`python -m scripts.make_tiny_weights DIR`" in str(error.value)


@pytest.mark.parametrize(
    "name", ["unet/diffusion_pytorch_model.bin", "model.ckpt", "vae/weights.PT"]
)
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
        assert "Refusing pickle-format weights" in str(
            error.value
        ) and "diffusion_pytorch_model.bin" in str(error.value)
    finally:
        server.stop()


def test_no_code_path_uses_pickle_loading():
    # torch.load and pickle are what make .bin/.ckpt files dangerous; none of our code calls them.
    found = subprocess.run(
        [
            "grep",
            "-rnE",
            r"torch\.load\(|pickle\.load|import pickle|weights_only",
            "--include=*.py",
            "predict.py",
            "weights.py",
            "weights_lock.py",
            "weights_fetch.py",
            "weights_build.py",
            "pipelines",
            "scripts",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert found == ""


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tiny_weights_come_with_a_lock_and_verify(weights_copy):
    assert (weights_copy / LOCK_FILE).is_file()
    assert verify_weights(weights_copy, tier=2) == sum(
        len(s.files) for s in WEIGHT_SETS.values() if s.tier == 2
    )
    assert verify_weights(weights_copy, tier=2) == 0  # cached: a warm start hashes nothing
    touched = WEIGHT_SETS["sd15"].path(weights_copy) / "unet" / "config.json"
    touched.write_text(touched.read_text())  # same bytes, new mtime: hashed again
    assert verify_weights(weights_copy, tier=2) == 1


def test_a_changed_byte_is_refused_by_setup_naming_the_file(weights_copy, monkeypatch):
    verify_weights(weights_copy, tier=3)  # fill the cache first: a change must still be caught
    corrupt = (
        WEIGHT_SETS["svd"].path(weights_copy) / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    )
    flip_one_byte(corrupt)
    monkeypatch.setenv("WEIGHTS_DIR", str(weights_copy))
    with pytest.raises(WeightsError, match="does not match its sha256") as error:
        predict.Runner().setup()
    assert str(corrupt) in str(error.value)


def test_files_hashed_side_by_side_name_the_first_that_differs(weights_copy):
    """Setup hashes a tier's files in threads; the digests are each file's own, and of two
    corrupt files the error names the one the manifest lists first, whichever finished first."""
    from weights import required_files
    from weights_lock import file_sha256, files_sha256

    names = list(required_files(4))
    paths = [weights_copy / name for name in names]
    assert files_sha256(paths) == [file_sha256(path) for path in paths]
    # Tier 4's model_index.json and its draft transformer's last shard.
    first, later = (weights_copy / name for name in (names[0], names[-1]))
    for path in (later, first):
        flip_one_byte(path)
    with pytest.raises(WeightsError, match="does not match its sha256") as error:
        verify_weights(weights_copy, tier=4)
    assert str(first) in str(error.value) and str(later) not in str(error.value)


def test_a_truncated_file_is_refused_by_size(weights_copy):
    short = (
        WEIGHT_SETS["sd15"].path(weights_copy) / "vae" / "diffusion_pytorch_model.fp16.safetensors"
    )
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(WeightsError, match=r"bytes; .* says .*: corrupt or replaced") as error:
        verify_weights(weights_copy, tier=2)
    assert str(short) in str(error.value)


def test_a_file_the_lock_does_not_name_is_refused_with_the_command_to_lock_it(weights_copy):
    lock = json.loads((weights_copy / LOCK_FILE).read_text())
    unnamed = f"{WEIGHT_SETS['sdxl_vae'].folder}/config.json"
    del lock[unnamed]
    (weights_copy / LOCK_FILE).write_text(json.dumps(lock))
    with pytest.raises(WeightsError) as error:
        verify_weights(weights_copy, tier=3)
    assert str(weights_copy / unnamed) in str(error.value)
    assert "re-run python -m scripts.lock_weights after checking it" in str(error.value)


def test_without_a_lock_setup_warns_that_weights_are_unverified(weights_copy, monkeypatch, capsys):
    (weights_copy / LOCK_FILE).unlink()
    assert verify_weights(weights_copy, tier=2) is None
    monkeypatch.setenv("WEIGHTS_DIR", str(weights_copy))
    predict.Runner().setup()
    assert "weights are not verified" in capsys.readouterr().out
    subprocess.run(
        [sys.executable, "-m", "scripts.lock_weights", str(weights_copy)], cwd=REPO, check=True
    )
    assert verify_weights(weights_copy, tier=3) == sum(
        len(s.files) for s in WEIGHT_SETS.values() if s.tier == 3
    )


def test_verified_hashes_survive_a_tar_round_trip_like_an_image_layer(weights_copy, tmp_path):
    """Verified before `cog build`, the weights reach the container through a layer tar, which keeps
    whole-second mtimes only: the cold start must not hash them all again, yet still catch a
    change."""
    verify_weights(weights_copy, tier=2)
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w", format=tarfile.USTAR_FORMAT) as tar:  # ustar: whole seconds
        tar.add(weights_copy, arcname="weights")
    with tarfile.open(layer) as tar:
        tar.extractall(tmp_path / "container", filter="data")
    container = tmp_path / "container" / "weights"
    assert verify_weights(container, tier=2) == 0
    flip_one_byte(
        WEIGHT_SETS["animatediff"].path(container) / "diffusion_pytorch_model.safetensors"
    )
    with pytest.raises(WeightsError, match="does not match its sha256"):
        verify_weights(container, tier=2)
