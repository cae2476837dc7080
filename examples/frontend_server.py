"""How a web app's server drives this model on Replicate: start, follow by webhook, cancel a shot.

The browser talks only to this server; this server talks to Replicate with the API token, which
never leaves it. For each shot it starts a prediction with a webhook, verifies every webhook's
signature before reading it, turns the model's log into a percentage the browser polls, and on a
failure either shows the model's own message (a bad input, which no retry can fix) or starts the
next tier. The decisions are small pure functions (`parse_progress`, `verify_webhook`,
`decide`, ...) tested without a network in tests/test_examples.py; the rest is plumbing.

Run it for real (Replicate must reach --public-url over HTTPS, e.g. through a tunnel):

    export REPLICATE_API_TOKEN=r8_...      # stays on this server
    python examples/frontend_server.py serve --model <owner>/<name>:<version id> \\
        --public-url https://<public host> --port 8000
    curl -X POST localhost:8000/shots -d '{"prompt": "a lighthouse in a storm", "seed": 42}'
    curl localhost:8000/shots/<shot>            # what the browser polls: percent, stage, video_url
    curl -X POST localhost:8000/shots/<shot>/cancel
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import replicate
from replicate.exceptions import ReplicateError
from replicate.webhook import InvalidSecretKeyError, WebhookSigningSecret

# The regex Replicate's clients turn logs into progress with (replicate-python's
# Prediction.Progress). This model prints one tqdm bar over the whole prediction, one update a line,
# with the stage after the counts: ` 37%|███▋      | 37/100 [00:01<00:02, 25.0it/s, denoising]`.
PROGRESS_REGEX = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)\/(\d+)")
STAGE_REGEX = re.compile(r",\s*([a-z][a-z ]*)\]\s*$")
# "start" and "completed" are always sent; "logs" at most every 500 ms
# (https://replicate.com/docs/topics/webhooks/setup-webhook). No "output": the video is one file.
WEBHOOK_EVENTS = ["start", "logs", "completed"]
# How far a webhook's timestamp may be from our clock, either way, before it counts as a replay:
# 5 minutes, what Svix's libraries enforce (https://docs.svix.com/receiving/verifying-payloads/why);
# Replicate signs the way Svix does (the same headers and test vector).
WEBHOOK_TOLERANCE_SECONDS = 300
WEBHOOK_PATH = "/replicate-webhook"
# Tier 1 is a hosted API the frontend calls itself; when it fails, this server takes over. Cheapest
# and quickest first, so a failure costs least and the user waits least: tier 2 (AnimateDiff,
# 512×512) before tier 3 (SDXL keyframe + SVD, 1024×576; several times tier 2's FLOPs per video),
# and tier 4 (Wan 2.2, 720p at 24 fps; over ten times tier 3's) last (bench/reports/COST.md). A
# shot started on a heavier tier falls back to the lighter ones. A container that loads only some
# tiers (LOADED_TIERS) refuses the others as a bad input: list only the tiers it loads here.
FALLBACK_ORDER = (2, 3, 4)

# What the web app does next with a shot (Step.action).
WAIT, SHOW_VIDEO, SHOW_ERROR, FALL_BACK, CANCELED = (
    "wait",
    "show_video",
    "show_error",
    "fall_back",
    "canceled",
)
FINAL_ACTIONS = (SHOW_VIDEO, SHOW_ERROR, CANCELED)


# --- Progress ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    percent: int
    current: int
    total: int
    stage: (
        str | None
    )  # this model's stage names: keyframe, animating, denoising, decoding, encoding


def parse_progress(logs: str | None) -> Progress | None:
    """The last progress line of a prediction's logs, as Replicate's clients read it."""
    # Split on \r too: a plain tqdm bar redraws with \r (this model prints whole lines).
    for line in reversed(re.split(r"[\r\n]", logs or "")):
        match = PROGRESS_REGEX.match(line.strip())
        if match:
            percent, current, total = map(int, match.groups())
            stage = STAGE_REGEX.search(line)
            return Progress(percent, current, total, stage.group(1) if stage else None)
    return None


# --- Webhook signatures -----------------------------------------------------------------------


class WebhookRejected(Exception):
    """A webhook that must not be trusted; the reason never contains the secret."""


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    now: float | None = None,
    tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
) -> dict:
    """Check a webhook's signature and age (https://replicate.com/docs/topics/webhooks/verify-webhook)
    and return its prediction. `body` must be the raw bytes received: re-encoded JSON would not
    match."""
    headers = {name.lower(): value for name, value in headers.items()}
    try:
        sent_at = int(headers.get("webhook-timestamp", ""))
    except ValueError:
        raise WebhookRejected("missing or malformed webhook-timestamp header") from None
    age = (time.time() if now is None else now) - sent_at
    # A signed body replayed later still verifies; only its timestamp gives it away.
    if abs(age) > tolerance:
        raise WebhookRejected(
            f"webhook-timestamp is {age:+.0f} s from our clock (allowed: ±{tolerance} s)"
        )
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        # HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}" with the base64 part of the
        # whsec_ secret, compared in constant time against each signature in webhook-signature.
        replicate.webhooks.validate(
            headers=headers, body=text, secret=WebhookSigningSecret(key=secret)
        )
    except InvalidSecretKeyError:  # its own message quotes the secret
        raise WebhookRejected("the signing secret is not of the form whsec_<base64>") from None
    except (
        ValueError
    ) as error:  # the client's WebhookValidationErrors, and base64 that does not decode
        raise WebhookRejected(f"signature check failed: {error}") from error
    return json.loads(text)


# --- Errors a user can act on -----------------------------------------------------------------


def model_input_error(error: str) -> str | None:
    """The user's message when a failed prediction's `error` is about the request itself, else None.

    Forms recorded from Cog's server running this model (tests/fixtures/replicate/):
    our own check, naming the field: "Prediction failed: Prediction failed: InputError: width must
    be from 64 to 1024 for tier 2; got 63"; Cog fetching or decoding `image` (its only file input)
    before our code runs: "Input validation error: <why>"; a field `run()` does not declare, without
    a schema: "... TypeError: Runner.run() got an unexpected keyword argument 'colour'".
    """
    if "InputError: " in error:
        return error.split("InputError: ", 1)[1]
    if error.startswith("Input validation error: "):
        return "image could not be read: " + error.removeprefix("Input validation error: ")
    unknown = re.search(r"unexpected keyword argument '(\w+)'", error)
    if unknown:
        return f"unknown input {unknown.group(1)!r}"
    return None


def api_input_error(error: ReplicateError) -> str | None:
    """The user's message when creating the prediction was refused for its input (HTTP 422), else
    None.

    Replicate checks the input against the model's schema before running it and answers, e.g.,
    {"title": "Input validation failed", "detail": "- input.width: Must be less than or equal to
    1024\\n", ...}. Cog's own server, with a schema, answers {"detail": [{"loc": ["body", "input",
    "width"], "msg": ...}]}. Another 422 ("Invalid version or not permitted") is this server's
    configuration, not the user's input, and returns None.
    """
    if error.status != 422:
        return None
    detail: Any = error.detail
    if isinstance(detail, list):
        return "; ".join(f"{item['loc'][-1]}: {item['msg']}" for item in detail)
    if error.title == "Input validation failed" and detail:
        return "; ".join(line.removeprefix("- ") for line in detail.strip().splitlines())
    return None


# --- What to do next --------------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """What the screenwriter asked for, whatever the tier. Sizes, frame counts and fps are left to
    each tier's defaults (512×512 16 frames, 1024×576 25 frames, 1280×704 121 frames): the models
    were trained there."""

    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None  # the same seed on every tier, so a shot can be reproduced
    image: str | None = None  # a first frame to animate (http(s) URL or data URI): tiers 3, 4
    output_format: str = "mp4"


def can_render(tier: int, shot: Shot) -> bool:
    # AnimateDiff (tier 2) is text-only: it would ignore a first frame, so such a shot skips it.
    # Tier 4 needs a prompt or an image; tier 3 is left to say what is missing from an empty shot.
    if tier == 2:
        return shot.image is None and bool(shot.prompt.strip())
    return tier == 3 or shot.image is not None or bool(shot.prompt.strip())


def next_tier(shot: Shot, tried: tuple[int, ...]) -> int | None:
    return next(
        (tier for tier in FALLBACK_ORDER if tier not in tried and can_render(tier, shot)), None
    )


def inputs_for_tier(shot: Shot, tier: int) -> dict[str, Any]:
    inputs: dict[str, Any] = dict(
        tier=tier,
        prompt=shot.prompt,
        negative_prompt=shot.negative_prompt,
        output_format=shot.output_format,
    )
    if shot.seed is not None:
        inputs["seed"] = shot.seed
    if tier in (3, 4) and shot.image:
        inputs["image"] = shot.image
    return inputs


@dataclass(frozen=True)
class Step:
    action: str
    percent: int = 0
    stage: str | None = None
    video_url: str | None = None
    message: str | None = None  # for the user
    next_tier: int | None = None  # FALL_BACK: the tier to try next


def decide(prediction: Mapping[str, Any], shot: Shot, tried: tuple[int, ...]) -> Step:
    """What to do after a prediction object (a webhook body or an API response) of the last tier
    tried."""
    status = prediction.get("status")
    if status in ("starting", "processing"):
        progress = parse_progress(prediction.get("logs"))
        return (
            Step(WAIT, percent=progress.percent, stage=progress.stage) if progress else Step(WAIT)
        )
    if status == "succeeded":
        # One file comes back as one URL (a list for models that return several). Replicate deletes
        # API predictions' outputs after an hour: copy the video to your own storage now.
        output = prediction.get("output")
        return Step(
            SHOW_VIDEO, percent=100, video_url=output[0] if isinstance(output, list) else output
        )
    if status == "canceled":
        return Step(CANCELED, message="canceled")  # asked for by us or the user: never retried
    if status == "failed":
        error = prediction.get("error") or "the prediction failed without a message"
        bad_input = model_input_error(error)
        if bad_input:
            return Step(SHOW_ERROR, message=bad_input)  # the same request fails on every try
        tier = next_tier(shot, tried)
        if tier is None:
            return Step(
                SHOW_ERROR,
                message=f"video generation failed on tiers {', '.join(map(str, tried))}: {error}",
            )
        failed = f"tier {tried[-1]}" if tried else "the last tier"
        return Step(
            FALL_BACK, next_tier=tier, message=f"{failed} failed ({error}); trying tier {tier}"
        )
    raise ValueError(f"unknown prediction status {status!r}")


# --- Calls to Replicate -----------------------------------------------------------------------


def prediction_target(model: str) -> dict[str, str]:
    """`owner/name:version` runs that version (what a community model like this one needs, and
    what you tested); `owner/name` alone runs the latest version of an official model only."""
    return {"version": model} if ":" in model else {"model": model}


def start_prediction(client: replicate.Client, model: str, inputs: dict, webhook_url: str) -> dict:
    prediction = client.predictions.create(
        **prediction_target(model),
        input=inputs,
        webhook=webhook_url,
        webhook_events_filter=WEBHOOK_EVENTS,
    )
    return prediction.dict()


def cancel_prediction(client: replicate.Client, prediction_id: str) -> dict:
    return client.predictions.cancel(prediction_id).dict()


# --- The shots this server follows (in memory here; a database in a real app) ------------------


@dataclass
class ShotState:
    shot: Shot
    tried: tuple[int, ...] = ()
    prediction_id: str | None = None
    step: Step = field(default_factory=lambda: Step(WAIT))


class ShotBoard:
    def __init__(self, client: replicate.Client, model: str, public_url: str, webhook_secret: str):
        self.client, self.model, self.secret = client, model, webhook_secret
        self.webhook_url = public_url.rstrip("/") + WEBHOOK_PATH
        self.shots: dict[str, ShotState] = {}
        self.shot_of_prediction: dict[str, str] = {}
        self.webhooks_seen: set[str] = set()  # a retried webhook keeps its webhook-id
        self.lock = threading.Lock()

    def start(self, shot: Shot, tier: int | None = None, tried: tuple[int, ...] = ()) -> str:
        """Start a shot on `tier`, or on the first tier of the fallback order not in `tried`
        (`tried=(1,)` when the frontend's own tier 1 has already failed)."""
        shot_id = uuid.uuid4().hex
        with self.lock:
            self.shots[shot_id] = ShotState(shot, tried)
        tier = tier or next_tier(shot, tried)
        if tier is None:
            self._settle(
                shot_id, Step(SHOW_ERROR, message="no tier left that can render this shot")
            )
        else:
            self._attempt(shot_id, tier)
        return shot_id

    def _attempt(self, shot_id: str, tier: int) -> None:
        state = self.shots[shot_id]
        try:
            prediction = start_prediction(
                self.client, self.model, inputs_for_tier(state.shot, tier), self.webhook_url
            )
        except ReplicateError as error:
            message = api_input_error(error)
            # Anything but a refused input (token, version, rate limit, outage) is the operator's
            # problem: the user sees that the shot failed, the server's caller gets the error.
            self._settle(
                shot_id, Step(SHOW_ERROR, message=message or f"could not start tier {tier}")
            )
            if message is None:
                raise
            return
        with self.lock:
            state.tried += (tier,)
            state.prediction_id = prediction["id"]
            # Keep "tier 2 failed (...); trying tier 3" in view while the next tier runs.
            state.step = Step(
                WAIT, message=state.step.message if state.step.action == FALL_BACK else None
            )
            self.shot_of_prediction[prediction["id"]] = shot_id

    def _settle(self, shot_id: str, step: Step) -> None:
        with self.lock:
            self.shots[shot_id].step = step

    def on_webhook(self, headers: Mapping[str, str], body: bytes) -> Step | None:
        """Handle one webhook; raises WebhookRejected before reading an unverified body."""
        prediction = verify_webhook(headers, body, self.secret)
        webhook_id = {name.lower(): value for name, value in headers.items()}["webhook-id"]
        with self.lock:
            shot_id = self.shot_of_prediction.get(prediction["id"])
            if webhook_id in self.webhooks_seen or shot_id is None:
                return None  # a retry of one already handled, or not a prediction of ours
            self.webhooks_seen.add(webhook_id)
            state = self.shots[shot_id]
            if prediction["id"] != state.prediction_id or state.step.action in FINAL_ACTIONS:
                return state.step  # a late event of an attempt already over
            step = decide(prediction, state.shot, state.tried)
            if step.action == WAIT:  # webhooks can arrive out of order: never move the bar back
                step = replace(
                    step, percent=max(step.percent, state.step.percent), message=state.step.message
                )
            state.step = step
        if step.action == FALL_BACK:
            # Replicate wants a 2xx within a few seconds; one API call is quick enough here (a
            # busier server would queue it). If it fails the shot shows the error; the webhook
            # itself was handled, so Replicate is not asked to send it again.
            try:
                self._attempt(shot_id, step.next_tier)
            except ReplicateError as error:
                print(
                    f"shot {shot_id}: starting tier {step.next_tier} failed: {error!r}", flush=True
                )
        return self.shots[shot_id].step

    def cancel(self, shot_id: str) -> None:
        """Cancel the shot's running prediction; its `canceled` webhook settles the shot,
        unretried."""
        state = self.shots[shot_id]
        if state.prediction_id and state.step.action not in FINAL_ACTIONS:
            prediction = cancel_prediction(self.client, state.prediction_id)
            if prediction["status"] == "canceled":  # no need to wait for the webhook to say so
                self._settle(shot_id, decide(prediction, state.shot, state.tried))

    def status(self, shot_id: str) -> dict:
        """What the browser sees: no token, no secret, no Replicate URL but the video's."""
        state = self.shots[shot_id]
        return {
            "shot": shot_id,
            "tier": state.tried[-1] if state.tried else None,
            **asdict(state.step),
        }


# --- HTTP: the browser's endpoints and Replicate's webhook --------------------------------------


def make_handler(board: ShotBoard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = self.path.strip("/").split("/")
            if self.path == WEBHOOK_PATH:
                try:
                    board.on_webhook(dict(self.headers.items()), body)
                except WebhookRejected as error:
                    return self.reply(401, {"error": str(error)})
                return self.reply(200, {})
            if parts == ["shots"]:
                try:
                    request = json.loads(body or b"{}")
                    tier, tried = request.pop("tier", None), tuple(request.pop("tried", ()))
                    shot = Shot(**request)
                except (TypeError, ValueError) as error:
                    return self.reply(
                        400,
                        {
                            "error": (
                                f"a shot is a JSON object of {list(Shot.__annotations__)}: {error}"
                            )
                        },
                    )
                return self.reply(201, board.status(board.start(shot, tier, tried)))
            if (
                len(parts) == 3
                and parts[0] == "shots"
                and parts[2] == "cancel"
                and parts[1] in board.shots
            ):
                board.cancel(parts[1])
                return self.reply(202, board.status(parts[1]))
            self.reply(404, {"error": "not found"})

        def do_GET(self):
            parts = self.path.strip("/").split("/")
            if len(parts) == 2 and parts[0] == "shots" and parts[1] in board.shots:
                return self.reply(200, board.status(parts[1]))
            self.reply(404, {"error": "not found"})

        def reply(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--model",
        default=os.environ.get("REPLICATE_MODEL"),
        help="<owner>/<name>:<version id> (default: $REPLICATE_MODEL)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", parents=[model], help="the browser's endpoints and Replicate's webhook"
    )
    serve.add_argument(
        "--public-url", required=True, help="https URL at which Replicate reaches this server"
    )
    serve.add_argument("--port", type=int, default=8000)
    start = commands.add_parser("start", parents=[model], help="start one prediction and print it")
    start.add_argument("--prompt", required=True)
    start.add_argument("--tier", type=int, choices=(2, 3), default=2)
    start.add_argument("--seed", type=int)
    start.add_argument("--webhook-url", required=True)
    cancel = commands.add_parser("cancel", help="cancel a prediction")
    cancel.add_argument("prediction_id")
    args = parser.parse_args()

    client = replicate.Client(
        api_token=os.environ["REPLICATE_API_TOKEN"]
    )  # never sent to a browser
    if args.command == "cancel":
        print(json.dumps(cancel_prediction(client, args.prediction_id), indent=1))
        return
    if not args.model:
        parser.error("--model <owner>/<name>:<version id> (or $REPLICATE_MODEL) is required")
    if args.command == "start":
        inputs = inputs_for_tier(Shot(prompt=args.prompt, seed=args.seed), args.tier)
        print(json.dumps(start_prediction(client, args.model, inputs, args.webhook_url), indent=1))
        return
    # The account's signing secret, fetched once (https://replicate.com/docs/topics/webhooks/verify-webhook).
    secret = os.environ.get("REPLICATE_WEBHOOK_SECRET") or client.webhooks.default.secret().key
    board = ShotBoard(client, args.model, args.public_url, secret)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(board))
    print(f"Listening on 127.0.0.1:{args.port}; webhooks expected at {board.webhook_url}")
    server.serve_forever()


if __name__ == "__main__":
    main()
