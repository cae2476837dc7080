"""Property-based abuse of the input contract through Cog's real server: whatever is sent, the
answer is a success or a failure that names a field, the server stays READY, and nothing is
written outside the prediction's own output."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipelines.inputs import INPUTS, InputError, resolve_request

NASTY_TEXT = st.sampled_from([
    "", " ", "\n\t", "🎬🌊🐙" * 40, "مشهد على الشاطئ عند الغروب", "\u202eevil\u202c", "\x00nul", "a" * 5000,
    "word " * 300, "../../etc/passwd", "file:///etc/passwd", "{{7*7}}", "'; DROP TABLE videos; --",
])
# JSON has no NaN or Infinity (test_inputs.py checks those against resolve_request directly).
WRONG_TYPES = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                        st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=20),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
# Valid values are kept cheap (small sizes, few steps): the cost of a video is not what is fuzzed.
CHEAP_VALID = {
    "tier": st.just(2),
    "prompt": st.one_of(st.text(min_size=1, max_size=300).filter(str.strip), NASTY_TEXT),
    "negative_prompt": st.one_of(st.text(max_size=100), NASTY_TEXT),
    "num_frames": st.sampled_from([8, 9, 16]),
    "width": st.sampled_from([64, 72, 128]),
    "height": st.sampled_from([64, 80]),
    "fps": st.integers(1, 30),
    "num_inference_steps": st.integers(1, 2),
    "guidance_scale": st.floats(1.0, 20.0),
    "seed": st.one_of(st.none(), st.sampled_from([0, 2**32 - 1]), st.integers(0, 2**32 - 1)),
    "output_format": st.sampled_from(["mp4", "gif", "webm"]),
    "image": st.none(),  # tier 2 takes no image; tests/test_images.py abuses `image`
    "motion_bucket_id": st.integers(1, 255),
    "noise_aug_strength": st.floats(0.0, 1.0),
}
BOUNDARY_INVALID = st.sampled_from([-1, 0, 7, 33, 65, 1025, 2**32, -(2**31), 10**30, 0.5, 1e308])


@st.composite
def requests_to_send(draw):
    """A valid, cheap request with 0 to 3 of its fields broken (wrong type, out of range, left
    out) and sometimes a field that does not exist, so both outcomes are well represented."""
    inputs = {name: draw(strategy) for name, strategy in CHEAP_VALID.items()}
    for name in draw(st.lists(st.sampled_from(sorted(INPUTS)), max_size=3, unique=True)):
        breakage = draw(st.sampled_from(["wrong type", "boundary", "omit"]))
        if breakage == "omit":
            # An omitted size would take the tier default (512×512 × 16 frames): too slow here.
            if name not in ("width", "height", "num_frames", "num_inference_steps"):
                del inputs[name]
        else:
            inputs[name] = draw(WRONG_TYPES if breakage == "wrong type" else BOUNDARY_INVALID)
    if draw(st.integers(0, 9)) == 0:
        inputs[draw(st.sampled_from(["image_url", "steps", "__class__", ""]))] = "x"
    outcome = "invalid" if _rejection(inputs) else "valid"
    event(outcome)
    return inputs


def _rejection(inputs):
    try:
        resolve_request(inputs)
    except InputError as error:
        return str(error)
    return None


REPO = Path(__file__).resolve().parent.parent


def written_places(weights_dir: Path) -> set:
    """What a prediction could leave behind where it should not: the weights (every file, with its
    size and mtime), the project's top level, and the top level of the temp folder."""
    weights = {(str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in weights_dir.rglob("*") if path.is_file()}
    return weights | {str(path) for path in REPO.iterdir()} | {str(path) for path in Path(tempfile.gettempdir()).iterdir()}


def allowed_leftover(place) -> bool:
    # The video the last prediction returned stays until the next one (Cog reads it after run()).
    return isinstance(place, str) and Path(place).parent == Path(tempfile.gettempdir()) and Path(place).name.startswith("video-")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=requests_to_send())
def test_any_request_succeeds_or_fails_naming_a_field(server, tiny_weights_dir, inputs):
    expected_error = _rejection(inputs)

    before = written_places(tiny_weights_dir)
    result = server.predict(inputs)
    unknown = sorted(set(inputs) - set(INPUTS))
    if unknown:
        # Cog itself refuses a field run() does not declare, naming it, before our code runs.
        assert result["status"] == "failed"
        assert any(f"unexpected keyword argument {name!r}" in result["error"] for name in unknown), result["error"]
    elif expected_error is None:
        assert result["status"] == "succeeded", result.get("error")
        assert result["output"].startswith("data:")
    else:
        assert result["status"] == "failed"
        message = result["error"].split("InputError: ", 1)[-1]
        # The same field our own check names. (The text can differ: coglet parses integers
        # beyond 64 bits as floats, so 10**30 arrives as 1e+30.)
        assert message.split()[0] == expected_error.split()[0], (message, expected_error)
        assert message.split()[0] in INPUTS, message
    server.wait_until_ready(timeout=10)
    new = {place for place in written_places(tiny_weights_dir) - before if not allowed_leftover(place)}
    assert not new, new
