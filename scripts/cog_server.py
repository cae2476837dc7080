"""Run Cog's real HTTP server (coglet, what Replicate runs) on a free loopback port, and receive
its webhooks. Used by the tests and by the scripts that serve the model (scripts/demo.py,
gpu_check.py, rehearse.py and reliability.py).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from scripts import REPO

# The regex Replicate's official clients use to turn log lines into a progress percentage.
PROGRESS_REGEX = r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)\/(\d+)"
TERMINAL = ("succeeded", "failed", "canceled")
REFUSED_BY_SCHEMA = "refused by the schema"  # CogServer.predict's status for Cog's 422


def refused_fields(result: dict) -> list[str]:
    """The inputs Cog's 422 names: each error's `loc` is ["body", "input", <field>, ...]."""
    return [error["loc"][2] for error in result.get("detail", []) if len(error.get("loc", [])) > 2]


def failure_text(result: dict) -> str:
    """What a caller is told when a prediction does not run: the error of a failed prediction, or
    the schema's 422 messages, each prefixed with the field it names."""
    if result["status"] == REFUSED_BY_SCHEMA:
        return "; ".join(
            f"{'.'.join(map(str, error['loc'][2:]))}: {error['msg']}" for error in result["detail"]
        )
    return result.get("error") or ""


def image_environment() -> dict[str, str]:
    """The variables cog.yaml's `environment` writes into the image as ENV, so a server started here
    runs as it would in the container."""
    import yaml

    entries = yaml.safe_load((REPO / "cog.yaml").read_text()).get("environment") or []
    return dict(entry.split("=", 1) for entry in entries)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CogServer:
    """`python -m cog.server.http` with predict.py:Runner (or another `predictor`), started from
    this interpreter's env plus the image's (cog.yaml); `extra_env` overrides both.

    `schema`: the OpenAPI document `cog build` writes to `.cog/openapi_schema.json`, which Replicate
    and `cog predict` always serve with (scripts/cog_schema.py makes it from predict.py). With it
    Cog itself answers 422 to a value the schema refuses and drops unknown fields; without it every
    input reaches run() as sent. coglet reads that file from its working directory, so each server
    runs in a folder of its own (`app_dir`), the code coming from the repo through PYTHONPATH.

    The server and its worker get a temp folder of their own (`temp_dir`, their TMPDIR, inside
    `app_dir`; `extra_env` may name another): what a prediction writes or leaves behind there is
    theirs alone, so a test watching it is never misled by another process writing into /tmp.
    `stop()` removes both folders."""

    def __init__(
        self,
        weights_dir: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        predictor: str = "predict.py:Runner",
        schema: dict | None = None,
    ):
        module, _, runner = predictor.partition(":")
        if not runner or not (REPO / module).is_file():
            raise ValueError(
                f"predictor must be FILE:CLASS with FILE a path under {REPO}, not {predictor!r}"
            )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # Under one folder in the temp dir, so servers add one name at most to its top level.
        apps = Path(tempfile.gettempdir()) / "cog-apps"
        apps.mkdir(exist_ok=True)
        self.app_dir = Path(tempfile.mkdtemp(prefix="app-", dir=apps))
        self.temp_dir = Path((extra_env or {}).get("TMPDIR") or self.app_dir / "tmp")
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        if schema is not None:
            (self.app_dir / ".cog").mkdir()
            (self.app_dir / ".cog" / "openapi_schema.json").write_text(json.dumps(schema))
        env = {**os.environ, **image_environment()}
        # Cog spawns its worker as `python` from PATH: put this environment's interpreter first.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            COG_PREDICT_TYPE_STUB=f"{REPO / module}:{runner}",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            PORT=str(self.port),
            WEIGHTS_DIR=str(weights_dir),
            COG_SETUP_TIMEOUT="600",
            PYTHONUNBUFFERED="1",
            TMPDIR=str(self.temp_dir),
        )
        env.update(extra_env or {})  # last, so it can override any of the above
        # The server writes its log through its own copy of the file; ours is not needed after.
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
                cwd=self.app_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def health(self) -> dict:
        return requests.get(f"{self.url}/health-check", timeout=10).json()

    def health_or_none(self) -> dict | None:
        """The health check, or None while the server is not listening yet."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"Cog server exited ({self.process.returncode}); see {self.log_path}"
            )
        try:
            return self.health()
        except requests.ConnectionError:
            return None

    def wait_until_ready(self, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.health_or_none()
            if status is not None and status["status"] == "READY":
                return status
            if status is not None and status["status"] in ("SETUP_FAILED", "DEFUNCT"):
                raise RuntimeError(f"Cog setup failed: {json.dumps(status)[:4000]}")
            time.sleep(0.5)
        raise TimeoutError(
            f"Cog server not READY after {timeout}s (last: {status}); see {self.log_path}"
        )

    def predict(self, inputs: dict, timeout: float = 600) -> dict:
        """The prediction Cog answers with (HTTP 200, whatever its status), or, when the schema
        refuses the input, Cog's 422 body (`{"detail": [{"loc": [...], "msg": ...}]}`) with
        `"status": "refused by the schema"` added, so a test reads both the same way."""
        # coglet frees its slot just after answering: a client that sends the next request at once
        # can get 409 At capacity. Wait for READY first, as a polite client would.
        self.wait_until_ready(timeout=30)
        response = requests.post(f"{self.url}/predictions", json={"input": inputs}, timeout=timeout)
        if response.status_code == 422:
            return {**response.json(), "status": REFUSED_BY_SCHEMA}
        response.raise_for_status()
        return response.json()

    def start_async(
        self, inputs: dict, webhook_url: str, events=("start", "logs", "completed")
    ) -> str:
        """Start a prediction without waiting (`Prefer: respond-async`); its `events` go to
        `webhook_url`, the only way Cog reports on it. Returns its id."""
        self.wait_until_ready(timeout=30)  # the slot of a reply just sent is freed a moment later
        prediction_id = f"test-{uuid.uuid4().hex[:12]}"
        response = requests.put(
            f"{self.url}/predictions/{prediction_id}",
            json={"input": inputs, "webhook": webhook_url, "webhook_events_filter": list(events)},
            headers={"Prefer": "respond-async"},
            timeout=30,
        )
        if response.status_code != 202:
            raise RuntimeError(
                f"async prediction not accepted: HTTP {response.status_code} {response.text}"
            )
        return prediction_id

    def cancel(self, prediction_id: str) -> int:
        """`POST /predictions/{id}/cancel`; the HTTP status (404: unknown or already finished)."""
        return requests.post(
            f"{self.url}/predictions/{prediction_id}/cancel", timeout=10
        ).status_code

    def worker_pids(self) -> list[int]:
        """Cog's worker processes: the children of the server process (one while it is healthy)."""
        listed = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in listed.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        shutil.rmtree(self.app_dir, ignore_errors=True)


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """Cog returns files as data URIs when no upload URL is configured."""
    header, _, payload = uri.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64")):
        raise ValueError(f"not a base64 data URI: {uri[:80]!r}")
    return header[len("data:") : -len(";base64")], base64.b64decode(payload)


class WebhookReceiver:
    """A local HTTP endpoint that records every webhook Cog sends, in order. `delay`: a slow one,
    taking that many seconds to answer each. `refuse_final`: a flaky one, answering 503 to the
    first that many deliveries of the final (terminal) event, which are then not recorded."""

    def __init__(self, delay: float = 0.0, refuse_final: int = 0):
        self.events: queue.Queue[dict] = queue.Queue()
        self.refused: list[float] = []  # when each refused delivery came
        self.answered: list[float] = []  # when each delivery was answered
        events, refused, answered = self.events, self.refused, self.answered

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                event = json.loads(body)
                time.sleep(delay)
                if event.get("status") in TERMINAL and len(refused) < refuse_final:
                    refused.append(time.monotonic())
                    self.send_response(503)
                else:
                    events.put(event)
                    self.send_response(200)
                self.end_headers()
                answered.append(time.monotonic())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for_log(self, text: str, timeout: float = 60) -> list[dict]:
        """Every event up to the first whose logs contain `text` (or the final one, if it comes
        first)."""
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.append(self.events.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                break
            if text in (seen[-1].get("logs") or "") or seen[-1].get("status") in TERMINAL:
                return seen
        raise TimeoutError(f"{text!r} not in the logs within {timeout}s")

    def wait_for_terminal(self, timeout: float = 300) -> list[dict]:
        """Every event up to and including the one with a terminal status."""
        received = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            received.append(event)
            if event.get("status") in TERMINAL:
                return received
        raise TimeoutError(
            f"no terminal webhook within {timeout}s; got {[e.get('status') for e in received]}"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
