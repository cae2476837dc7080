"""The tiny random weights the bench programs' smoke tests run on, written once per run (tests/
has its own fixture of the same name: bench/ never imports tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.make_tiny_weights import make_tiny_weights


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-weights")
    make_tiny_weights(directory)
    return directory
