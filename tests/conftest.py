"""Shared fixtures: tiny random weights written once per run, and Cog's real server on them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from make_tiny_weights import make_tiny_weights  # noqa: E402

from cog_server import CogServer, WebhookReceiver  # noqa: E402


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-weights")
    make_tiny_weights(directory)
    return directory


@pytest.fixture(scope="session")
def server(tiny_weights_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("cog") / "server.log"
    cog = CogServer(tiny_weights_dir, log)
    try:
        cog.wait_until_ready()
        yield cog
    finally:
        cog.stop()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
