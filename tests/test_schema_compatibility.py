"""The schema a frontend calls today stays callable after an update: predict.py's schema against the
one last published (tests/fixtures/published_schema.json, `python -m scripts.cog_schema` on
predict.py as it was before tier 4), by the rules replicate/cog-safe-push checks before it pushes
(`check_backwards_compatible` and `lint` in its cog_safe_push/schema.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

PUBLISHED = Path(__file__).parent / "fixtures" / "published_schema.json"


def choices(schemas: dict, spec: dict) -> tuple[str, set] | None:
    """A choice input's enum component: its type and its values."""
    if "allOf" not in spec:
        return None
    component = schemas[spec["allOf"][0]["$ref"].rsplit("/", 1)[-1]]
    return component["type"], set(component["enum"])


def incompatibilities(new: dict, old: dict) -> list[str]:
    """What would break a caller of `old`, one line each (empty: none)."""
    new_schemas, old_schemas = new["components"]["schemas"], old["components"]["schemas"]
    new_inputs = new_schemas["Input"]["properties"]
    old_inputs = old_schemas["Input"]["properties"]
    problems = []
    for name, before in old_inputs.items():
        after = new_inputs.get(name)
        if after is None:
            problems.append(f"{name}: removed")
            continue
        if before.get("type") != after.get("type"):
            problems.append(f"{name}: type {before.get('type')} became {after.get('type')}")
            continue
        if before.get("format", "") != after.get("format", ""):
            problems.append(f"{name}: format changed")
        if "minimum" in after and before.get("minimum", float("-inf")) < after["minimum"]:
            problems.append(f"{name}: minimum raised or added ({after['minimum']})")
        if "maximum" in after and before.get("maximum", float("inf")) > after["maximum"]:
            problems.append(f"{name}: maximum lowered or added ({after['maximum']})")
        old_choices, new_choices = choices(old_schemas, before), choices(new_schemas, after)
        if old_choices:
            if not new_choices or new_choices[0] != old_choices[0]:
                problems.append(f"{name}: no longer choices of {old_choices[0]}")
            elif old_choices[1] - new_choices[1]:
                problems.append(
                    f"{name}: choices removed: {sorted(old_choices[1] - new_choices[1])}"
                )
    required = set(new_schemas["Input"].get("required", []))
    for name in new_inputs.keys() - old_inputs.keys():
        if name in required or "default" not in new_inputs[name]:
            problems.append(f"{name}: new and required")
    if new_schemas["Output"].get("type") != old_schemas["Output"].get("type"):
        problems.append("Output: type changed")
    for name, spec in new_inputs.items():
        if not spec.get("description"):
            problems.append(f"{name}: no description")
    return problems


def test_todays_schema_keeps_every_published_input_callable(schema):
    published = json.loads(PUBLISHED.read_text())
    assert incompatibilities(schema, published) == []
    # What tier 4 needed is there: a new choice and wider ranges, never narrower ones.
    inputs = schema["components"]["schemas"]["Input"]["properties"]
    assert 4 in choices(schema["components"]["schemas"], inputs["tier"])[1]


def narrowed(schema: dict, change) -> dict:
    changed = copy.deepcopy(schema)
    change(changed["components"]["schemas"])
    return changed


@pytest.mark.parametrize(
    "change,problem",
    [
        (lambda s: s["Input"]["properties"].pop("seed"), "seed: removed"),
        (
            lambda s: s["Input"]["properties"]["num_frames"].update(type="number"),
            "num_frames: type",
        ),
        (lambda s: s["Input"]["properties"]["width"].update(maximum=512), "width: maximum"),
        (lambda s: s["Input"]["properties"]["fps"].update(minimum=4), "fps: minimum"),
        (lambda s: s["Input"]["properties"]["seed"].update(maximum=10), "seed: maximum"),
        (lambda s: s["output_format"]["enum"].remove("gif"), "output_format: choices removed"),
        (lambda s: s["Input"]["properties"]["draft"].update(description=""), "draft: no descr"),
        (
            lambda s: (
                s["Input"]["properties"].update(style={"type": "string", "description": "x"}),
                s["Input"].setdefault("required", []).append("style"),
            ),
            "style: new and required",
        ),
        (lambda s: s["Output"].update(type="array"), "Output: type changed"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_breaking_change_is_caught(schema, change, problem):
    published = json.loads(PUBLISHED.read_text())
    found = incompatibilities(narrowed(schema, change), published)
    assert any(line.startswith(problem) for line in found), found
