"""Shared fixtures: tiny random weights written once per run, and Cog's real server on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.cog_schema import openapi_schema
from scripts.cog_server import CogServer, WebhookReceiver
from scripts.make_tiny_weights import make_tiny_weights
from tests.support import REPO


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-weights")
    make_tiny_weights(directory)
    return directory


@pytest.fixture(scope="session")
def schema() -> dict:
    """The `.cog/openapi_schema.json` that `cog build` writes for predict.py."""
    return openapi_schema(REPO / "predict.py")


class CogServers:
    """Cog's servers for the whole run, one per configuration (weights, environment, schema),
    each started the first time a test asks for it and stopped when the run ends: test modules
    that serve the model the same way share one server instead of each booting its own."""

    def __init__(self, weights_dir: Path, log_root: Path, schema: dict):
        self.weights_dir, self.log_root, self.schema = weights_dir, log_root, schema
        self.running: dict[tuple, CogServer] = {}

    def get(
        self,
        extra_env: dict[str, str] | None = None,
        with_schema: bool = True,
        weights_dir: Path | None = None,
    ) -> CogServer:
        """The running server for this configuration (started now if none is): predict.py's
        Runner on `weights_dir` (the tiny weights by default), with the image's environment plus
        `extra_env`, serving the schema `cog build` writes unless `with_schema` is false."""
        weights_dir = weights_dir or self.weights_dir
        key = (str(weights_dir), tuple(sorted((extra_env or {}).items())), with_schema)
        if key not in self.running:
            log = self.log_root / f"server-{len(self.running)}.log"
            cog = CogServer(
                weights_dir, log, extra_env=extra_env, schema=self.schema if with_schema else None
            )
            self.running[key] = cog
            cog.wait_until_ready()
        cog = self.running[key]
        cog.wait_until_ready(timeout=30)  # alive and free, whatever the last test did with it
        return cog

    def stop(self) -> None:
        for cog in self.running.values():
            cog.stop()


@pytest.fixture(scope="session")
def cog_servers(tiny_weights_dir, tmp_path_factory, schema):
    """Shared servers, keyed by configuration: `cog_servers.get(extra_env={...})`. A test that
    breaks its server (kills the worker, loses the GPU) starts its own CogServer instead."""
    servers = CogServers(tiny_weights_dir, tmp_path_factory.mktemp("cog"), schema)
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def server(cog_servers):
    """Cog's server as Replicate and `cog predict` run it: with the schema `cog build` writes."""
    return cog_servers.get()


@pytest.fixture(scope="session")
def each_server(server):
    """For bad-input tests: the model as Replicate serves it (with the schema), where each rule is
    held once. Our own checks alone (no schema) are held in-process by tests/test_inputs.py and
    tests/test_fuzz.py, and through a bare server by one smoke test in tests/test_server.py."""
    return server


@pytest.fixture(scope="session")
def server_without_schema(cog_servers):
    """Cog's server with no schema (a bare `python -m cog.server.http`): every input reaches run()
    as sent, so our own checks are all that stands between a bad value and the models."""
    return cog_servers.get(with_schema=False)


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
