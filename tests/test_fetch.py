"""Fetching weights over real HTTP from a local server on 127.0.0.1 that serves the tiny weights as a
mirror (/{folder}/{file}) and as the Hub's file endpoint (/{repo}/resolve/{revision}/{file}),
through huggingface_hub and requests unmodified."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.tier2 import TextToVideo
from pipelines.common import pick_device
from weights import (LOCK_FILE, PARTIAL_DIR, WEIGHT_SETS, WeightsError, fetch_missing, require_weights,
                     verify_weights)

REPO = Path(__file__).resolve().parent.parent
TOKEN = "hf_secret_token_do_not_print_1234"
GATED = WEIGHT_SETS["svd"]


class WeightsHost:
    """Serves a weights directory; counts requests; can drop a file mid-way or demand a token."""

    def __init__(self, root: Path):
        self.root, self.requests, self.drop_once, self.corrupt = root, [], set(), set()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self):  # noqa: N802
                self.serve(body=False)

            def do_GET(self):  # noqa: N802
                self.serve(body=True)

            def serve(self, body):
                host.requests.append((self.command, self.path))
                relative = host.resolve(self.path)
                if relative is None or not (host.root / relative).is_file():
                    return self.send_error(404)
                if relative.startswith(GATED.folder + "/"):
                    auth = self.headers.get("Authorization")
                    if auth != f"Bearer {TOKEN}":
                        return self.send_error(401 if auth is None else 403)
                data = (host.root / relative).read_bytes()
                if relative in host.corrupt:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", "0" * 40)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                if relative in host.drop_once:
                    host.drop_once.discard(relative)
                    self.wfile.write(data[start : start + (len(data) - start) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection dies halfway through the file
                    return
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def resolve(self, path: str) -> str | None:
        path = path.split("?")[0].lstrip("/")
        for weight_set in WEIGHT_SETS.values():
            prefix = f"{weight_set.repo}/resolve/{weight_set.revision}/"
            if path.startswith(prefix):
                return f"{weight_set.folder}/{path[len(prefix):]}"
        return path

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host(tiny_weights_dir, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(tiny_weights_dir, source)
    served = WeightsHost(source)
    yield served
    served.close()


def lock_from(host, destination: Path) -> None:
    """Pinned content: the lock a publisher commits after the first trusted download."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(host.root / LOCK_FILE, destination / LOCK_FILE)


def test_fetch_from_a_mirror_verify_and_load_then_no_requests(host, tmp_path):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    fetched = fetch_missing(destination, tier=2, base_url=host.url, report=lambda line: None)
    assert len(fetched) == len(WEIGHT_SETS["sd15"].files) + len(WEIGHT_SETS["animatediff"].files)
    require_weights(destination, tier=2)
    assert verify_weights(destination, tier=2) == len(fetched)
    TextToVideo.load(destination, pick_device())  # the production loader takes what was fetched
    assert not (destination / PARTIAL_DIR).exists()

    host.requests.clear()
    assert fetch_missing(destination, tier=2, base_url=host.url, report=lambda line: None) == []
    assert host.requests == []


def test_fetch_from_the_hub_endpoint_with_a_token(host, tmp_path):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    fetched = fetch_missing(destination, tier=3, endpoint=host.url, token=TOKEN, report=lambda line: None)
    assert any(name.startswith(GATED.folder) for name in fetched)
    # huggingface_hub asked the Hub's file endpoint for each file: a HEAD for metadata, then a GET.
    repos = tuple(f"/{s.repo}/resolve/{s.revision}/" for s in WEIGHT_SETS.values() if s.tier == 3)
    assert len(host.requests) == 2 * len(fetched)
    assert all(method in ("HEAD", "GET") and path.startswith(repos) for method, path in host.requests)
    require_weights(destination, tier=3)
    assert verify_weights(destination, tier=3) > 0


def test_a_connection_dropped_mid_file_resumes(host, tmp_path):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    big = f"{WEIGHT_SETS['sd15'].folder}/unet/diffusion_pytorch_model.fp16.safetensors"
    host.drop_once.add(big)
    fetch_missing(destination, tier=2, base_url=host.url, report=lambda line: None)
    ranges = [path for method, path in host.requests if path.endswith(big)]
    assert len(ranges) == 2  # the first broke off; the second asked for the rest
    assert verify_weights(destination, tier=2) > 0


def test_a_wrong_byte_fails_verification_and_leaves_nothing(host, tmp_path):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    bad = f"{WEIGHT_SETS['animatediff'].folder}/diffusion_pytorch_model.safetensors"
    host.corrupt.add(bad)
    with pytest.raises(WeightsError, match=f"downloaded {bad} does not match {LOCK_FILE}: refused and deleted"):
        fetch_missing(destination, tier=2, base_url=host.url, report=lambda line: None)
    assert not (destination / bad).exists()
    assert not list((destination / PARTIAL_DIR).rglob("*.safetensors"))


@pytest.mark.parametrize("token, status", [(None, 401), ("hf_wrong_token_5678", 403)])
def test_gated_repo_without_a_good_token_says_what_to_do_and_never_prints_it(host, tmp_path, token, status, capsys):
    destination = tmp_path / "weights"
    with pytest.raises(WeightsError) as error:
        fetch_missing(destination, tier=3, base_url=host.url, token=token)
    message = str(error.value)
    assert f"access refused (HTTP {status})" in message and "accept its licence" in message and "HF_TOKEN" in message
    printed = capsys.readouterr()
    for text in (message, printed.out, printed.err, repr(error.value.__cause__)):
        assert TOKEN not in text and "hf_wrong_token_5678" not in text


def test_hub_refusal_is_translated_too(host, tmp_path):
    with pytest.raises(WeightsError, match=r"access refused \(HTTP 401\)"):
        fetch_missing(tmp_path / "weights", tier=3, endpoint=host.url, token=None, report=lambda line: None)


def test_missing_file_is_a_404_message(host, tmp_path):
    (host.root / WEIGHT_SETS["sd15"].folder / "vae" / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"not found \(HTTP 404\)"):
        fetch_missing(tmp_path / "weights", tier=2, base_url=host.url, report=lambda line: None)


def test_download_script_fetches_then_does_nothing(host, tmp_path):
    destination = tmp_path / "weights"
    command = [sys.executable, "scripts/download_weights.py", "--tier", "2", "--dir", str(destination), "--url", host.url]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    assert "14 files fetched" in first.stdout
    host.requests.clear()
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    assert "0 files fetched" in second.stdout and host.requests == []


def test_setup_fetches_what_is_missing_from_a_mirror(host, tmp_path, monkeypatch):
    import predict

    destination = tmp_path / "weights"
    lock_from(host, destination)
    monkeypatch.setenv("WEIGHTS_DIR", str(destination))
    monkeypatch.setenv("WEIGHTS_URL", host.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    runner = predict.Runner()
    runner.setup()
    assert set(runner.tiers) == {2, 3}
    assert len(host.requests) == sum(len(s.files) for s in WEIGHT_SETS.values())


def test_an_unreachable_hub_gives_an_actionable_message(tmp_path):
    from cog_server import free_port

    with pytest.raises(WeightsError, match="could not be downloaded .* Pre-fetch with scripts/download_weights.py"):
        fetch_missing(tmp_path / "weights", tier=2, endpoint=f"http://127.0.0.1:{free_port()}",
                      report=lambda line: None)
