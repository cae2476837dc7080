"""Shared fixtures: tiny random weights written once per run, and Cog's real server on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.cog_schema import openapi_schema
from scripts.make_tiny_weights import make_tiny_weights
from tests.support import REPO
from tests.support.cog_server import CogServer, WebhookReceiver


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-weights")
    make_tiny_weights(directory)
    return directory


@pytest.fixture(scope="session")
def schema() -> dict:
    """The `.cog/openapi_schema.json` that `cog build` writes for predict.py."""
    return openapi_schema(REPO / "predict.py")


def _serve(weights_dir: Path, log_dir: Path, schema: dict | None):
    cog = CogServer(weights_dir, log_dir / "server.log", schema=schema)
    try:
        cog.wait_until_ready()
        yield cog
    finally:
        cog.stop()


@pytest.fixture(scope="session")
def server(tiny_weights_dir, tmp_path_factory, schema):
    """Cog's server as Replicate and `cog predict` run it: with the schema `cog build` writes."""
    yield from _serve(tiny_weights_dir, tmp_path_factory.mktemp("cog"), schema)


@pytest.fixture(scope="session")
def server_without_schema(tiny_weights_dir, tmp_path_factory):
    """Cog's server with no schema (a bare `python -m cog.server.http`): every input reaches run()
    as sent, so our own checks are all that stands between a bad value and the models."""
    yield from _serve(tiny_weights_dir, tmp_path_factory.mktemp("cog-bare"), None)


@pytest.fixture(params=["with the schema", "without a schema"])
def each_server(request):
    """For bad-input tests: once as Replicate serves the model, once with our checks alone."""
    return request.getfixturevalue(
        "server" if request.param == "with the schema" else "server_without_schema"
    )


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def stock_long_shot(tiny_weights_dir):
    """tests/support/long_shot.py's LONG_SHOT as a request, and the frames diffusers' stock
    pipeline makes for it with FreeNoise (computed once: both the pipeline and the server tests
    compare with it)."""
    from tests.support.long_shot import long_shot_by_stock_diffusers

    return long_shot_by_stock_diffusers(tiny_weights_dir)
