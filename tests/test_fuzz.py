"""Property-based abuse of the input contract through Cog's real server: whatever is sent, the
answer is a success or a failure that names a field, the worker lives on (the server is READY
after every request), no file the request points at is read, and nothing is written outside the
prediction's own output. Each request's input classes and outcome are recorded as junit
properties, which scripts/reliability.py tallies in docs/RELIABILITY.md."""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import CLIPTokenizer

from pipelines.images import load_start_image
from pipelines.inputs import CAMERA_MOTION_CHOICES, InputError, playback_rates, resolve_request
from pipelines.prompts import MIN_READABLE_SHARE
from scripts.make_tiny_weights import _byte_to_unicode, write_clip_tokenizer
from tests.support import REPO
from tests.support.cog_server import REFUSED_BY_SCHEMA, refused_fields
from tests.support.declared_inputs import declared_inputs, refused_by_schema

# Run and counted by `python -m scripts.reliability` (docs/RELIABILITY.md).
pytestmark = pytest.mark.reliability

DECLARED = declared_inputs()  # run()'s inputs, as `cog build` reads them
NASTY_TEXT = {
    "": "empty",
    " ": "blank",
    "\n\t": "blank",
    "🎬🌊🐙" * 40: "emoji",
    "مشهد على الشاطئ عند الغروب": "right-to-left",
    "\u202eevil\u202c": "right-to-left",
    "\x00nul": "control characters",
    "a" * 5000: "5000 characters",
    "word " * 300: "far past CLIP's 77 tokens",
    "../../etc/passwd": "path-like",
    "file:///etc/passwd": "path-like",
    "{{7*7}}": "template or SQL",
    "'; DROP TABLE videos; --": "template or SQL",
    "ฉากกลางคืน ฝนตกบนถนนในเมือง": "Thai",
    "ฉากกลางคืน, neon signs, ฝนตก": "Thai mixed with English",
    "Ночная сцена, дождь на улице": "a script CLIP cannot read",
}
# JSON has no NaN or Infinity (test_inputs.py checks those against resolve_request directly).
WRONG_TYPES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
BOUNDARY_INVALID = st.sampled_from([-1, 0, 7, 61, 97, 1025, 2**32, -(2**31), 10**30, 0.5, 1e308])


def _png_data_uri(payload: bytes | None = None) -> str:
    if payload is None:
        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), (200, 90, 30)).save(buffer, format="PNG")
        payload = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(payload).decode()


SENTINEL = "<sentinel>"  # replaced by the path of a file no request may read
IMAGES = {
    "a PNG as a data URI": _png_data_uri(),
    "a local path": SENTINEL,
    "a file:// URL": "file://" + SENTINEL,
    "/etc/passwd": "/etc/passwd",
    "an oversized data URI (34 MB)": "data:image/png;base64," + "A" * (34 * 2**20),
    "text sent as a PNG": _png_data_uri(b"not an image at all"),
    "ftp:// or blank": "ftp://example.com/a.png",
    # Cog reads URLs and data URIs declared as a Path itself, before run(): these fail in its check.
    "a malformed URL (Cog's check)": "http://",
    "a data URI that is not base64 (Cog's check)": "data:image/png;base64,!!!notbase64",
    "an unreachable URL (Cog's download)": "http://127.0.0.1:1/start.png",
}
COG_CHECKS = {value for label, value in IMAGES.items() if "(Cog's" in label}

# Valid values are kept cheap (small sizes, few steps): the cost of a video is not what is fuzzed.
CHEAP_VALID = {
    "tier": st.sampled_from([2, 2, 3]),
    "prompt": st.one_of(
        st.text(min_size=1, max_size=300).filter(str.strip), st.sampled_from(sorted(NASTY_TEXT))
    ),
    "negative_prompt": st.one_of(st.text(max_size=100), st.sampled_from(sorted(NASTY_TEXT))),
    "num_frames": st.sampled_from([8, 9, 16]),
    "width": st.sampled_from([64, 72, 128]),
    "height": st.sampled_from([64, 80]),
    "fps": st.integers(1, 30),
    "num_inference_steps": st.integers(1, 2),
    "guidance_scale": st.floats(1.0, 20.0),
    "seed": st.one_of(st.none(), st.sampled_from([0, 2**32 - 1]), st.integers(0, 2**32 - 1)),
    "output_format": st.sampled_from(["mp4", "gif", "webm"]),
    "image": st.none(),  # drawn below, for tier 3
    "motion_bucket_id": st.integers(1, 255),
    "noise_aug_strength": st.floats(0.0, 1.0),
    "draft": st.sampled_from([False, False, True]),
    "camera_motion": st.one_of(st.just("none"), st.sampled_from(CAMERA_MOTION_CHOICES)),
    "camera_motion_strength": st.floats(0.0, 1.5),
    # Frames within the shortest clip drawn above (8): a schedule stays cheap (one FreeNoise window).
    "prompt_schedule": st.sampled_from(
        [
            "",
            "",
            "0: a door opens",
            "0: a door opens | 4: a man walks in",
            "0: 🎬 | 3: مشهد | 7: \u202eevil\u202c",
        ]
    ),
    # A multiple of fps (at most 3×, to stay cheap), made a rate in requests_to_send.
    "interpolate_to_fps": st.sampled_from([1, 1, 2, 3]),
    "translate_prompt": st.booleans(),
    "disable_safety_checker": st.booleans(),  # the tiny checker never flags: both succeed
}


@st.composite
def requests_to_send(draw):
    """A valid, cheap request with 0 to 3 of its fields broken (wrong type, out of range, left
    out) and sometimes a field that does not exist, so both outcomes are well represented."""
    inputs = {name: draw(strategy) for name, strategy in CHEAP_VALID.items()}
    if inputs["tier"] == 3 and draw(st.booleans()):
        inputs["image"] = draw(st.sampled_from(list(IMAGES.values())))
    if inputs["tier"] == 3:
        inputs["prompt_schedule"] = (
            ""  # tier 2's (tier 3 refuses one, naming it, like any broken field)
        )
    # Valid rates depend on fps and the format: the drawn multiple, left out where it is not one.
    rate = inputs.pop("interpolate_to_fps") * inputs["fps"]
    if rate != inputs["fps"] and rate in playback_rates(inputs["fps"], inputs["output_format"]):
        inputs["interpolate_to_fps"] = rate
    for name in draw(st.lists(st.sampled_from(sorted(DECLARED)), max_size=3, unique=True)):
        breakage = draw(st.sampled_from(["wrong type", "boundary", "omit"]))
        if breakage == "omit":
            # An omitted size would take the tier default (512×512 × 16 frames): too slow here.
            if name not in ("width", "height", "num_frames", "num_inference_steps"):
                inputs.pop(name, None)
        else:
            inputs[name] = draw(WRONG_TYPES if breakage == "wrong type" else BOUNDARY_INVALID)
    if draw(st.sampled_from(range(10))) == 5:  # one in ten (integers() would favour 0)
        inputs[draw(st.sampled_from(["image_url", "steps", "__class__", ""]))] = "x"
    # Any other text that Cog would take for a URL or data URI: what Cog does with it is Cog's.
    image = inputs.get("image")
    assume(
        not (
            isinstance(image, str)
            and image not in IMAGES.values()
            and image.startswith(("http", "data:"))
        )
    )
    event(expected_outcome(inputs))
    return inputs


def expected_outcome(inputs: dict, schema: bool = False) -> str:
    """'succeeded', 'Cog' (Cog's own check refuses it before run()), 'schema' (Cog, serving the
    schema, answers 422), or the field a failure names."""
    if schema:
        if schema_refuses(inputs):
            return "schema"
        inputs = {
            name: value for name, value in inputs.items() if name in DECLARED
        }  # Cog drops the rest
    image = inputs.get("image")
    if isinstance(image, str) and image in COG_CHECKS:
        return "Cog"
    if set(inputs) - set(DECLARED):
        return "Cog"  # run() has no such parameter: Cog refuses it, naming it
    try:
        request = resolve_request(inputs)
    except InputError as error:
        return str(error).split()[0]
    if request.translate_prompt and (
        request.tier == 2 or request.image is None
    ):  # the text a model reads
        for field in ("prompt", "negative_prompt"):
            if clip_cannot_read(getattr(request, field)):
                return field
        if any(
            clip_cannot_read(text) for _, text in request.prompt_schedule
        ):  # read like the prompt
            return "prompt_schedule"
    try:
        if request.image is not None:
            load_start_image(
                request.image, request.width, request.height
            )  # never a file: see below
    except InputError as error:
        return str(error).split()[0]
    return "succeeded"


@functools.cache
def clip_vocabulary() -> frozenset[str]:
    """The tiny CLIP tokenizer's vocabulary, as scripts/make_tiny_weights.py writes it."""
    with tempfile.TemporaryDirectory() as folder:
        write_clip_tokenizer(Path(folder))
        return frozenset(json.loads((Path(folder) / "vocab.json").read_text()))


def is_thai(character: str) -> bool:
    return "\u0e00" <= character <= "\u0e7f"


def clip_cannot_read(text: str) -> bool:
    """The rule of README "Languages, safety and the keyframe", worked out here from the vocabulary
    file rather than by pipelines/prompts.py's tokenizer: of the letters other than Thai, after
    CLIP's normalisation (NFC, lower case), fewer than half are one vocabulary entry (their UTF-8
    bytes in CLIP's byte alphabet, as a whole word)."""
    to_unicode = _byte_to_unicode()
    letters = [
        c
        for c in unicodedata.normalize("NFC", text).lower()
        if unicodedata.category(c).startswith("L") and not is_thai(c)
    ]
    readable = sum(
        "".join(to_unicode[byte] for byte in c.encode()) + "</w>" in clip_vocabulary()
        for c in letters
    )
    return readable < len(letters) and readable / len(letters) < MIN_READABLE_SHARE


def schema_refuses(inputs: dict) -> set[str]:
    """The fields whose values the schema refuses, judged from run()'s declaration alone."""
    return {
        name
        for name, value in inputs.items()
        if name in DECLARED and refused_by_schema(DECLARED[name], value)
    }


def input_classes(inputs: dict) -> list[str]:
    """What kinds of input a request holds, in the report's words."""
    classes = []
    for name, spec in DECLARED.items():
        if name not in inputs:
            classes.append(f"{name}: left out")
            continue
        value = inputs[name]
        if name in ("prompt", "negative_prompt") and isinstance(value, str):
            classes.append(f"{name}: {NASTY_TEXT.get(value, 'any unicode text')}")
        elif name == "image" and value is not None:
            label = next((label for label, known in IMAGES.items() if known == value), None)
            classes.append(f"image: {label}" if label else "image: wrong type")
        elif spec.type is bool and isinstance(value, bool):
            if value != spec.field.default:
                classes.append(f"{name}: {str(value).lower()}")
        elif name == "seed" and value in (0, 2**32 - 1, 2**32) and type(value) is int:
            classes.append(
                {0: "seed: 0", 2**32 - 1: "seed: 2³²−1", 2**32: "seed: 2³² (beyond)"}[value]
            )
        elif value is not None and not _of_type(value, spec.type):
            classes.append(f"{name}: wrong type")
        elif (
            spec.field.ge is not None
            and isinstance(value, (int, float))
            and not spec.field.ge <= value <= spec.field.le
        ):
            classes.append(f"{name}: out of range")
    classes += ["a field run() does not have"] * bool(set(inputs) - set(DECLARED))
    return classes or ["every field valid, none special"]


def _of_type(value, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected) and not (expected is int and isinstance(value, bool))


def written_places(weights_dir: Path, server) -> set:
    """What a prediction could leave behind where it should not: the weights (every file, with its
    size and mtime), the project's top level, the server's working folder, and the top level of
    the temp folder."""
    weights = {
        (str(path), path.stat().st_size, path.stat().st_mtime_ns)
        for path in weights_dir.rglob("*")
        if path.is_file()
    }
    folders = (REPO, server.app_dir, Path(tempfile.gettempdir()))
    return weights | {str(path) for folder in folders for path in folder.iterdir()}


def allowed_leftover(place) -> bool:
    # The video the last prediction returned stays until the next one (Cog reads it after run()).
    return (
        isinstance(place, str)
        and Path(place).parent == Path(tempfile.gettempdir())
        and Path(place).name.startswith("video-")
    )


def cogs_empty_download(place) -> bool:
    path = Path(place) if isinstance(place, str) else None
    return (
        path is not None
        and path.parent == Path(tempfile.gettempdir())
        and path.name.startswith("tmp")
        and path.is_file()
        and path.stat().st_size == 0
    )


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory) -> Path:
    """A file whose access time is set to 1970: reading it moves the time (relatime updates an
    atime older than the mtime), so a request that read it shows. Checked on a canary first."""
    folder = tmp_path_factory.mktemp("sentinel")
    canary, sentinel = folder / "canary.png", folder / "start.png"
    for path in (canary, sentinel):
        path.write_bytes(b"a file outside the prediction")
        os.utime(path, (0, path.stat().st_mtime))
    canary.read_bytes()
    assert canary.stat().st_atime > 0, (
        f"{folder}'s filesystem does not record reads (noatime): the read check cannot work there"
    )
    return sentinel


@pytest.fixture(scope="module")
def tokenizer(tiny_weights_dir) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(tiny_weights_dir / "stable-diffusion-v1-5" / "tokenizer")


QUICK = dict(width=64, height=64, num_frames=8, num_inference_steps=1)
GUARANTEED = [  # every image class, and the prompts and seeds the issue names, at least once
    *(dict(QUICK, tier=3, prompt="", image=image) for image in IMAGES.values()),
    dict(QUICK, tier=2, prompt="word " * 300, seed=0),
    dict(QUICK, tier=2, prompt="🎬🌊🐙" * 40, seed=2**32 - 1),
    dict(QUICK, tier=3, prompt="مشهد على الشاطئ عند الغروب", negative_prompt="\u202eevil\u202c"),
    dict(QUICK, tier=3, prompt="مشهد على الشاطئ عند الغروب", translate_prompt=False),
    dict(QUICK, tier=2, prompt="ฉากกลางคืน, neon signs, ฝนตก", negative_prompt="Ночная сцена"),
    dict(QUICK, tier=3, prompt="ฉากกลางคืน ฝนตกบนถนนในเมือง", disable_safety_checker=True),
    dict(QUICK, tier=2, prompt="a kite", seed=2**32),
    dict(QUICK, tier=2, prompt="a" * 5000),
    dict(
        QUICK, tier=2, prompt="a kite", prompt_schedule="0: rises | 4: falls", interpolate_to_fps=24
    ),
    # Just outside both ends of every limited field.
    *(
        dict(QUICK, tier=2, prompt="a kite", **{name: value})
        for name, spec in DECLARED.items()
        if spec.field.ge is not None
        for value in (spec.field.ge - 1, spec.field.le + 1)
    ),
]


def with_examples(test):
    for inputs in GUARANTEED:
        test = example(inputs=inputs)(test)
    return test


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@with_examples
@given(inputs=requests_to_send())
def test_any_request_succeeds_or_fails_naming_a_field(
    each_server, tiny_weights_dir, sentinel, tokenizer, record_property, inputs
):
    server = each_server
    inputs = {
        name: value.replace(SENTINEL, str(sentinel)) if isinstance(value, str) else value
        for name, value in inputs.items()
    }
    expected = expected_outcome(inputs, schema=server.schema is not None)

    before = written_places(tiny_weights_dir, server)
    result = server.predict(inputs)
    error = result.get("error") or ""
    if expected == "schema":
        assert result["status"] == REFUSED_BY_SCHEMA, (result["status"], error)
        assert set(refused_fields(result)) == schema_refuses(inputs), result["detail"]
        outcome = "refused by the schema, naming the field"
    elif expected == "Cog":
        assert result["status"] == "failed"
        unknown = sorted(set(inputs) - set(DECLARED))
        assert error.startswith("Input validation error: ") or any(
            f"unexpected keyword argument {name!r}" in error for name in unknown
        ), error
        outcome = "refused by Cog's own check"
    elif expected == "succeeded":
        assert result["status"] == "succeeded", error
        assert result["output"].startswith("data:")
        request = resolve_request(
            {name: value for name, value in inputs.items() if name in DECLARED}
        )
        prompt_read = request.tier == 2 or request.image is None  # SVD alone reads no text
        translated = request.translate_prompt and any(
            map(is_thai, request.prompt)
        )  # another text reaches CLIP
        if (
            prompt_read
            and not translated
            and len(tokenizer(request.prompt).input_ids) > tokenizer.model_max_length
        ):
            assert "CLIP reads the first 77" in result["logs"]  # the user is told what was cut
        outcome = "succeeded"
    else:
        assert result["status"] == "failed"
        message = error.split("InputError: ", 1)[-1]
        # The same field our own check names. (The text can differ: coglet parses integers
        # beyond 64 bits as floats, so 10**30 arrives as 1e+30.)
        assert message.split()[0] == expected, (message, expected)
        assert expected in DECLARED, message
        outcome = "failed naming the field"

    server.wait_until_ready(timeout=10)  # the worker is alive and free
    new = {
        place
        for place in written_places(tiny_weights_dir, server) - before
        if not allowed_leftover(place)
    }
    if expected == "Cog" and new and all(cogs_empty_download(place) for place in new):
        # Cog's downloader opens its temp file before fetching a URL and leaves it when the fetch
        # fails: Cog's doing, before run(); counted in the report rather than hidden.
        outcome += " (Cog left an empty temp file)"
        new = set()
    assert not new, new
    assert sentinel.stat().st_atime == 0, "a request read a local file it named"
    record_property("fuzz_case", json.dumps({"classes": input_classes(inputs), "outcome": outcome}))
