"""examples/frontend_server.py: what a web app's server does with Replicate's responses and
webhooks.

Everything runs offline. Replicate's API is stood in for by an httpx.MockTransport handed to the
official client (`replicate.Client(transport=...)`, as replicate-python's own tests do): it answers
with recorded response bodies and lets the tests check each request the example sends.

Where each fixture in tests/fixtures/replicate/ comes from:
- The prediction object's fields and their shapes (id, model, version, input, logs, error, status,
  created_at, started_at, completed_at, metrics, urls, webhook_completed): replicate-python's
  recorded API responses, tests/cassettes/predictions-cancel.yaml (the 201 answer to creating a
  prediction, `starting`; the 200 answer to cancelling it, `canceled`, whose values
  prediction_canceled.json keeps) and tests/cassettes/predictions-get.yaml (`succeeded`, output on
  replicate.delivery). A webhook's body is the same object
  (https://replicate.com/docs/topics/webhooks/receive-webhook); the version id is that page's.
- `logs` and `error`: recorded from this model through Cog 0.23.1's own server (coglet, what
  Replicate runs) on tiny random weights, with scripts/cog_server.py: a tier-2 run of 8 frames
  64×64 in 2 steps, a width of 500, an `image` URL that does not resolve, and a worker killed with
  SIGKILL mid-denoising ("Worker crashed"). `output` is one URL because run() returns one file
  (Cog answered it as one string, a data URI without an upload URL); on Replicate that string is a
  replicate.delivery URL, written in this fixture after predictions-get.yaml's.
- error_422_*.json: Replicate's answer when it refuses a prediction's input
  (https://replicate.com/changelog/2024-05-01-improved-validation-for-api-prediction-payloads shows
  `invalid_fields`; the full bodies, with `title` and `detail`, as public projects quote them in
  their logs), written for this model's `width` limit of 1024.
- webhook_secret.json and the signature vector: replicate-python's tests/test_webhooks.py (a test
  secret, documented there as such).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import replicate
import requests
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction

from examples.frontend_server import (
    CANCELED,
    FALL_BACK,
    SHOW_ERROR,
    SHOW_VIDEO,
    WAIT,
    WEBHOOK_EVENTS,
    Shot,
    ShotBoard,
    WebhookRejected,
    api_input_error,
    cancel_prediction,
    decide,
    inputs_for_tier,
    make_handler,
    model_input_error,
    next_tier,
    parse_progress,
    start_prediction,
    verify_webhook,
)
from pipelines.progress import Progress
from tests.support import REPO

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "replicate"
TOKEN = "r8_test_token_never_real"
VERSION = (
    "example-owner/video-model:5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
)
PUBLIC_URL = "https://shots.example.com"
SECRET = json.loads((FIXTURES / "webhook_secret.json").read_text())["key"]
# replicate-python tests/test_webhooks.py: a body signed with SECRET by Replicate's (Svix's) signer.
VECTOR = dict(
    id="msg_p5jXN8AQM9LWM0D4loKWxJek",
    timestamp=1614265330,
    body='{"test": 2432232314}',
    signature="v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def sign(body: str, webhook_id: str, timestamp: int, secret: str = SECRET) -> str:
    """As https://replicate.com/docs/topics/webhooks/verify-webhook documents it: base64 of the
    HMAC-SHA256 of "{id}.{timestamp}.{body}", keyed with the base64-decoded part after whsec_."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(body: str, webhook_id: str, timestamp: int, secret: str = SECRET) -> dict:
    # Header names as they arrive over HTTP; the check must not depend on their case.
    return {
        "Webhook-Id": webhook_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": sign(body, webhook_id, timestamp, secret),
        "Content-Type": "application/json",
    }


# --- Progress from the model's logs -------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        # Copied from the model's recorded logs (tests/fixtures/replicate/webhook_succeeded.json).
        ("  6%|▌         | 1/18 [00:01<00:18,  1.08s/it, denoising]", (6, 1, 18, "denoising")),
        (" 56%|█████▌    | 10/18 [00:01<00:01,  6.38it/s, decoding]", (56, 10, 18, "decoding")),
        ("100%|██████████| 18/18 [00:01<00:00, 10.45it/s, encoding]", (100, 18, 18, "encoding")),
        ("  6%|▌         | 1/17 [00:00<00:00, 16.12it/s, denoising]", (6, 1, 17, "denoising")),
        (" 25%|██▌       | 14/56 [00:00<00:01, 29.20it/s, keyframe]", (25, 14, 56, "keyframe")),
        # A bar without a stage (another model's tqdm) still gives a percentage.
        (" 40%|████      | 2/5 [00:01<00:01, 22.46it/s]", (40, 2, 5, None)),
    ],
)
def test_a_progress_line_gives_percent_counts_and_stage(line, expected):
    progress = parse_progress(line)
    assert (progress.percent, progress.current, progress.total, progress.stage) == expected


@pytest.mark.parametrize(
    "logs",
    [
        None,
        "",
        "Seed: 42 (given; pass seed=42 to reproduce this video)\n"
        "Tier 2: 8 frames at 64×64, 8 fps, 2 steps, guidance 7.5\n",
    ],
)
def test_logs_without_a_bar_give_no_progress(logs):
    assert parse_progress(logs) is None


@pytest.mark.parametrize(
    "name, percent, stage",
    [
        ("webhook_processing.json", 56, "decoding"),
        ("webhook_succeeded.json", 100, "encoding"),
        ("webhook_failed_crash.json", 27, "denoising"),
    ],
)
def test_the_last_bar_line_of_a_recorded_log_is_the_progress(name, percent, stage):
    logs = fixture(name)["logs"]
    progress = parse_progress(logs)
    assert (progress.percent, progress.stage) == (percent, stage)
    # The same numbers as the official client's own parser.
    official = Prediction.Progress.parse(logs)
    assert (round(official.percentage * 100), official.current, official.total) == (
        progress.percent,
        progress.current,
        progress.total,
    )


def test_every_line_the_model_prints_now_is_read():
    """Lines from the model's own progress printer (pipelines/progress.py), so a change of its
    format breaks this test rather than the web app's progress bar."""
    stream = io.StringIO()
    bar = Progress(17, stream=stream)
    stages = ["denoising"] * 8 + ["decoding"] * 4 + ["encoding"] * 5
    for done, stage in enumerate(stages, start=1):
        bar.advance(stage)
        progress = parse_progress(stream.getvalue())
        assert (progress.current, progress.total, progress.stage) == (done, 17, stage)
        assert progress.percent == round(done * 100 / 17)  # tqdm rounds its percentage
    # A bar redrawn with carriage returns, as plain tqdm writes it, reads the same.
    assert parse_progress(stream.getvalue().replace("\n", "\r")).percent == 100


# --- Webhook signatures -------------------------------------------------------------------------


def test_the_documented_recipe_reproduces_the_published_signature():
    assert sign(VECTOR["body"], VECTOR["id"], VECTOR["timestamp"]) == VECTOR["signature"]


def vector_headers(**changes) -> dict:
    headers = {
        "webhook-id": VECTOR["id"],
        "webhook-timestamp": str(VECTOR["timestamp"]),
        "webhook-signature": VECTOR["signature"],
    }
    return {**headers, **changes}


def test_a_known_good_webhook_is_accepted():
    prediction = verify_webhook(
        vector_headers(), VECTOR["body"].encode(), SECRET, now=VECTOR["timestamp"] + 10
    )
    assert prediction == {"test": 2432232314}


@pytest.mark.parametrize(
    "headers, body, secret, now, reason",
    [
        (
            vector_headers(),
            '{"test": 2432232315}',
            SECRET,
            0,
            "signature is invalid",
        ),  # tampered body
        (
            vector_headers(),
            VECTOR["body"],
            "whsec_" + base64.b64encode(b"another account's key").decode(),
            0,
            "signature is invalid",
        ),
        (
            vector_headers(),
            VECTOR["body"],
            SECRET,
            301,
            "from our clock",
        ),  # replayed 5 minutes later
        (
            vector_headers(),
            VECTOR["body"],
            SECRET,
            -301,
            "from our clock",
        ),  # or dated in the future
        (
            vector_headers(**{"webhook-id": "msg_other"}),
            VECTOR["body"],
            SECRET,
            0,
            "signature is invalid",
        ),
        (
            vector_headers(**{"webhook-timestamp": "yesterday"}),
            VECTOR["body"],
            SECRET,
            0,
            "webhook-timestamp",
        ),
        (
            {"webhook-id": VECTOR["id"], "webhook-timestamp": str(VECTOR["timestamp"])},
            VECTOR["body"],
            SECRET,
            0,
            "Missing webhook signature",
        ),
        (vector_headers(), "", SECRET, 0, "Missing webhook body"),
    ],
    ids=[
        "tampered body",
        "wrong secret",
        "stale",
        "future",
        "other id",
        "bad timestamp",
        "unsigned",
        "no body",
    ],
)
def test_an_untrustworthy_webhook_is_rejected(headers, body, secret, now, reason):
    with pytest.raises(WebhookRejected, match=reason):
        verify_webhook(headers, body, secret, now=VECTOR["timestamp"] + now)


def test_any_one_valid_signature_of_several_is_enough():
    # During a key rotation the header carries several space-separated signatures.
    headers = vector_headers(**{"webhook-signature": "v1,bm90IHRoaXMgb25l " + VECTOR["signature"]})
    assert verify_webhook(headers, VECTOR["body"], SECRET, now=VECTOR["timestamp"]) == {
        "test": 2432232314
    }


def test_a_malformed_secret_is_refused_without_printing_it():
    secret = "whsec-this-is-secret-material"
    with pytest.raises(WebhookRejected) as error:
        verify_webhook(vector_headers(), VECTOR["body"], secret, now=VECTOR["timestamp"])
    assert secret not in str(error.value) and "this-is-secret" not in repr(error.value)


def test_a_signed_prediction_webhook_gives_back_the_prediction():
    body = (FIXTURES / "webhook_processing.json").read_text()
    headers = signed_headers(body, "msg_processing", 1_800_000_000)
    assert verify_webhook(headers, body.encode(), SECRET, now=1_800_000_000) == fixture(
        "webhook_processing.json"
    )


# --- What to do next ----------------------------------------------------------------------------

TEXT_SHOT = Shot(prompt="a lighthouse in a storm", seed=42)
IMAGE_SHOT = Shot(prompt="the waves rise", image="https://example.com/storyboard/12.png", seed=7)


def test_starting_and_processing_wait_with_the_progress():
    assert decide(fixture("prediction_starting.json"), TEXT_SHOT, (2,)) == decide(
        {"status": "starting"}, TEXT_SHOT, (2,)
    )
    step = decide(fixture("webhook_processing.json"), TEXT_SHOT, (2,))
    assert (step.action, step.percent, step.stage) == (WAIT, 56, "decoding")


def test_success_shows_the_video_url():
    step = decide(fixture("webhook_succeeded.json"), TEXT_SHOT, (2,))
    assert (step.action, step.percent) == (SHOW_VIDEO, 100)
    assert step.video_url == fixture("webhook_succeeded.json")["output"]
    # A model returning several files gives a list; the first is the video.
    assert (
        decide({"status": "succeeded", "output": ["https://a/v.mp4"]}, TEXT_SHOT, (2,)).video_url
        == "https://a/v.mp4"
    )


def test_a_cancel_is_final_and_never_retried():
    step = decide(fixture("prediction_canceled.json"), TEXT_SHOT, (2,))
    assert step.action == CANCELED and step.next_tier is None


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "webhook_failed_input.json",
            "width must be a multiple of 8 (the VAE works on 8×8 blocks); got 500, "
            "nearest allowed: 496 or 504",
        ),
        (
            "webhook_failed_image.json",
            "image could not be read: HTTPSConnectionPool(host='example.invalid'",
        ),
    ],
)
def test_a_bad_input_shows_the_models_message_and_is_not_retried(name, message):
    step = decide(fixture(name), TEXT_SHOT, (2,))
    assert step.action == SHOW_ERROR and step.next_tier is None
    assert step.message.startswith(message)


def test_the_inputs_cogs_own_checks_refuse_are_named():
    # Recorded: a field run() does not declare, sent where no schema strips it.
    error = (
        "Prediction failed: Prediction failed: TypeError: Runner.run() got an unexpected keyword "
        "argument 'colour'"
    )
    assert model_input_error(error) == "unknown input 'colour'"
    assert model_input_error(fixture("webhook_failed_crash.json")["error"]) is None


@pytest.mark.parametrize(
    "shot, tried, expected",
    [
        (TEXT_SHOT, (2,), 3),  # tier 2 failed: the heavier tier 3
        (TEXT_SHOT, (1, 2), 3),  # after the frontend's tier 1 and tier 2
        (TEXT_SHOT, (3,), 2),  # asked for tier 3 first: the lighter tier 2
        (TEXT_SHOT, (2, 3), 4),  # the heaviest, last
        (TEXT_SHOT, (4,), 2),  # asked for tier 4 first: the lightest next
        (TEXT_SHOT, (2, 3, 4), None),  # nothing left
        (IMAGE_SHOT, (3,), 4),  # tier 2 cannot animate a given first frame; Wan can
        (IMAGE_SHOT, (3, 4), None),
    ],
)
def test_a_failure_falls_back_to_the_next_tier_that_can_render_the_shot(shot, tried, expected):
    step = decide(fixture("webhook_failed_crash.json"), shot, tried)
    if expected is None:
        assert step.action == SHOW_ERROR and "Worker crashed" in step.message
    else:
        assert (step.action, step.next_tier) == (FALL_BACK, expected)
        assert "Worker crashed" in step.message


def test_after_the_frontends_tier_1_a_shot_starts_on_tier_2_or_3():
    assert next_tier(TEXT_SHOT, (1,)) == 2
    assert next_tier(IMAGE_SHOT, (1,)) == 3
    assert (
        next_tier(Shot(image="https://example.com/f.png"), (1,)) == 3
    )  # no prompt: only SVD animates
    assert next_tier(Shot(), (1,)) == 3  # and the model says what is missing


def test_each_tier_gets_only_inputs_it_takes():
    assert inputs_for_tier(IMAGE_SHOT, 3) == dict(
        tier=3,
        prompt="the waves rise",
        negative_prompt="",
        output_format="mp4",
        seed=7,
        image="https://example.com/storyboard/12.png",
    )
    assert inputs_for_tier(IMAGE_SHOT, 4)["image"] == IMAGE_SHOT.image
    assert "image" not in inputs_for_tier(IMAGE_SHOT, 2)
    assert "seed" not in inputs_for_tier(Shot(prompt="p"), 2)  # the model draws and logs one


def test_a_refused_input_at_creation_names_the_field():
    refused = ReplicateError(
        status=422,
        **{k: v for k, v in fixture("error_422_input.json").items() if k in ("title", "detail")},
    )
    assert api_input_error(refused) == "input.width: Must be less than or equal to 1024"
    # Cog's own server with a schema answers a list: `detail`, as scripts/cog_server.py reads it.
    cog_422 = ReplicateError(
        status=422,
        detail=[
            {"loc": ["body", "input", "width"], "msg": "Input should be less than or equal to 1024"}
        ],
    )
    assert api_input_error(cog_422) == "width: Input should be less than or equal to 1024"
    # A version that does not exist is the server's configuration, not the user's input.
    version = fixture("error_422_version.json")
    assert (
        api_input_error(
            ReplicateError(status=422, title=version["title"], detail=version["detail"])
        )
        is None
    )
    assert api_input_error(ReplicateError(status=500, detail="oops")) is None


# --- The calls to Replicate, through the official client -----------------------------------------


class FakeReplicate:
    """Stands in for api.replicate.com: answers each request from the recorded fixtures and keeps
    every request for the test to check. Each new prediction gets the next id."""

    def __init__(self, create_status: int = 201, create_body: dict | None = None):
        self.requests: list[httpx.Request] = []
        self.create_status, self.create_body = create_status, create_body
        self.client = replicate.Client(api_token=TOKEN, transport=httpx.MockTransport(self.answer))

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path in (
            "/v1/predictions",
            "/v1/models/example-owner/video-model/predictions",
        ):
            if self.create_body is not None:
                return httpx.Response(self.create_status, json=self.create_body)
            created = sum(1 for r in self.requests if r.url.path.endswith("/predictions"))
            return httpx.Response(
                201, json={**fixture("prediction_starting.json"), "id": f"prediction{created}"}
            )
        if request.method == "POST" and path.endswith("/cancel"):
            return httpx.Response(
                200, json={**fixture("prediction_canceled.json"), "id": path.split("/")[3]}
            )
        if request.method == "GET" and path == "/v1/webhooks/default/secret":
            return httpx.Response(200, json=fixture("webhook_secret.json"))
        return httpx.Response(404, json={"detail": "not found", "status": 404})

    def creates(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith("/predictions")]


def test_starting_a_prediction_sends_the_version_input_webhook_and_token():
    api = FakeReplicate()
    inputs = inputs_for_tier(TEXT_SHOT, 2)
    prediction = start_prediction(api.client, VERSION, inputs, PUBLIC_URL + "/replicate-webhook")
    assert prediction["status"] == "starting" and prediction["id"] == "prediction1"
    (request,) = api.requests
    assert (request.method, str(request.url)) == (
        "POST",
        "https://api.replicate.com/v1/predictions",
    )
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {
        "version": VERSION,
        "input": {
            "tier": 2,
            "prompt": "a lighthouse in a storm",
            "negative_prompt": "",
            "output_format": "mp4",
            "seed": 42,
        },
        "webhook": "https://shots.example.com/replicate-webhook",
        "webhook_events_filter": ["start", "logs", "completed"],
    }
    assert WEBHOOK_EVENTS == ["start", "logs", "completed"]


def test_a_model_name_without_a_version_uses_the_models_endpoint():
    api = FakeReplicate()
    start_prediction(
        api.client, "example-owner/video-model", {"tier": 2, "prompt": "p"}, PUBLIC_URL
    )
    (request,) = api.requests
    assert (
        str(request.url)
        == "https://api.replicate.com/v1/models/example-owner/video-model/predictions"
    )
    assert "version" not in json.loads(request.content)


def test_cancelling_posts_to_the_predictions_cancel_url():
    api = FakeReplicate()
    prediction = cancel_prediction(api.client, "hdwst0bb05rgp0cf0p29mzk2am")
    (request,) = api.requests
    assert (request.method, str(request.url)) == (
        "POST",
        "https://api.replicate.com/v1/predictions/hdwst0bb05rgp0cf0p29mzk2am/cancel",
    )
    assert (
        request.headers["Authorization"] == f"Bearer {TOKEN}" and prediction["status"] == "canceled"
    )


def test_the_signing_secret_comes_from_the_account():
    api = FakeReplicate()
    assert api.client.webhooks.default.secret().key == SECRET
    assert str(api.requests[0].url) == "https://api.replicate.com/v1/webhooks/default/secret"


def test_an_input_replicate_refuses_is_shown_once_and_not_retried():
    api = FakeReplicate(create_status=422, create_body=fixture("error_422_input.json"))
    board = ShotBoard(api.client, VERSION, PUBLIC_URL, SECRET)
    status = board.status(board.start(TEXT_SHOT))
    assert (status["action"], status["message"]) == (
        SHOW_ERROR,
        "input.width: Must be less than or equal to 1024",
    )
    assert len(api.requests) == 1


def test_a_wrong_version_is_raised_to_the_operator():
    api = FakeReplicate(create_status=422, create_body=fixture("error_422_version.json"))
    board = ShotBoard(api.client, VERSION, PUBLIC_URL, SECRET)
    with pytest.raises(ReplicateError, match="Invalid version"):
        board.start(TEXT_SHOT)
    (state,) = board.shots.values()
    assert state.step.action == SHOW_ERROR  # the browser is not left waiting


class Webhooks:
    """Signs prediction bodies as Replicate would and delivers them to a ShotBoard."""

    def __init__(self, board: ShotBoard):
        self.board, self.count = board, 0

    def deliver(self, name: str, prediction_id: str, webhook_id: str | None = None, **changes):
        body = json.dumps({**fixture(name), "id": prediction_id, **changes})
        self.count += 1
        headers = signed_headers(body, webhook_id or f"msg_{self.count}", int(time.time()))
        return self.board.on_webhook(headers, body.encode())


def test_a_shot_follows_its_webhooks_and_falls_back_from_tier_2_to_tier_3():
    api = FakeReplicate()
    board = ShotBoard(api.client, VERSION, PUBLIC_URL, SECRET)
    shot_id = board.start(TEXT_SHOT, tried=(1,))  # the frontend's tier 1 has failed
    webhooks = Webhooks(board)
    assert [create["input"]["tier"] for create in api.creates()] == [2]

    webhooks.deliver("webhook_processing.json", "prediction1", webhook_id="msg_a")
    assert (board.status(shot_id)["percent"], board.status(shot_id)["stage"]) == (56, "decoding")
    # Replicate retries a webhook with the same id; an older "logs" event may arrive late.
    assert webhooks.deliver("webhook_processing.json", "prediction1", webhook_id="msg_a") is None
    webhooks.deliver(
        "webhook_processing.json",
        "prediction1",
        logs="  6%|▌         | 1/18 [00:01<00:18,  1.08s/it, denoising]\n",
    )
    assert board.status(shot_id)["percent"] == 56

    webhooks.deliver("webhook_failed_crash.json", "prediction1")
    assert [create["input"]["tier"] for create in api.creates()] == [2, 3]
    assert api.creates()[1]["input"] == inputs_for_tier(TEXT_SHOT, 3)
    status = board.status(shot_id)
    assert (status["tier"], status["action"]) == (3, WAIT) and "Worker crashed" in status["message"]

    # A late event of the failed attempt changes nothing; the new prediction's success is shown.
    webhooks.deliver("webhook_processing.json", "prediction1")
    webhooks.deliver("webhook_succeeded.json", "prediction2")
    status = board.status(shot_id)
    assert (status["action"], status["percent"], status["tier"]) == (SHOW_VIDEO, 100, 3)
    assert status["video_url"] == fixture("webhook_succeeded.json")["output"]
    assert TOKEN not in json.dumps(status) and SECRET not in json.dumps(status)


def test_a_cancelled_shot_ends_canceled_without_another_tier():
    api = FakeReplicate()
    board = ShotBoard(api.client, VERSION, PUBLIC_URL, SECRET)
    shot_id = board.start(TEXT_SHOT)
    board.cancel(shot_id)
    assert (
        str(api.requests[-1].url) == "https://api.replicate.com/v1/predictions/prediction1/cancel"
    )
    assert board.status(shot_id)["action"] == CANCELED  # from the cancel's own answer
    Webhooks(board).deliver("prediction_canceled.json", "prediction1")
    assert board.status(shot_id)["action"] == CANCELED
    assert len(api.creates()) == 1


def test_a_bad_input_failure_is_shown_without_another_tier():
    api = FakeReplicate()
    board = ShotBoard(api.client, VERSION, PUBLIC_URL, SECRET)
    shot_id = board.start(TEXT_SHOT)
    Webhooks(board).deliver("webhook_failed_input.json", "prediction1")
    assert board.status(shot_id)["message"].startswith("width must be a multiple of 8")
    assert len(api.creates()) == 1


def test_a_forged_webhook_changes_nothing():
    api = FakeReplicate()
    board = ShotBoard(api.client, VERSION, PUBLIC_URL, SECRET)
    shot_id = board.start(TEXT_SHOT)
    body = json.dumps(
        {
            **fixture("webhook_succeeded.json"),
            "id": "prediction1",
            "output": "https://evil.example/x.mp4",
        }
    )
    forged = "whsec_" + base64.b64encode(b"not Replicate's key").decode()
    with pytest.raises(WebhookRejected):
        board.on_webhook(
            signed_headers(body, "msg_forged", int(time.time()), secret=forged), body.encode()
        )
    assert board.status(shot_id)["action"] == WAIT and board.status(shot_id)["video_url"] is None


def test_the_http_endpoints_serve_the_browser_and_check_webhooks():
    api = FakeReplicate()
    board = ShotBoard(api.client, VERSION, PUBLIC_URL, SECRET)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(board))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        created = requests.post(
            f"{url}/shots", json={"prompt": "a lighthouse in a storm", "tried": [1]}, timeout=10
        )
        assert created.status_code == 201 and created.json()["tier"] == 2
        shot = created.json()["shot"]
        body = json.dumps({**fixture("webhook_processing.json"), "id": "prediction1"})
        assert (
            requests.post(
                f"{url}/replicate-webhook",
                data=body,
                timeout=10,
                headers={
                    "Webhook-Id": "msg_1",
                    "Webhook-Timestamp": str(int(time.time())),
                    "Webhook-Signature": "v1,AAAA",
                },
            ).status_code
            == 401
        )
        headers = signed_headers(body, "msg_2", int(time.time()))
        assert (
            requests.post(
                f"{url}/replicate-webhook", data=body, headers=headers, timeout=10
            ).status_code
            == 200
        )
        assert requests.get(f"{url}/shots/{shot}", timeout=10).json()["percent"] == 56
        assert requests.post(f"{url}/shots/{shot}/cancel", timeout=10).status_code == 202
        assert requests.post(f"{url}/shots", json={"colour": "red"}, timeout=10).status_code == 400
        assert requests.get(f"{url}/shots/unknown", timeout=10).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_the_example_runs_as_a_command():
    for command in (["--help"], ["serve", "--help"], ["start", "--help"]):
        result = subprocess.run(
            [sys.executable, "examples/frontend_server.py", *command],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "usage: frontend_server.py" in result.stdout
    assert "--model" in result.stdout and "--webhook-url" in result.stdout
