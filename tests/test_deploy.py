"""deploy/: the Kubernetes manifests and the RunPod worker hold to what the image serves.

The port, the probes, the concurrency and the GPU request are read from the YAML and held against
cog.yaml and against Cog's own server: the probes' commands run against coglet (started by the
tests on a free port, with a runner whose setup can be held or made to fail) in each state they
must tell apart.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cog.server.http
import pytest
import requests
import yaml

from tests.support import REPO

COG_YAML = yaml.safe_load((REPO / "cog.yaml").read_text())
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/health-check")


def model_containers() -> list[tuple[str, dict, dict]]:
    """(manifest, the spec that holds the container, the container) for every model container."""
    found = []
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] == "Deployment":
                spec = document["spec"]["template"]["spec"]
            elif document["kind"] == "InferenceService":
                spec = document["spec"]["predictor"]
            else:
                continue
            found += [(path.name, spec, container) for container in spec["containers"]]
    return found


def cogs_default_port() -> int:
    """The port Cog's server listens on without PORT: the default of its os.getenv("PORT", ...)."""
    tree = ast.parse(Path(cog.server.http.__file__).read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "os.getenv"
            and [ast.literal_eval(arg) for arg in node.args[:1]] == ["PORT"]
        ):
            return int(ast.literal_eval(node.args[1]))
    raise AssertionError("cog/server/http.py no longer reads PORT with a default")


def test_both_kinds_of_manifest_are_there():
    kinds = {
        document["kind"] for path in MANIFESTS for document in yaml.safe_load_all(path.read_text())
    }
    assert {"Deployment", "Service", "InferenceService"} <= kinds
    assert len(model_containers()) == 2


def test_each_container_serves_cogs_port_and_takes_one_gpu():
    port = cogs_default_port()
    assert port == 5000
    assert COG_YAML["build"]["gpu"] is True
    for name, _, container in model_containers():
        assert [p["containerPort"] for p in container["ports"]] == [port], name
        env = {entry["name"]: entry.get("value") for entry in container.get("env", [])}
        assert "PORT" not in env, f"{name} moves Cog's server off {port}"
        # cog.yaml's environment is the image's ENV: a manifest must not set it otherwise.
        for entry in COG_YAML.get("environment", []):
            key, value = entry.split("=", 1)
            assert env.get(key, value) == value, f"{name} overrides cog.yaml's {key}"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1, name


def test_one_prediction_per_container_as_cog_serves_it():
    # cog.yaml sets no `concurrency` (or max 1), and run() is not async: coglet has one slot.
    assert COG_YAML.get("concurrency", {}).get("max", 1) == 1
    predict = ast.parse((REPO / "predict.py").read_text())
    runs = [n for n in ast.walk(predict) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)]
    assert [type(n) for n in runs if n.name == "run"] == [ast.FunctionDef]
    for name, spec, _ in model_containers():
        if name == "inferenceservice.yaml":
            assert spec["containerConcurrency"] == 1


def probe_commands(container: dict) -> dict[str, list[str]]:
    kinds = ("readinessProbe", "livenessProbe")
    return {kind: container[kind]["exec"]["command"] for kind in kinds}


def test_the_probes_ask_cogs_health_check_on_its_port():
    for name, _, container in model_containers():
        for kind, command in probe_commands(container).items():
            ports = HEALTH_URL.findall(command[-1])
            assert ports == [str(cogs_default_port())], f"{name} {kind}: {command[-1]}"
            assert command[0] == "python", f"{name} {kind}: the image's interpreter"
    # The two manifests probe alike.
    commands = [probe_commands(container) for _, _, container in model_containers()]
    assert all(command == commands[0] for command in commands)


# A runner whose setup waits for a file (so the test sees STARTING for as long as it likes), or
# fails; its prediction waits for another file (so the test sees BUSY).
RUNNER = """
import os, time
from pathlib import Path
from cog import BaseRunner

class Runner(BaseRunner):
    def setup(self):
        while not Path(os.environ["SETUP_GATE"]).exists():
            time.sleep(0.05)
        if os.environ.get("FAIL_SETUP"):
            raise RuntimeError("setup failed on purpose")

    def run(self) -> str:
        while not Path(os.environ["RUN_GATE"]).exists():
            time.sleep(0.05)
        return "done"
"""


class Coglet:
    def __init__(self, folder: Path, fail_setup: bool = False):
        from scripts.cog_server import free_port

        folder.mkdir()
        (folder / "runner.py").write_text(RUNNER)
        self.setup_gate, self.run_gate = folder / "setup-gate", folder / "run-gate"
        self.port = free_port()
        env = dict(
            os.environ,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            COG_PREDICT_TYPE_STUB=f"{folder / 'runner.py'}:Runner",
            PORT=str(self.port),
            SETUP_GATE=str(self.setup_gate),
            RUN_GATE=str(self.run_gate),
            TMPDIR=str(folder),
            **({"FAIL_SETUP": "1"} if fail_setup else {}),
        )
        self.log = open(folder / "server.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
            cwd=folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def status(self) -> str | None:
        try:
            url = f"http://127.0.0.1:{self.port}/health-check"
            return requests.get(url, timeout=10).json()["status"]
        except requests.ConnectionError:
            return None

    def wait_for(self, status: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self.status()) != status:
            assert time.monotonic() < deadline, f"health never read {status} (last {seen})"
            time.sleep(0.1)

    def passes(self, command: list[str]) -> bool:
        """Whether a probe's command succeeds against this server (the manifest's port swapped)."""
        code = HEALTH_URL.sub(f"http://127.0.0.1:{self.port}/health-check", command[-1])
        return subprocess.run([sys.executable, *command[1:-1], code], timeout=30).returncode == 0

    def stop(self) -> None:
        os.killpg(self.process.pid, 15)
        self.process.wait(timeout=20)
        self.log.close()


@pytest.fixture
def probes():
    return probe_commands(model_containers()[0][2])


def test_ready_only_when_cog_can_take_a_prediction_alive_until_it_cannot(tmp_path, probes):
    server = Coglet(tmp_path / "server")
    try:
        server.wait_for("STARTING")
        # coglet answers 200 in every state: only the body says whether setup is done.
        response = requests.get(f"http://127.0.0.1:{server.port}/health-check", timeout=10)
        assert response.status_code == 200
        assert not server.passes(probes["readinessProbe"])
        assert server.passes(probes["livenessProbe"])

        server.setup_gate.touch()
        server.wait_for("READY")
        assert server.passes(probes["readinessProbe"])
        assert server.passes(probes["livenessProbe"])

        started = requests.post(
            f"http://127.0.0.1:{server.port}/predictions",
            json={"input": {}},
            headers={"Prefer": "respond-async"},
            timeout=10,
        )
        assert started.status_code == 202
        server.wait_for("BUSY")
        assert not server.passes(probes["readinessProbe"])  # its one slot is taken
        assert server.passes(probes["livenessProbe"])
        server.run_gate.touch()
        server.wait_for("READY")
    finally:
        server.stop()


def test_a_failed_setup_fails_the_liveness_probe(tmp_path, probes):
    server = Coglet(tmp_path / "server", fail_setup=True)
    try:
        server.setup_gate.touch()
        server.wait_for("SETUP_FAILED")
        assert not server.passes(probes["readinessProbe"])
        assert not server.passes(probes["livenessProbe"])
    finally:
        server.stop()


def test_the_runpod_worker_starts_from_the_model_image_with_a_pinned_handler():
    dockerfile = (REPO / "deploy" / "runpod" / "Dockerfile").read_text()
    assert re.search(r"^ARG MODEL_IMAGE=\S+\nFROM \$\{MODEL_IMAGE\}$", dockerfile, re.M)
    handler = re.search(
        r"ADD --checksum=sha256:[0-9a-f]{64} \\\n\s+"
        r"https://raw\.githubusercontent\.com/runpod-workers/cog-worker/[0-9a-f]{40}/src/handler\.py",
        dockerfile,
    )
    assert handler, "the worker's handler is fetched at a pinned commit and checked by sha256"
    # The handler talks to Cog's server on its default port; nothing in the Dockerfile may move it.
    assert "PORT" not in re.sub(r"RUNPOD_\w+", "", dockerfile)
