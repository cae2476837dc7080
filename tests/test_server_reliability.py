"""Cancel, capacity, an unreachable webhook and a killed worker, through Cog's real server."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import time

import pytest
import requests

from scripts.cog_server import TERMINAL, CogServer, WebhookReceiver, free_port

# Run and counted by `python -m bench.reliability` (bench/reports/RELIABILITY.md).
pytestmark = pytest.mark.reliability

# Long enough on tiny weights (about 3 s on two cores) to act while it runs.
LONG = dict(
    prompt="a slow sunrise over the sea",
    width=64,
    height=64,
    num_frames=16,
    num_inference_steps=100,
    seed=3,
)
QUICK = dict(LONG, num_frames=8, num_inference_steps=1)
# Cog raises CancelationException at the worker's next Python bytecode, so a cancel waits at most
# for the torch call that is running (one step's layer, one decode chunk's layer, one frame's
# write). On two CPU cores and tiny weights it lands in about 0.2 s; the bound leaves room.
CANCEL_BOUND_S = 5


def test_busy_server_answers_at_capacity_and_cancel_ends_the_prediction(server, webhook):
    prediction_id = server.start_async(LONG, webhook.url)
    webhook.wait_for_log("denoising")

    assert server.health()["status"] == "BUSY"
    second = requests.post(f"{server.url}/predictions", json={"input": QUICK}, timeout=30)
    assert second.status_code == 409
    assert "At capacity" in second.json()["error"]

    asked = time.monotonic()
    assert server.cancel(prediction_id) == 200
    final = webhook.wait_for_terminal(timeout=30)[-1]
    assert final["status"] == "canceled"
    assert time.monotonic() - asked < CANCEL_BOUND_S
    assert not final.get("output")

    server.wait_until_ready(timeout=10)
    assert server.predict(QUICK)["status"] == "succeeded"


# Inputs that keep each stage busy for a second or more on tiny weights, so the cancel lands in it.
CANCEL_IN = {
    "tier2-denoising": ("denoising", LONG),
    "tier2-decoding": ("decoding", dict(QUICK, width=256, height=256, num_frames=32)),
    # The encoder's own process is what the cancel waits for (about 0.7 s of H.264 at this size).
    "tier2-encoding": ("encoding", dict(QUICK, width=384, height=384, num_frames=32)),
    "tier3-keyframe": (
        "keyframe",
        dict(QUICK, tier=3, width=1024, height=576, num_inference_steps=100),
    ),
    "tier3-animating": (
        "animating",
        dict(QUICK, tier=3, width=128, height=64, num_frames=25, num_inference_steps=100),
    ),
    "tier3-decoding": ("decoding", dict(QUICK, tier=3, width=256, height=128, num_frames=25)),
    # A long shot: FreeNoise's windows over 96 frames, and film-rate playback (frames made between
    # the generated ones while the video is written).
    "tier2-long-denoising": ("denoising", dict(LONG, num_frames=96)),
    "tier2-interpolating": (
        "interpolating",
        dict(QUICK, width=256, height=256, num_frames=32, interpolate_to_fps=56),
    ),
}


def stages_in(logs: str) -> list[str]:
    """The stage named at the end of each progress line (`..., 4.33it/s, decoding]`)."""
    return re.findall(r", (\w+)\]$", logs or "", re.MULTILINE)


def worker_children(server) -> list[tuple[str, str]]:
    """(state, command) of every process the worker started (ffmpeg, while encoding)."""
    [worker] = server.worker_pids()
    rows = subprocess.run(
        ["ps", "-o", "stat=,comm=", "--ppid", str(worker)], capture_output=True, text=True
    ).stdout
    return [tuple(row.split(None, 1)) for row in rows.splitlines()]


def wait_for_ffmpeg(server, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not any(
        command.startswith("ffmpeg") and not state.startswith("Z")
        for state, command in worker_children(server)
    ):
        assert time.monotonic() < deadline, "ffmpeg never started"
        time.sleep(0.02)


def cancel_in_stage(server, stage: str, inputs: dict, tries: int = 3) -> tuple[dict, float]:
    """Start `inputs` and cancel it once `stage` has begun; return the final webhook and the
    seconds from the cancel request to it. A stage can still end before the cancel reaches it: Cog
    then answers 404 or the prediction succeeds, and it is tried again, up to `tries` times."""
    for _ in range(tries):
        receiver = WebhookReceiver()
        try:
            prediction_id = server.start_async(inputs, receiver.url)
            if stage == "encoding":
                # The encode's progress lines span under a second, less than the logs webhook can
                # lag: watch for the encoder itself instead.
                wait_for_ffmpeg(server)
            elif receiver.wait_for_log(f", {stage}]")[-1].get("status") in TERMINAL:
                continue  # finished before its stage was even reported
            asked = time.monotonic()
            answer = server.cancel(prediction_id)
            assert answer in (200, 404), answer
            final = receiver.wait_for_terminal(timeout=30)[-1]
            took = time.monotonic() - asked
            if answer == 200 and final["status"] != "succeeded":
                return final, took
        finally:
            receiver.close()
            server.wait_until_ready(timeout=30)
    pytest.fail(f"the {stage} stage ended before a cancel reached it, {tries} times")


@pytest.mark.parametrize("case", sorted(CANCEL_IN))
def test_cancel_in_any_stage_ends_canceled_promptly(server, record_property, case):
    stage, inputs = CANCEL_IN[case]
    final, took = cancel_in_stage(server, stage, inputs)
    record_property("cancel_seconds", round(took, 2))

    assert final["status"] == "canceled"
    # It ended in the stage it was meant to. The encode is known by its ffmpeg process (it runs only
    # while frames are written), so its first progress line may not have been printed yet.
    assert stages_in(final["logs"])[-1] in (
        (stage,) if stage != "encoding" else ("decoding", "encoding")
    )
    assert took < CANCEL_BOUND_S
    assert not final.get("output")
    # An encoder cut off is killed: no ffmpeg goes on running (Python reaps the exited one later).
    assert all(state.startswith("Z") for state, _ in worker_children(server)), worker_children(
        server
    )
    server.wait_until_ready(timeout=10)
    assert server.predict(QUICK)["status"] == "succeeded"


def test_cancel_of_an_unknown_prediction_is_404(server):
    assert server.cancel("no-such-id") == 404


def test_unreachable_webhook_does_not_stall_or_lose_the_prediction(server):
    dead_url = f"http://127.0.0.1:{free_port()}/webhook"  # nothing listens there
    server.start_async(QUICK, dead_url)
    server.wait_until_ready(timeout=60)  # finished, despite every webhook failing
    assert server.predict(QUICK)["status"] == "succeeded"


def test_slow_webhook_receiver_does_not_stall_the_server(server):
    """Cog sends webhooks beside the prediction, not in its way: with a receiver that takes 5 s to
    answer each, the prediction finishes and the next one runs before the first answer."""
    slow = WebhookReceiver(delay=5)
    try:
        server.start_async(QUICK, slow.url)
        server.wait_until_ready(timeout=60)
        assert server.predict(QUICK)["status"] == "succeeded"
        next_done = time.monotonic()
        final = slow.wait_for_terminal(timeout=60)[-1]
        assert final["status"] == "succeeded" and final["output"].startswith("data:")
        assert all(next_done < answered for answered in slow.answered)
    finally:
        slow.close()


def test_final_webhook_is_retried_until_the_receiver_takes_it(server):
    """coglet retries the final webhook (about 10 tries over 100 s, doubling the wait) and no
    other; a receiver that refuses it a few times still gets it, while the server goes on."""
    flaky = WebhookReceiver(refuse_final=3)
    try:
        server.start_async(QUICK, flaky.url)
        server.wait_until_ready(timeout=60)
        assert server.predict(QUICK)["status"] == "succeeded"
        final = flaky.wait_for_terminal(timeout=60)[-1]
        assert final["status"] == "succeeded" and final["output"].startswith("data:")
        assert len(flaky.refused) == 3
        gaps = [later - earlier for earlier, later in zip(flaky.refused, flaky.refused[1:])]
        assert gaps == sorted(gaps)  # backing off, not hammering
    finally:
        flaky.close()


# A server of its own loads tier 2 alone: what these tests break (the worker, the GPU) is the
# same whatever tiers it holds, and its setup is the shorter for it.
TIER2_ONLY = {"LOADED_TIERS": "2"}


def first_health_after_setup(cog: CogServer, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while (health := cog.health_or_none()) is None or health["status"] == "STARTING":
        assert time.monotonic() < deadline, health
        time.sleep(0.5)
    return health


def test_a_lost_gpu_reports_unhealthy_with_the_cuda_error(tiny_weights_dir, tmp_path):
    """healthcheck() raises with CUDA's message; Cog reports UNHEALTHY and shows it. coglet still
    takes predictions then (on a CPU-only machine they run, the models being on the CPU): taking
    the container out is left to whatever reads the health check."""
    cog = CogServer(
        tiny_weights_dir,
        tmp_path / "server.log",
        extra_env=TIER2_ONLY,
        predictor="tests/support/gpu_lost.py:RunnerWithALostGpu",
    )
    try:
        health = first_health_after_setup(cog)
        assert health["status"] == "UNHEALTHY", health
        assert health["user_healthcheck_error"].startswith(
            "Healthcheck failed: RuntimeError: the GPU no longer answers: "
        ), health
        assert (
            requests.post(f"{cog.url}/predictions", json={"input": QUICK}, timeout=60).json()[
                "status"
            ]
            == "succeeded"
        )
    finally:
        cog.stop()


def test_a_hung_gpu_reports_unhealthy_after_cogs_timeout(tiny_weights_dir, tmp_path):
    """A health check that never returns (a GPU whose sync hangs) does not hang /health-check:
    coglet gives up after 5 s and reports UNHEALTHY, each time it is asked."""
    cog = CogServer(
        tiny_weights_dir,
        tmp_path / "server.log",
        extra_env=TIER2_ONLY,
        predictor="tests/support/gpu_lost.py:RunnerWithAHungGpu",
    )
    try:
        for health in (first_health_after_setup(cog), cog.health()):
            assert health["status"] == "UNHEALTHY", health
            assert (
                health["user_healthcheck_error"]
                == "Healthcheck failed: user-defined healthcheck timed out after 5.0 seconds"
            ), health
    finally:
        cog.stop()


@pytest.fixture
def own_server(tiny_weights_dir, tmp_path):
    cog = CogServer(tiny_weights_dir, tmp_path / "server.log", extra_env=TIER2_ONLY)
    cog.wait_until_ready()
    yield cog
    cog.stop()


def test_killed_worker_fails_the_prediction_and_reports_unhealthy(own_server, webhook):
    """What coglet 0.23 does when its worker dies (kill -9, or the kernel's OOM killer): the running
    prediction fails at once, and the server stays UNHEALTHY, refusing new work with 409, until the
    container is restarted. It does not start a new worker itself."""
    own_server.start_async(LONG, webhook.url)
    webhook.wait_for_log("denoising")
    workers = own_server.worker_pids()
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGKILL)

    final = webhook.wait_for_terminal(timeout=30)[-1]
    assert final["status"] == "failed"
    assert "Worker crashed" in final["error"]
    time.sleep(1)
    assert own_server.health()["status"] == "UNHEALTHY"
    refused = requests.post(f"{own_server.url}/predictions", json={"input": QUICK}, timeout=30)
    assert refused.status_code == 409
    assert own_server.process.poll() is None  # the HTTP server itself is still up


def test_only_the_last_video_stays_on_disk_however_many_predictions_run(server):
    """Cog reads the file run() returns after run() has ended, so each video stays until the next
    prediction starts, which deletes it: over a long run one output folder is left, holding the
    video last returned, and the disk does not fill up. A prediction that fails once its inputs
    are checked deletes the last video too, and leaves nothing of its own."""
    # The worker's temp folder, where run() makes each output folder: the server's own.
    temp = server.temp_dir
    for inputs in (
        QUICK,
        dict(QUICK, tier=3, width=128),
        dict(QUICK, output_format="gif"),
        dict(QUICK, seed=4, output_format="webm"),
    ):
        result = server.predict(inputs)
        assert result["status"] == "succeeded", result.get("error")
        left = list(temp.glob("video-*"))
        assert len(left) == 1, left
        [video] = left[0].iterdir()
        assert video.read_bytes() == base64.b64decode(result["output"].partition(",")[2])
    # Refused by the translator, inside run() (CLIP cannot read this script).
    failed = server.predict(dict(QUICK, prompt="Ночная сцена, дождь на улице"))
    assert failed["status"] == "failed" and "InputError: prompt" in failed["error"]
    assert not list(temp.glob("video-*"))
