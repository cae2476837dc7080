"""Property-based abuse of the input contract through Cog's real server: whatever is sent, the
answer is a success or a failure that names a field, the worker lives on (the server is READY
after every request), no file the request points at is read, and nothing is written outside the
prediction's own output. Each request's input classes and outcome are recorded as junit
properties, which bench/reliability.py tallies in bench/reports/RELIABILITY.md.

What each request should get is worked out from the rules as README "Inputs" states them, not by
the checks under test (pipelines/inputs.py); in-process, those checks are held to the same rules
over many more requests than the server can answer."""

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
from scripts.cog_server import REFUSED_BY_SCHEMA, refused_fields
from scripts.make_tiny_weights import _byte_to_unicode, write_clip_tokenizer
from tests.support import REPO
from tests.support.declared_inputs import declared_inputs, refused_by_schema

# Run and counted by `python -m bench.reliability` (bench/reports/RELIABILITY.md).
pytestmark = pytest.mark.reliability

DECLARED = declared_inputs()  # run()'s inputs, as `cog build` reads them
# The random budget: requests drawn beyond the explicit examples (GUARANTEED, always sent), sized so
# the suite stays within its few minutes. FUZZ_EXAMPLES=600 runs a long fuzz on purpose
# (docs/TESTING.md); the in-process rule probes are cheap and get fifty times as many.
SERVER_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
IN_PROCESS_EXAMPLES = 50 * SERVER_EXAMPLES
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
    # Frames within the shortest clip drawn above (8): a schedule stays cheap (one FreeNoise
    # window).
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
            # An omitted size would take the tier default (512×512 × 16 frames): too slow on a CPU.
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
    event(outcome_label(expected_outcome(inputs)))
    return inputs


def expected_outcome(inputs: dict, schema: bool = False) -> str | frozenset[str]:
    """'succeeded', 'Cog' (Cog's own check refuses it before run()), 'schema' (Cog, serving the
    schema, answers 422), or the fields a failure may name: every field whose value breaks a rule
    (our checks name the first they meet), or the one field a later check refuses. Worked out
    from the rules, not by the checks under test (pipelines/inputs.py)."""
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
    broken = fields_the_rules_refuse(inputs)
    if broken:
        return frozenset(broken)
    tier, image = taken(inputs, "tier"), taken(inputs, "image") or None
    if taken(inputs, "translate_prompt") and (tier == 2 or image is None):  # the text a model reads
        for field in ("prompt", "negative_prompt"):
            if clip_cannot_read(taken(inputs, field)):
                return frozenset({field})
        schedule = read_schedule(taken(inputs, "prompt_schedule"), taken(inputs, "num_frames"))
        if any(clip_cannot_read(text) for _, text in schedule):  # read like the prompt
            return frozenset({"prompt_schedule"})
    try:
        if image is not None:
            load_start_image(
                image, taken(inputs, "width"), taken(inputs, "height")
            )  # never a file: see below
    except InputError as error:
        return frozenset({str(error).split()[0]})
    return "succeeded"


def outcome_label(expected: str | frozenset[str]) -> str:
    if isinstance(expected, str):
        return expected
    return "refused, naming " + " or ".join(sorted(expected))


# The input rules as README "Inputs" and run()'s descriptions state them, written out again in
# this file so that what the fuzzer expects does not come from the code it tests. Ranges, choices,
# types and lengths shared by the tiers are run()'s declaration (DECLARED); the rest is below.
FRAMES_PER_TIER = {2: (8, 96), 3: (8, 25), 4: (9, 121)}  # num_frames, lowest and highest
SIZE_MULTIPLE = {2: 8, 3: 8, 4: 32}  # width and height
SIZES_PER_TIER = {2: (64, 1024), 3: (64, 1024), 4: (64, 1280)}  # width and height
TIER4_MAX_PIXELS = 1280 * 704  # width × height, landscape or portrait
TIER3_INPUTS = {"motion_bucket_id": 127, "noise_aug_strength": 0.02}  # tier 4: only these values
DRAFT_MAX_FRAMES = 32  # a draft is tier 2 only, and one window without a schedule
GIF_TICKS_PER_SECOND = 100  # interpolate_to_fps for gif must divide it
MAX_SCHEDULE_SEGMENTS = 16
# What a left-out (or null) input becomes where it differs by tier and a rule depends on it.
DEFAULTS_PER_TIER = {
    2: dict(num_frames=16, width=512, height=512, fps=8),
    3: dict(num_frames=25, width=1024, height=576, fps=6),
    4: dict(num_frames=121, width=1280, height=704, fps=24),
}


def taken(inputs: dict, name: str):
    """The value run() works with: as sent, or for a left-out (or null) input its default."""
    if inputs.get(name) is not None:
        return inputs[name]
    if name in DEFAULTS_PER_TIER[2]:
        return DEFAULTS_PER_TIER[taken(inputs, "tier")][name]
    return DECLARED[name].field.default


def within_declaration(name: str, value) -> bool:
    """Whether a value sent is of its input's declared type (an integer is neither true/false
    nor 16.0; a number is an integer or a float, not true/false) and inside its declared range,
    choices and length. An image is checked when it is read."""
    declared = DECLARED[name]
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(declared.type)
    if kinds is None:
        return True
    if not isinstance(value, kinds) or (declared.type is not bool and isinstance(value, bool)):
        return False
    field = declared.field
    return (
        (field.choices is None or value in field.choices)
        and (field.ge is None or field.ge <= value <= field.le)
        and (field.max_length is None or len(value) <= field.max_length)
    )


def read_schedule(text: str, num_frames: int | None) -> list[tuple[int, str]] | None:
    """docs/LONG_SHOTS.md "The schedule": 'frame: text' segments separated by '|', frames whole
    numbers that start at 0, strictly increase and stay below num_frames (None: not judged), every
    text non-blank, at most 16 segments. [] for a blank schedule, None for one that breaks a
    rule."""
    if not text.strip():
        return []
    segments = [segment.partition(":") for segment in text.split("|")]
    if len(segments) > MAX_SCHEDULE_SEGMENTS or not all(
        colon and frame.strip().isascii() and frame.strip().isdigit() and words.strip()
        for frame, colon, words in segments
    ):
        return None
    frames = [int(frame) for frame, _, _ in segments]
    last = frames[-1] if num_frames is None else num_frames - 1
    if frames[0] != 0 or frames != sorted(set(frames)) or frames[-1] > last:
        return None
    return [(frame, words.strip()) for frame, (_, _, words) in zip(frames, segments)]


def fields_the_rules_refuse(inputs: dict) -> set[str]:
    """The fields of a request (with only run()'s inputs) whose values break a rule. A rule that
    depends on another field is judged only when that field is itself fine."""
    sent = {name: value for name, value in inputs.items() if value is not None}  # null: left out
    broken = {name for name, value in sent.items() if not within_declaration(name, value)}
    if "tier" in broken:
        return broken  # every rule below depends on the tier
    tier = taken(inputs, "tier")

    def fine(*names: str) -> bool:
        return not broken & set(names)

    num_frames = taken(inputs, "num_frames")
    low, high = FRAMES_PER_TIER[tier]
    if fine("num_frames") and not low <= num_frames <= high:
        broken.add("num_frames")
    if fine("num_frames") and tier == 4 and num_frames % 4 != 1:  # 4k+1
        broken.add("num_frames")
    for size in ("width", "height"):
        value = taken(inputs, size)
        if fine(size) and (
            value % SIZE_MULTIPLE[tier]
            or not SIZES_PER_TIER[tier][0] <= value <= SIZES_PER_TIER[tier][1]
        ):
            broken.add(size)
    # Judged only when both sides are fine (then both are integers).
    if (
        tier == 4
        and fine("width", "height")
        and taken(inputs, "width") * taken(inputs, "height") > TIER4_MAX_PIXELS
    ):
        broken |= {"width", "height"}
    for name, default in TIER3_INPUTS.items():
        if tier == 4 and fine(name) and taken(inputs, name) != default:
            broken.add(name)
    # An image goes with tier 3 only (an empty value sends none); without one a prompt is needed.
    image = sent.get("image")
    if image and tier == 2:
        broken.add("image")
    if fine("prompt") and not taken(inputs, "prompt").strip() and (tier == 2 or not image):
        broken.add("prompt")
    schedule = taken(inputs, "prompt_schedule")
    if fine("prompt_schedule") and schedule.strip():
        within = num_frames if fine("num_frames") else None
        if tier != 2 or read_schedule(schedule, within) is None:
            broken.add("prompt_schedule")
    # interpolate_to_fps: a whole multiple of fps (so at least fps), for gif a divisor of 100.
    rate, fps = sent.get("interpolate_to_fps"), taken(inputs, "fps")
    if rate is not None and fine("interpolate_to_fps", "fps", "output_format"):
        gif = taken(inputs, "output_format") == "gif"
        if rate % fps or (gif and GIF_TICKS_PER_SECOND % rate):
            broken.add("interpolate_to_fps")
    # Draft mode is tier 2's (up to 32 frames without a schedule) and tier 4's; a camera move needs
    # tier 2's.
    draft = taken(inputs, "draft")
    moving = taken(inputs, "camera_motion") != "none"
    if fine("draft", "camera_motion") and moving and not (draft and tier == 2):
        broken.add("camera_motion")
    if fine("draft") and draft:
        too_long = fine("num_frames") and num_frames > DRAFT_MAX_FRAMES
        scheduled = fine("prompt_schedule") and schedule.strip()
        # Tier 4's draft (FastWan) takes the tier's own frame counts; a schedule is tier 2's.
        if tier == 3 or (tier == 2 and (too_long or scheduled)):
            broken.add("draft")
    return broken


def field_named_in_process(inputs: dict) -> str | None:
    """The field our checks (resolve_request) name for what run() receives, or None."""
    try:
        resolve_request({name: value for name, value in inputs.items() if name in DECLARED})
    except InputError as error:
        return str(error).split()[0]
    return None


def mostly(fine, edge):
    """Three draws in four from `fine`, the rest from `edge`: a request breaks few rules at once,
    so a check that lets one through shows."""
    return st.one_of(fine, fine, fine, edge)


SIZES = st.integers(8, 128).map(lambda eighths: 8 * eighths)  # 64 to 1024, multiples of 8


@st.composite
def rule_probes(draw):
    """Requests aimed at the rules a schema cannot state: sizes around the multiples of 8, frame
    counts around each tier's range, rates around the multiples of fps, schedules, and inputs of
    one tier or mode sent with the other; sometimes one field of the wrong type. Fields left out
    take their defaults."""
    probes = {
        "tier": st.sampled_from(DECLARED["tier"].field.choices),
        "prompt": mostly(st.just("a kite"), st.sampled_from(["", " "])),
        "image": mostly(st.none(), st.sampled_from(["", "https://example.com/start.png"])),
        # Edges: each tier's range, and a draft's one window.
        "num_frames": mostly(
            st.integers(8, 25),
            st.one_of(st.sampled_from([7, 9, 26, 32, 33, 96, 97, 120, 121, 122]), st.integers()),
        ),
        "width": mostly(SIZES, st.integers(56, 1288)),
        "height": mostly(SIZES, st.integers(56, 1288)),
        "motion_bucket_id": mostly(st.just(127), st.integers(1, 255)),
        "fps": mostly(st.integers(1, 30), st.sampled_from([0, 31])),
        "output_format": st.sampled_from(DECLARED["output_format"].field.choices),
        "interpolate_to_fps": st.integers(0, 61),
        "draft": st.booleans(),
        "camera_motion": st.sampled_from(DECLARED["camera_motion"].field.choices),
        "prompt_schedule": mostly(
            st.sampled_from(["", "0: a door | 4: a hall"]),
            st.one_of(st.just("0: a door | 30: a hall"), st.text("0123456789:| ab", max_size=16)),
        ),
    }
    inputs = {"prompt": "a kite"}
    for name in draw(st.lists(st.sampled_from(sorted(probes)), unique=True)):
        inputs[name] = draw(probes[name])
    if "interpolate_to_fps" in inputs and draw(st.booleans()):
        # A whole multiple of fps (as sent, or tier 2's default), which gif may still refuse.
        inputs["interpolate_to_fps"] = inputs.get("fps", 8) * draw(st.integers(1, 8))
    if draw(st.sampled_from(range(4))) == 3:  # one in four (integers() would favour 0)
        inputs[draw(st.sampled_from(sorted(DECLARED)))] = draw(WRONG_TYPES)
    return inputs


@settings(max_examples=IN_PROCESS_EXAMPLES, deadline=None)
@given(inputs=rule_probes())
def test_our_checks_refuse_what_the_rules_refuse_naming_a_field_that_breaks_one(inputs):
    broken = fields_the_rules_refuse(inputs)
    named = field_named_in_process(inputs)
    event(f"refused, naming {named}" if broken else "accepted")
    if broken:
        assert named in broken, (named, sorted(broken))
    else:
        assert named is None, named


@functools.cache
def clip_vocabulary() -> frozenset[str]:
    """The tiny CLIP tokenizer's vocabulary, as scripts/make_tiny_weights.py writes it."""
    with tempfile.TemporaryDirectory() as folder:
        write_clip_tokenizer(Path(folder))
        return frozenset(json.loads((Path(folder) / "vocab.json").read_text()))


def is_thai(character: str) -> bool:
    return "\u0e00" <= character <= "\u0e7f"


def clip_cannot_read(text: str) -> bool:
    """The rule of docs/LANGUAGES_SAFETY.md "Prompts in Thai", worked out from the vocabulary file
    rather than by pipelines/prompts.py's tokenizer: of the letters other than Thai, after
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
    the server's own temp folder (its TMPDIR, which no other process writes into)."""
    weights = {
        (str(path), path.stat().st_size, path.stat().st_mtime_ns)
        for path in weights_dir.rglob("*")
        if path.is_file()
    }
    folders = (REPO, server.app_dir, server.temp_dir)
    return weights | {str(path) for folder in folders for path in folder.iterdir()}


def output_folders(places: set, server) -> set[Path]:
    """The prediction output folders (run()'s `video-*`, at the top of the server's temp folder)
    among places."""
    return {
        Path(place)
        for place in places
        if isinstance(place, str)
        and Path(place).parent == server.temp_dir
        and Path(place).name.startswith("video-")
    }


def holds(folder: Path, video: bytes) -> bool:
    """Whether an output folder holds this video and nothing else."""
    try:
        return [path.read_bytes() for path in folder.iterdir()] == [video]
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def returned_folders() -> dict[str, list[Path]]:
    """Per server (by URL), the output folder of each of its successful predictions, in order."""
    return {}


def cogs_empty_download(place, server) -> bool:
    path = Path(place) if isinstance(place, str) else None
    return (
        path is not None
        and path.parent == server.temp_dir
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
GUARANTEED = [  # every image class, every kind of nasty prompt and the edge seeds, at least once
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
    # What the schema cannot say, so our checks alone refuse, on each tier it applies to: a size
    # off the multiple of 8, tier 3's shorter clips, inputs that go with one tier or mode only.
    *(
        dict(QUICK, tier=tier, prompt="a kite", **{size: 100})
        for tier in (2, 3)
        for size in ("width", "height")
    ),
    dict(QUICK, tier=3, prompt="a kite", num_frames=26),
    dict(QUICK, tier=2, prompt="a kite", image=IMAGES["a PNG as a data URI"]),
    dict(QUICK, tier=3, prompt="a kite", prompt_schedule="0: a door opens"),
    dict(QUICK, tier=3, prompt="a kite", draft=True),
    dict(QUICK, tier=2, prompt="a kite", camera_motion="zoom_in"),
    dict(QUICK, tier=2, prompt="a kite", draft=True, camera_motion="pan_left"),  # succeeds
    dict(QUICK, tier=2, prompt="a kite", draft=True, num_frames=40),
    dict(QUICK, tier=2, prompt="a kite", fps=8, interpolate_to_fps=20),
    dict(QUICK, tier=2, prompt="a kite", fps=10, interpolate_to_fps=30, output_format="gif"),
]


def with_examples(test):
    for inputs in GUARANTEED:
        test = example(inputs=inputs)(test)
    return test


@settings(
    max_examples=SERVER_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@with_examples
@given(inputs=requests_to_send())
def test_any_request_succeeds_or_fails_naming_a_field(
    each_server, tiny_weights_dir, sentinel, tokenizer, returned_folders, record_property, inputs
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
        named = message.split()[0]
        # A field whose value breaks a rule, and the very one our checks name in-process (the text
        # can differ: coglet parses integers beyond 64 bits as floats, so 10**30 arrives as 1e+30).
        assert named in expected, (message, sorted(expected))
        assert field_named_in_process(inputs) in (named, None), message
        assert named in DECLARED, message
        outcome = "failed naming the field"

    server.wait_until_ready(timeout=10)  # the worker is alive and free
    made = written_places(tiny_weights_dir, server) - before
    # The video a prediction returns stays in its own folder until the next prediction deletes it
    # (Cog reads the file after run()): of the folders a server returned, only the last is left.
    if result["status"] == "succeeded":
        video = base64.b64decode(result["output"].partition(",")[2])
        [folder] = [folder for folder in output_folders(made, server) if holds(folder, video)]
        returned_folders.setdefault(server.url, []).append(folder)
    left = [folder for folder in returned_folders.get(server.url, []) if folder.exists()]
    assert len(left) <= 1, f"the output folders of earlier predictions are still there: {left}"
    new = made - {str(folder) for folder in output_folders(made, server)}
    if expected == "Cog" and new and all(cogs_empty_download(place, server) for place in new):
        # Cog's downloader opens its temp file before fetching a URL and leaves it when the fetch
        # fails: Cog's doing, before run(); counted in the report rather than hidden.
        outcome += " (Cog left an empty temp file)"
        new = set()
    assert not new, new
    assert sentinel.stat().st_atime == 0, "a request read a local file it named"
    record_property("fuzz_case", json.dumps({"classes": input_classes(inputs), "outcome": outcome}))
