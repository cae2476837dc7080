"""Fetching weights over real HTTP from a local server on 127.0.0.1, which stands in for the three
places a deployment gets them from (no test reaches the network) and serves the tiny weights'
real bytes: a mirror folder (/{folder}/{file}), one tar archive on a CDN (/weights.tar, what pget
unpacks), and the Hugging Face Hub, of which it answers the two endpoints huggingface_hub calls
(/api/models/{repo}/revision/{rev} and /{repo}/resolve/{commit}/{file}) as the Hub does, gated
repository included. huggingface_hub, requests and tarfile run unmodified."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.common import pick_device
from pipelines.inputs import TIERS
from pipelines.tier2 import TextToVideo
from tests.support import REPO
from weights import WEIGHT_SETS, WeightsError, require_weights
from weights_fetch import PARTIAL_DIR, fetch_missing
from weights_lock import LOCK_FILE, VERIFIED_CACHE, read_lock, verify_weights

TOKEN = "hf_secret_token_do_not_print_1234"
GATED = WEIGHT_SETS["svd"]
COMMIT, NEWER_COMMIT = "a" * 40, "b" * 40
TIER2_FILES = sum(len(s.files) for s in WEIGHT_SETS.values() if s.tier == 2)


class WeightsHost:
    """Serves a weights directory; records requests; can drop a file mid-way, flip a byte, refuse a
    path, move the Hub's `main` branch to a newer commit, and take back the gated repository's
    licence from the account whose token is TOKEN."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        self.drop_once, self.corrupt, self.refuse = set(), set(), set()
        self.main_commit, self.extra_members = COMMIT, {}
        self.licence_accepted = True  # by TOKEN's account, for the gated repository
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self):
                self.serve(body=False)

            def do_GET(self):
                self.serve(body=True)

            def serve(self, body):
                path = self.path.split("?")[0].lstrip("/")
                host.requests.append((self.command, "/" + path, self.headers.get("Authorization")))
                if path in host.refuse:
                    return self.send_error(403)
                if path.startswith("api/models/"):
                    return self.send_bytes(
                        json.dumps(host.model_info(host.repo_of(path))).encode(), body
                    )
                relative, gated = host.resolve(path)
                sent = self.headers.get("Authorization")
                if gated and not (host.licence_accepted and sent == f"Bearer {TOKEN}"):
                    # As the Hub answers for a gated repo: 401 without a token, 403 with one that
                    # has not accepted the licence, each marked with its error code.
                    self.send_response(401 if sent is None else 403)
                    self.send_header("X-Error-Code", "GatedRepo")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if relative == "weights.tar":
                    return self.send_bytes(host.archive(), body, relative)
                if not (host.root / relative).is_file():
                    return self.send_error(404)
                return self.send_bytes(host.content(relative), body, relative)

            def send_bytes(self, data, body, relative=None):
                start = (
                    int(self.headers["Range"].split("=")[1].split("-")[0])
                    if self.headers.get("Range")
                    else 0
                )
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header(
                    "ETag", f'"{hashlib.sha256(data).hexdigest()}"'
                )  # as the Hub's LFS files
                self.send_header("X-Repo-Commit", COMMIT)
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

    @staticmethod
    def repo_of(api_path: str) -> str:
        return api_path[len("api/models/") :].split("/revision/")[0]

    def model_info(self, repo: str) -> dict:
        """As the Hub's /api/models/{repo}/revision/{rev}?blobs=true answers: the commit, and for
        each large (LFS) file the sha256 of its true content, whatever the file server sends."""
        weight_set = next(s for s in WEIGHT_SETS.values() if s.repo == repo)
        siblings = []
        for name in weight_set.files:
            data = (self.root / weight_set.folder / name).read_bytes()
            lfs = {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "pointerSize": 134,
            }
            siblings.append(
                {
                    "rfilename": name,
                    "size": len(data),
                    **({"lfs": lfs} if name.endswith(".safetensors") else {}),
                }
            )
        return {"id": repo, "sha": self.main_commit, "siblings": siblings}

    def resolve(self, path: str) -> tuple[str, bool]:
        """(path under the served directory, whether it needs the Hub token)."""
        for weight_set in WEIGHT_SETS.values():
            prefix = f"{weight_set.repo}/resolve/"
            if path.startswith(prefix):
                return (
                    f"{weight_set.folder}/{path[len(prefix) :].split('/', 1)[1]}",
                    weight_set is GATED,
                )
        return path, False

    def content(self, relative: str) -> bytes:
        data = (self.root / relative).read_bytes()
        return data[:-1] + bytes([data[-1] ^ 0xFF]) if relative in self.corrupt else data

    def archive(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(self.root.rglob("*")):
                if path.is_file():
                    relative = path.relative_to(self.root).as_posix()
                    data = self.content(relative)
                    info = tarfile.TarInfo(relative)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            for name, data in self.extra_members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def paths(self, method=None):
        return [path for verb, path, _ in self.requests if method is None or verb == method]

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


@pytest.fixture
def no_pget(monkeypatch):
    """PATH as on a machine without pget (this one has none, but say so rather than rely on it)."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin")


def lock_from(host, destination: Path) -> None:
    """Pinned content: the lock a publisher commits after the first trusted download."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(host.root / LOCK_FILE, destination / LOCK_FILE)


def quiet(**kwargs):
    return dict(report=lambda line: None, **kwargs)


def script(name: str, *arguments: str) -> list[str]:
    """The command line that runs scripts/{name}.py as its users do."""
    return [sys.executable, "-m", f"scripts.{name}", *arguments]


def test_fetch_from_a_mirror_verify_and_load_then_no_requests(host, tmp_path):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    fetched = fetch_missing(destination, tier=2, base_url=host.url, **quiet())
    assert len(fetched) == TIER2_FILES
    require_weights(destination, tier=2)
    assert (
        verify_weights(destination, tier=2) == 0
    )  # hashed on arrival: setup does not read them again
    TextToVideo.load(destination, pick_device())  # the production loader takes what was fetched
    assert not (destination / PARTIAL_DIR).exists()

    host.requests.clear()
    assert fetch_missing(destination, tier=2, base_url=host.url, **quiet()) == []
    assert host.requests == []


def test_the_hub_token_is_never_sent_to_a_mirror(host, tmp_path):
    fetch_missing(tmp_path / "weights", tier=3, base_url=host.url, token=TOKEN, **quiet())
    assert host.requests and all(auth is None for _, _, auth in host.requests)


def test_fetch_from_the_hub_at_one_commit_recorded_in_the_lock(host, tmp_path):
    destination = tmp_path / "weights"
    fetched = fetch_missing(destination, tier=3, endpoint=host.url, token=TOKEN, **quiet())
    tier3 = [s for s in WEIGHT_SETS.values() if s.tier == 3]
    # One lookup of `main` per repository, then each file from that commit: a HEAD, then a GET.
    api = [path for path in host.paths() if path.startswith("/api/")]
    assert sorted(api) == sorted(f"/api/models/{s.repo}/revision/main" for s in tier3)
    files = [path for path in host.paths() if "/resolve/" in path]
    assert len(files) == 2 * len(fetched) and all(f"/resolve/{COMMIT}/" in path for path in files)
    lock = read_lock(destination)
    assert all(lock[name]["revision"] == COMMIT for name in fetched)  # trust on first download...
    require_weights(destination, tier=3)
    assert verify_weights(destination, tier=3) == 0

    # ...then pinned: `main` moves on, a file goes missing, it comes back from the locked commit.
    host.main_commit, host.requests = NEWER_COMMIT, []
    lost = f"{GATED.folder}/unet/config.json"
    (destination / lost).unlink()
    assert fetch_missing(destination, tier=3, endpoint=host.url, token=TOKEN, **quiet()) == [lost]
    assert not [p for p in host.paths() if p.startswith("/api/")]
    assert all(f"/resolve/{COMMIT}/" in path for path in host.paths())
    assert verify_weights(destination, tier=3) == 0


def test_a_set_pinned_to_a_commit_is_fetched_at_that_commit_whatever_main_is(host, tmp_path):
    """opus-mt-th-en's safetensors exist only on a pull request's commit (main holds pickles): the
    manifest names that commit, and every file of the set comes from it and is locked to it."""
    pinned = WEIGHT_SETS["opus_mt_th_en"]
    destination = tmp_path / "weights"
    fetched = fetch_missing(destination, tier=2, endpoint=host.url, **quiet())
    ours = [name for name in fetched if name.startswith(f"{pinned.folder}/")]
    assert len(ours) == len(pinned.files) and pinned.revision != host.main_commit
    assert [p for p in host.paths() if p.startswith(f"/api/models/{pinned.repo}/")] == [
        f"/api/models/{pinned.repo}/revision/{pinned.revision}"
    ]
    files = [path for path in host.paths() if path.startswith(f"/{pinned.repo}/resolve/")]
    assert len(files) == 2 * len(ours) and all(
        f"/resolve/{pinned.revision}/" in path for path in files
    )
    lock = read_lock(destination)
    assert {lock[name]["revision"] for name in ours} == {pinned.revision}


def test_a_first_hub_download_must_match_the_hubs_published_sha256(host, tmp_path):
    bad = f"{WEIGHT_SETS['animatediff'].folder}/diffusion_pytorch_model.safetensors"
    host.corrupt.add(bad)  # the bytes that arrive differ from what the Hub says the file is
    destination = tmp_path / "weights"
    with pytest.raises(
        WeightsError, match=f"downloaded {bad} does not match the sha256 the Hub publishes"
    ):
        fetch_missing(destination, tier=2, endpoint=host.url, **quiet())
    assert not (destination / bad).exists() and bad not in read_lock(destination)


def test_a_connection_dropped_mid_file_resumes(host, tmp_path):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    big = f"{WEIGHT_SETS['sd15'].folder}/unet/diffusion_pytorch_model.fp16.safetensors"
    host.drop_once.add(big)
    fetch_missing(destination, tier=2, base_url=host.url, **quiet())
    assert host.paths().count(f"/{big}") == 2  # the first broke off; the second asked for the rest
    (destination / VERIFIED_CACHE).unlink()
    assert (
        verify_weights(destination, tier=2) == TIER2_FILES
    )  # every byte hashed again, and matching


def test_a_wrong_byte_fails_verification_and_leaves_nothing(host, tmp_path):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    bad = f"{WEIGHT_SETS['animatediff'].folder}/diffusion_pytorch_model.safetensors"
    host.corrupt.add(bad)
    with pytest.raises(
        WeightsError, match=f"downloaded {bad} does not match {LOCK_FILE}: refused and deleted"
    ):
        fetch_missing(destination, tier=2, base_url=host.url, **quiet())
    assert not (destination / bad).exists() and not (destination / PARTIAL_DIR).exists()


def test_a_failure_midway_keeps_what_was_verified_and_the_next_run_finishes(host, tmp_path):
    destination = tmp_path / "weights"
    late = f"{WEIGHT_SETS['animatediff'].folder}/config.json"
    host.refuse.add(late)
    with pytest.raises(
        WeightsError, match=r"access refused \(HTTP 403\); check that the mirror URL is current"
    ):
        fetch_missing(destination, tier=2, base_url=host.url, **quiet())
    done = read_lock(destination)
    assert len(done) == len(WEIGHT_SETS["sd15"].files) and not (destination / late).exists()
    host.refuse.clear()
    host.requests.clear()
    after_sd15 = [
        f"{weight_set.folder}/{name}"
        for key, weight_set in WEIGHT_SETS.items()
        if weight_set.tier == 2 and key != "sd15"
        for name in weight_set.files
    ]
    assert after_sd15[0] == late
    assert fetch_missing(destination, tier=2, base_url=host.url, **quiet()) == after_sd15
    require_weights(destination, tier=2)
    (destination / VERIFIED_CACHE).unlink()
    assert verify_weights(destination, tier=2) == TIER2_FILES


@pytest.mark.parametrize(
    "token, status",
    [(None, 401), ("hf_wrong_token_5678", 403), (TOKEN, 403)],
    ids=["no token", "rejected token", "valid token, licence not accepted"],
)
def test_a_refused_gated_repo_says_what_to_do_and_never_prints_the_token(
    host, tmp_path, token, status, capsys
):
    # A valid token whose account has not accepted the licence: the one refusal in which the token
    # sent is the real one, so the only case where a printed token would be the secret itself.
    host.licence_accepted = False
    with pytest.raises(WeightsError) as error:
        fetch_missing(tmp_path / "weights", tier=3, endpoint=host.url, token=token)
    message = str(error.value)
    assert (
        f"access refused (HTTP {status})" in message
        and "accept its licence" in message
        and "HF_TOKEN" in message
    )
    assert GATED.repo in message
    # The token was used: every request for the gated repository, file downloads included, sent it.
    sent = {auth for _, path, auth in host.requests if GATED.repo in path}
    assert sent == {f"Bearer {token}" if token else None}
    assert any(path.startswith(f"/{GATED.repo}/resolve/") for path in host.paths())
    printed = capsys.readouterr()
    assert "Fetching " in printed.out  # what the fetch printed is checked below too
    for text in (message, printed.out, printed.err, repr(error.value.__cause__)):
        assert TOKEN not in text and "hf_wrong_token_5678" not in text


def test_missing_file_is_a_404_message(host, tmp_path):
    (host.root / WEIGHT_SETS["sd15"].folder / "vae" / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"not found \(HTTP 404\)"):
        fetch_missing(tmp_path / "weights", tier=2, base_url=host.url, **quiet())


# One tar archive of the weights directory, as a CDN serves it to a Replicate deployment.


def test_fetch_an_archive_without_pget_resumes_verifies_and_loads(host, tmp_path, no_pget):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    host.drop_once.add("weights.tar")
    host.extra_members[f"{WEIGHT_SETS['sd15'].folder}/unet/diffusion_pytorch_model.bin"] = (
        b"\x80\x04pickle"
    )
    fetched = fetch_missing(destination, tier=2, base_url=f"{host.url}/weights.tar", **quiet())
    assert len(fetched) == TIER2_FILES
    assert host.paths() == ["/weights.tar", "/weights.tar"]  # broke off once, then the rest
    assert not list(destination.rglob("*.bin")), (
        "only the manifest's files are taken from an archive"
    )
    require_weights(destination, tier=2)
    (destination / VERIFIED_CACHE).unlink()
    assert verify_weights(destination, tier=2) == len(fetched)
    TextToVideo.load(destination, pick_device())
    assert not (destination / PARTIAL_DIR).exists()


def test_an_archive_with_a_wrong_byte_is_refused(host, tmp_path, no_pget):
    destination = tmp_path / "weights"
    lock_from(host, destination)
    bad = f"{WEIGHT_SETS['sd15'].folder}/vae/diffusion_pytorch_model.fp16.safetensors"
    host.corrupt.add(bad)
    with pytest.raises(WeightsError, match=f"downloaded {bad} does not match"):
        fetch_missing(destination, tier=2, base_url=f"{host.url}/weights.tar", **quiet())
    assert not (destination / bad).exists() and not (destination / PARTIAL_DIR).exists()


def test_an_incomplete_archive_names_the_missing_file_and_not_the_signed_query(
    host, tmp_path, no_pget
):
    gone = f"{WEIGHT_SETS['animatediff'].folder}/config.json"
    (host.root / gone).unlink()
    with pytest.raises(WeightsError) as error:
        fetch_missing(
            tmp_path / "weights",
            tier=2,
            base_url=f"{host.url}/weights.tar?X-Signature=secret123",
            **quiet(),
        )
    assert f"does not contain {gone}" in str(error.value) and "secret123" not in str(error.value)


def test_an_archive_reaching_outside_its_folder_is_refused(host, tmp_path, no_pget):
    destination = tmp_path / "weights"
    host.extra_members["../escaped.txt"] = b"outside"
    with pytest.raises(WeightsError, match="not a readable tar archive"):
        fetch_missing(destination, tier=2, base_url=f"{host.url}/weights.tar", **quiet())
    assert not list(tmp_path.rglob("escaped.txt")) and not (destination / PARTIAL_DIR).exists()


PGET_STAND_IN = """#!{python}
# Stands in for replicate/pget (a Go binary, not installed by pip) with its command line,
# `pget -x URL DEST`: download URL and unpack the tar archive into DEST.
import json, sys, tarfile, urllib.request
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if {fail}:
    sys.exit("error: GET " + sys.argv[2] + ": 403 Forbidden")
flag, url, dest = sys.argv[1:]
assert flag == "-x"
with urllib.request.urlopen(url) as response, tarfile.open(fileobj=response, mode="r|") as tar:
    tar.extractall(dest, filter="data")
"""


def put_pget_on_path(tmp_path, monkeypatch, fail=False) -> Path:
    bin_dir, log = tmp_path / "bin", tmp_path / "pget.log"
    bin_dir.mkdir()
    (bin_dir / "pget").write_text(
        PGET_STAND_IN.format(python=sys.executable, log=str(log), fail=fail)
    )
    (bin_dir / "pget").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
    return log


def test_fetch_an_archive_with_pget_when_it_is_on_path(host, tmp_path, monkeypatch):
    log = put_pget_on_path(tmp_path, monkeypatch)
    destination = tmp_path / "weights"
    lock_from(host, destination)
    url = f"{host.url}/weights.tar"
    assert len(fetch_missing(destination, tier=2, base_url=url, **quiet())) == TIER2_FILES
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        ["-x", url, str(destination / PARTIAL_DIR / "archive")]
    ]
    (destination / VERIFIED_CACHE).unlink()
    assert (
        verify_weights(destination, tier=2) == TIER2_FILES
        and not (destination / PARTIAL_DIR).exists()
    )


def test_a_failing_pget_is_reported_without_the_signed_query(host, tmp_path, monkeypatch):
    put_pget_on_path(tmp_path, monkeypatch, fail=True)
    with pytest.raises(WeightsError) as error:
        fetch_missing(
            tmp_path / "weights",
            tier=2,
            base_url=f"{host.url}/weights.tar?X-Signature=secret123",
            **quiet(),
        )
    assert "pget could not fetch" in str(error.value) and "403 Forbidden" in str(error.value)
    assert "secret123" not in str(error.value)


def test_download_script_fetches_then_does_nothing(host, tmp_path):
    destination = tmp_path / "weights"
    command = script(
        "download_weights", "--tier", "2", "--dir", str(destination), "--url", host.url
    )
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    assert f"{TIER2_FILES} files fetched" in first.stdout
    # Draft mode's weights come with tier 2: the Lightning motion module and every motion LoRA.
    for weight_set in WEIGHT_SETS.values():
        if weight_set.repo.startswith(
            ("ByteDance/AnimateDiff-Lightning", "guoyww/animatediff-motion-lora-")
        ):
            assert all(
                (weight_set.path(destination) / name).is_file() for name in weight_set.files
            ), weight_set.repo
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
    assert set(runner.tiers) == set(TIERS)
    assert len(host.requests) == sum(len(s.files) for s in WEIGHT_SETS.values())


def test_an_unreachable_hub_gives_an_actionable_message(tmp_path):
    from scripts.cog_server import free_port

    with pytest.raises(
        WeightsError,
        match=r"could not be downloaded .* Pre-fetch with python -m scripts\.download_weights",
    ):
        fetch_missing(
            tmp_path / "weights",
            tier=2,
            endpoint=f"http://127.0.0.1:{free_port()}",
            report=lambda line: None,
        )


def test_an_archive_packed_by_the_script_is_served_and_fetched(host, tmp_path, no_pget):
    packed = host.root / "packed.tar"  # served like any file under the mirror's root
    pack = script("pack_weights", str(host.root), str(packed), "--tier", "2")
    assert (
        f"Packed {TIER2_FILES} files"
        in subprocess.run(pack, cwd=REPO, capture_output=True, text=True, check=True).stdout
    )
    destination = tmp_path / "weights"
    lock_from(host, destination)
    assert (
        len(fetch_missing(destination, tier=2, base_url=f"{host.url}/packed.tar", **quiet()))
        == TIER2_FILES
    )
    (destination / VERIFIED_CACHE).unlink()
    assert verify_weights(destination, tier=2) == TIER2_FILES


def test_packing_refuses_weights_that_differ_from_the_lock(host, tmp_path):
    unet = (
        host.root / WEIGHT_SETS["sd15"].folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    )
    data = unet.read_bytes()
    unet.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    pack = script("pack_weights", str(host.root), str(tmp_path / "out.tar"))
    result = subprocess.run(pack, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "diffusion_pytorch_model.fp16.safetensors" in result.stderr
    assert not (tmp_path / "out.tar").exists()
