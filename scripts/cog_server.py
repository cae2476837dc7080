"""Run Cog's real HTTP server (coglet, what Replicate runs) on a free loopback port, and receive
its webhooks. Used by scripts/demo.py and by the tests.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
# The regex Replicate's official clients use to turn log lines into a progress percentage.
PROGRESS_REGEX = r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)\/(\d+)"


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
    """`python -m cog.server.http` with predict.py:Runner, started from this interpreter's env plus
    the image's (cog.yaml); `extra_env` overrides both."""

    def __init__(self, weights_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, **image_environment()}
        # Cog spawns its worker as `python` from PATH: put this environment's interpreter first.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            COG_PREDICT_TYPE_STUB="predict.py:Runner",
            PORT=str(self.port),
            WEIGHTS_DIR=str(weights_dir),
            COG_SETUP_TIMEOUT="600",
            PYTHONUNBUFFERED="1",
            **(extra_env or {}),
        )
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def health(self) -> dict:
        return requests.get(f"{self.url}/health-check", timeout=10).json()

    def wait_until_ready(self, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Cog server exited ({self.process.returncode}); see {self.log_path}")
            try:
                status = self.health()
                if status["status"] == "READY":
                    return status
                if status["status"] in ("SETUP_FAILED", "DEFUNCT"):
                    raise RuntimeError(f"Cog setup failed: {json.dumps(status)[:4000]}")
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"Cog server not READY after {timeout}s (last: {status}); see {self.log_path}")

    def predict(self, inputs: dict, timeout: float = 600) -> dict:
        # coglet frees its slot just after answering: a client that sends the next request at once
        # can get 409 At capacity. Wait for READY first, as a polite client would.
        self.wait_until_ready(timeout=30)
        response = requests.post(f"{self.url}/predictions", json={"input": inputs}, timeout=timeout)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self._log.close()


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """Cog returns files as data URIs when no upload URL is configured."""
    header, _, payload = uri.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), header[:80]
    return header[len("data:") : -len(";base64")], base64.b64decode(payload)


class WebhookReceiver:
    """A local HTTP endpoint that records every webhook Cog sends, in order."""

    def __init__(self):
        self.events: "queue.Queue[dict]" = queue.Queue()
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                events.put(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

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
            if event.get("status") in ("succeeded", "failed", "canceled"):
                return received
        raise TimeoutError(f"no terminal webhook within {timeout}s; got {[e.get('status') for e in received]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
