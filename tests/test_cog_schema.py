"""The schema `cog build` writes for predict.py (scripts/cog_schema.py): each rule that fails the
build or loses an input setting, Cog's own expectations for the same source, and coglet serving the
result."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import requests

from scripts.cog_schema import CogBuildError, check_predict_file, go_json, main, openapi_schema
from scripts.cog_server import CogServer
from tests.support import REPO

HEADER = "from typing import Optional\n\nfrom cog import BaseRunner, Input, Path\n"


def write_predictor(
    directory: Path,
    params: str,
    module: str = "",
    returns: str | None = "str",
    name: str = "predict.py",
) -> Path:
    """A predictor whose run() takes `params`, after `module` (constants, helper classes)."""
    signature = textwrap.indent(textwrap.dedent(params).strip() + "\n", " " * 8)
    arrow = f" -> {returns}" if returns else ""
    source = (
        f"{HEADER}{textwrap.dedent(module)}\n\nclass Runner(BaseRunner):\n"
        f"    def run(\n        self,\n{signature}    ){arrow}:\n        return 'ok'\n"
    )
    path = directory / name
    path.write_text(source)
    return path


def cog_source(directory: Path, source: str) -> Path:
    """A source copied from Cog's Go tests (class Predictor with the legacy predict())."""
    path = directory / "cog_predict.py"
    path.write_text(textwrap.dedent(source))
    return path


def input_of(schema: dict) -> dict:
    return schema["components"]["schemas"]["Input"]


# --- the rules: each construct, the exact report, and a passing predictor -----------------------

FAILS = "(cog build fails)"
RULES = {
    # Build failures.
    "helper call as default": (
        'tier: int = _input("tier")',
        "def _input(name):\n    return Input()\n",
        [f"parameter 'tier': default `_input(\"tier\")` cannot be statically resolved {FAILS}"],
    ),
    "parenthesized Input()": (
        "steps: int = (Input(default=25))",
        "",
        [f"parameter 'steps': default `(Input(default=25))` cannot be statically resolved {FAILS}"],
    ),
    "choices=list(TUPLE)": (
        "tier: int = Input(default=2, choices=list(TIERS))",
        "TIERS = (2, 3)\n",
        [
            "parameter 'tier': choices expression `list(TIERS)` cannot be statically resolved "
            + FAILS
        ],
    ),
    "default_factory": (
        "prompt: str = Input(default_factory=str)",
        "",
        [
            "parameter 'prompt': default_factory is not supported in static schema generation "
            + FAILS
        ],
    ),
    "no annotation, with a default": (
        "steps=25",
        "",
        [f"parameter 'steps' on run has no type annotation {FAILS}"],
    ),
    "unknown type": (
        "video: Video",
        "",
        [f"parameter 'video': cannot resolve type 'Video' {FAILS}"],
    ),
    # Dropped or changed without a word.
    "f-string description": (
        'prompt: str = Input(description=f"At most {MAX_CHARS} characters.", default="")',
        "MAX_CHARS = 4000\n",
        [
            "parameter 'prompt': description=`f\"At most {MAX_CHARS} characters.\"` is not a "
            "string literal or same-file string constant: Cog drops it"
        ],
    ),
    "imported description": (
        'prompt: str = Input(description=PROMPT_HELP, default="")',
        "from pipelines.help import PROMPT_HELP\n",
        [
            "parameter 'prompt': description=`PROMPT_HELP` is not a string literal or same-file "
            "string constant: Cog drops it"
        ],
    ),
    "implicit concatenation": (
        'fps: int = Input(description="Frames per " "second.", default=8)',
        "",
        [
            'parameter \'fps\': description=`"Frames per " "second."` is read by Cog as '
            "'Frames per \" \"second.'"
        ],
    ),
    "parenthesized concatenation": (
        'fps: int = Input(description=("Frames per "\n    "second."), default=8)',
        "",
        [
            'parameter \'fps\': description=`("Frames per "\n            "second.")` is not a '
            "string literal or same-file string constant: Cog drops it"
        ],
    ),
    "escape in description": (
        'size: str = Input(description="width\\theight", default="512")',
        "",
        ["parameter 'size': description=`\"width\\theight\"` is read by Cog as 'width\\\\theight'"],
    ),
    "escape in regex": (
        'size: str = Input(regex="\\\\d+x\\\\d+", default="512x512")',
        "",
        ["parameter 'size': regex=`\"\\\\d+x\\\\d+\"` is read by Cog as '\\\\\\\\d+x\\\\\\\\d+'"],
    ),
    "le is a name": (
        "seed: Optional[int] = Input(default=None, ge=0, le=MAX_SEED)",
        "MAX_SEED = 2**32 - 1\n",
        ["parameter 'seed': le=`MAX_SEED` is not a number literal: Cog drops it"],
    ),
    "max_length is a name": (
        'prompt: str = Input(default="", min_length=1, max_length=MAX_CHARS)',
        "MAX_CHARS = 4000\n",
        ["parameter 'prompt': max_length=`MAX_CHARS` is not a number literal: Cog drops it"],
    ),
    "**kwargs in Input()": (
        "tier: int = Input(**TIER)",
        "TIER = dict(default=2, choices=[2, 3])\n",
        ["parameter 'tier': Input(**TIER) is not read by Cog: every setting in it is dropped"],
    ),
    "positional default": (
        "tier: int = Input(2)",
        "",
        [
            "parameter 'tier': positional argument `2` to Input() is ignored by Cog; write "
            "default=..."
        ],
    ),
    "static method returning Input(**...)": (
        "seed: Optional[int] = Inputs.seed()",
        "class Inputs:\n    @staticmethod\n    def seed():\n        return Input(**SEED)\n",
        [
            "parameter 'seed' (the Input() Inputs.seed returns): Input(**SEED) is not read by "
            "Cog: every setting in it is dropped"
        ],
    ),
    "call-site argument Cog does not read": (
        "steps: int = Inputs.steps(default=STEPS, minimum=1)",
        "STEPS = 25\n\nclass Inputs:\n    @staticmethod\n    def steps(default, minimum):\n"
        "        return Input(description='Steps', default=default, ge=minimum)\n",
        [
            "parameter 'steps' (Inputs.steps(default=STEPS, minimum=1)): default=`STEPS` is not a "
            "literal, all Cog reads at a call site: it keeps what the method's Input() says",
            "parameter 'steps' (Inputs.steps(default=STEPS, minimum=1)): argument minimum=`1` is "
            "ignored by Cog: at a call site it reads only default, description, ge and le",
            "parameter 'steps' (the Input() Inputs.steps returns): default=`default` cannot be "
            "statically resolved, so Cog writes default None (a required input unless the type is "
            "Optional)",
            "parameter 'steps' (the Input() Inputs.steps returns): ge=`minimum` is not a number "
            "literal: Cog drops it",
            "parameter 'steps': default None on a type that is not Optional: Cog makes it a "
            "required input; annotate it Optional[...]",
        ],
    ),
    "Cls.attr whose Input() Cog skips": (
        "tier: int = Inputs.tier",
        "TIERS = (2, 3)\n\nclass Inputs:\n    tier = Input(default=2, choices=list(TIERS))\n",
        [
            "parameter 'tier': default `Inputs.tier` cannot be statically resolved, because Cog "
            "skips Inputs.tier: choices expression `list(TIERS)` cannot be statically resolved "
            + FAILS
        ],
    ),
    "default=None on int": (
        'seed: int = Input(description="Seed", default=None)',
        "",
        [
            "parameter 'seed': default None on a type that is not Optional: Cog makes it a "
            "required input; annotate it Optional[...]"
        ],
    ),
    "unreadable default in Input()": (
        "fps: Optional[int] = Input(default=DEFAULT_FPS)",
        "from pipelines.video import DEFAULT_FPS\n",
        [
            "parameter 'fps': default=`DEFAULT_FPS` cannot be statically resolved, so Cog writes "
            "default None (a required input unless the type is Optional)"
        ],
    ),
    "untyped parameter": (
        "extra,",
        "",
        [
            "parameter 'extra' has no type annotation: Cog leaves it out of the schema, so no "
            "request can set it"
        ],
    ),
}


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_is_reported_naming_the_parameter(tmp_path, rule):
    params, module, expected = RULES[rule]
    assert check_predict_file(write_predictor(tmp_path, params, module)) == expected


def test_a_build_failure_stops_the_schema_with_cogs_message(tmp_path):
    predictor = write_predictor(
        tmp_path, RULES["helper call as default"][0], RULES["helper call as default"][1]
    )
    with pytest.raises(
        CogBuildError, match=re.escape("parameter 'tier': default `_input(\"tier\")` cannot")
    ):
        openapi_schema(predictor)


@pytest.mark.parametrize(
    "returns, expected",
    [
        (None, f"missing return type annotation on run {FAILS}"),
        (
            "Optional[Path]",
            f"unsupported output type: Optional is not allowed as a return type {FAILS}",
        ),
    ],
)
def test_return_type_rules(tmp_path, returns, expected):
    assert check_predict_file(write_predictor(tmp_path, "prompt: str", returns=returns)) == [
        expected
    ]


NEW_STYLE = """
    tier: int = Input(description="2: text-to-video. 3: keyframe.", default=2, choices=[2, 3]),
    prompt: str = Input(description=PROMPT_HELP, default="", max_length=4000),
    size: str = Input(description="Width×height.", default="512x512", regex=r"^\\d+x\\d+$"),
    output_format: str = Input(
        description="Video container.", default="mp4", choices=FORMATS + ["gif"]
    ),
    scheduler: str = Input(description="Sampler.", default="ddim", choices=list(SCHEDULERS.keys())),
    num_frames: Optional[int] = Input(description="Frames (8–32).", default=None, ge=8, le=32),
    guidance_scale: Optional[float] = Input(description="Guidance.", default=None, ge=1.0, le=20.0),
    seed: Optional[int] = Input(description="Seed.", default=None, ge=0, le=4294967295),
    image: Path | None = Input(description="First frame.", default=None),
    motion_bucket_id: int = Inputs.motion,
    noise_aug_strength: float = Inputs.strength(
        default=0.02, description="Noise on the first frame."
    ),
    old_steps: int = Input(description="Use num_inference_steps.", default=25, deprecated=True),
"""
NEW_STYLE_MODULE = """
PROMPT_HELP = "What the clip shows."
FORMATS = ["mp4", "webm"]
SCHEDULERS = {"ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler"}


class Inputs:
    motion = Input(description="How much SVD moves the scene.", default=127, ge=1, le=255)

    @staticmethod
    def strength(default: float, description: str) -> Input:
        return Input(description=description, default=default, ge=0.0, le=1.0)
"""


def test_a_predictor_in_the_supported_style_passes_and_keeps_every_setting(tmp_path):
    predictor = write_predictor(tmp_path, NEW_STYLE, NEW_STYLE_MODULE, returns="Path")
    assert check_predict_file(predictor) == []
    schema = openapi_schema(predictor, version="0.23.1")
    properties = input_of(schema)["properties"]
    assert "required" not in input_of(schema)
    assert list(properties) == [
        "tier",
        "prompt",
        "size",
        "output_format",
        "scheduler",
        "num_frames",
        "guidance_scale",
        "seed",
        "image",
        "motion_bucket_id",
        "noise_aug_strength",
        "old_steps",
    ]
    assert properties["prompt"] == {
        "default": "",
        "description": "What the clip shows.",
        "maxLength": 4000,
        "title": "Prompt",
        "type": "string",
        "x-order": 1,
    }
    assert properties["size"]["pattern"] == "^\\d+x\\d+$"
    assert properties["seed"] == {
        "default": None,
        "description": "Seed.",
        "maximum": 4294967295,
        "minimum": 0,
        "nullable": True,
        "title": "Seed",
        "type": "integer",
        "x-order": 7,
    }
    assert properties["image"] == {
        "default": None,
        "description": "First frame.",
        "format": "uri",
        "nullable": True,
        "title": "Image",
        "type": "string",
        "x-order": 8,
    }
    assert properties["motion_bucket_id"] == {
        "default": 127,
        "description": "How much SVD moves the scene.",
        "maximum": 255,
        "minimum": 1,
        "title": "Motion Bucket Id",
        "type": "integer",
        "x-order": 9,
    }
    assert properties["noise_aug_strength"] == {
        "default": 0.02,
        "description": "Noise on the first frame.",
        "maximum": 1,
        "minimum": 0,
        "title": "Noise Aug Strength",
        "type": "number",
        "x-order": 10,
    }
    assert properties["old_steps"]["deprecated"] is True
    schemas = schema["components"]["schemas"]
    assert [schemas[name]["enum"] for name in ("tier", "output_format", "scheduler")] == [
        [2, 3],
        ["mp4", "webm", "gif"],
        ["ddim", "euler"],
    ]
    assert schemas["Output"] == {"format": "uri", "title": "Output", "type": "string"}


# Today's predict.py on this branch: every input through a helper that returns Input(**kwargs).
HELPER_STYLE_PARAMS = "".join(
    f'{name}: {kind} = _input("{name}"),\n'
    for name, kind in [
        ("tier", "int"),
        ("prompt", "str"),
        ("negative_prompt", "str"),
        ("num_frames", "Optional[int]"),
        ("width", "Optional[int]"),
        ("height", "Optional[int]"),
        ("fps", "Optional[int]"),
        ("num_inference_steps", "Optional[int]"),
        ("guidance_scale", "Optional[float]"),
        ("seed", "Optional[int]"),
        ("output_format", "str"),
        ("image", "Optional[Path]"),
        ("motion_bucket_id", "int"),
        ("noise_aug_strength", "float"),
    ]
)
HELPER_STYLE_MODULE = """
from pipelines.inputs import INPUTS


def _input(name: str):
    return Input(**INPUTS[name].cog_kwargs())
"""


def test_inputs_built_by_a_helper_fail_the_build_for_every_parameter(tmp_path):
    predictor = write_predictor(tmp_path, HELPER_STYLE_PARAMS, HELPER_STYLE_MODULE, returns="Path")
    problems = check_predict_file(predictor)
    assert len(problems) == 14
    assert (
        problems[0]
        == f"parameter 'tier': default `_input(\"tier\")` cannot be statically resolved {FAILS}"
    )
    assert all(problem.endswith(f"cannot be statically resolved {FAILS}") for problem in problems)


def test_the_real_predict_py_follows_every_rule():
    assert check_predict_file(REPO / "predict.py") == []
    schema = openapi_schema(REPO / "predict.py")
    assert schema["components"]["schemas"]["Output"] == {
        "format": "uri",
        "title": "Output",
        "type": "string",
    }
    undescribed = [
        name for name, prop in input_of(schema)["properties"].items() if not prop.get("description")
    ]
    assert undescribed == []


def test_cli_writes_the_schema_or_prints_the_violations(tmp_path, capsys):
    good = write_predictor(
        tmp_path, 'prompt: str = Input(description="Text.", default="")', name="good.py"
    )
    assert main([str(good)]) == 0
    written = tmp_path / ".cog" / "openapi_schema.json"
    assert json.loads(written.read_text()) == openapi_schema(good)
    bad = write_predictor(tmp_path, 'tier: int = _input("tier")', name="bad.py")
    out = tmp_path / "bad.json"
    assert main([str(bad), "--out", str(out)]) == 1
    assert (
        f"bad.py: parameter 'tier': default `_input(\"tier\")` cannot be statically resolved "
        f"{FAILS}" in (capsys.readouterr().err)
    )
    assert not out.exists()


# --- Cog's own expectations (replicate/cog 6110c912, pkg/schema) for the same Python source ------


def test_static_schema_gen_txtar(tmp_path):
    # integration-tests/tests/static_schema_gen.txtar: its predict.py, and the patterns it greps for
    # in the schema label (the compact JSON cog build writes).
    source = cog_source(
        tmp_path,
        """
        from cog import BasePredictor, Input, Path


        class Predictor(BasePredictor):
            def predict(
                self,
                text: str,
                image: Path,
                count: int = Input(description="Number of iterations", default=5, ge=1, le=100),
                mode: str = Input(
                    description="Quality mode",
                    default="fast",
                    choices=["fast", "balanced", "quality"],
                ),
            ) -> str:
                ext = str(image).split(".")[-1]
                return f"{text}-{count}-{mode}-{ext}"
        """,
    )
    written = go_json(openapi_schema(source, "Predictor"))
    for pattern in [
        '"openapi":"3.0.2"',
        '"text":',
        '"type":"string"',
        '"count":',
        '"type":"integer"',
        '"default":5',
        r'"enum":\["fast","balanced","quality"\]',
        '"format":"uri"',
        r'"required":\["text","image"\]',
    ]:
        assert re.search(pattern, written), pattern


def test_build_openapi_schema_txtar_output_path(tmp_path):
    # integration-tests/tests/build_openapi_schema.txtar, with TestOutputPath
    # (openapi_spec_test.go): a Path output is {"type": "string", "format": "uri"}.
    source = cog_source(
        tmp_path,
        """
        from cog import BasePredictor, Path

        class Predictor(BasePredictor):
            def predict(self, text: str, path: Path) -> Path:
                pass
        """,
    )
    schema = openapi_schema(source, "Predictor", version="0.23.1")
    written = go_json(schema)
    for pattern in [
        '"title":"Input"',
        r'"required":\["text","path"\]',
        '"text":',
        '"path":',
        '"type":"string"',
        '"format":"uri"',
        '"version":"[^"]*"',
    ]:
        assert re.search(pattern, written), pattern
    output = schema["components"]["schemas"]["Output"]
    assert (output["title"], output["type"], output["format"]) == ("Output", "string", "uri")


def test_multiple_inputs_with_defaults(tmp_path):
    # parser_test.go TestMultipleInputsWithDefaults, rendered as openapi_spec_test.go's
    # TestInputDescription, TestInputNumericConstraints, TestInputDefaultValue and
    # TestInputRequiredField say.
    source = cog_source(
        tmp_path,
        """
        from cog import BasePredictor, Input, Path

        class Predictor(BasePredictor):
            def predict(
                self,
                image: Path = Input(description="Grayscale input image"),
                scale: float = Input(
                    description="Factor to scale image by", ge=0, le=10, default=1.5
                ),
            ) -> Path:
                pass
        """,
    )
    schema = input_of(openapi_schema(source, "Predictor"))
    image, scale = schema["properties"]["image"], schema["properties"]["scale"]
    assert (image["type"], image["format"], image["description"]) == (
        "string",
        "uri",
        "Grayscale input image",
    )
    assert "default" not in image and schema["required"] == ["image"]
    assert (scale["type"], scale["minimum"], scale["maximum"], scale["default"]) == (
        "number",
        0,
        10,
        1.5,
    )
    assert scale["description"] == "Factor to scale image by"
    assert (image["x-order"], scale["x-order"]) == (0, 1)  # TestInputXOrder


def test_optional_path_with_none_default(tmp_path):
    # parser_test.go TestOptionalInputPipeNone; openapi_spec_test.go
    # TestNoneDefaultOnOptionalTypeEmitsNull: not required, "default": null present, nullable.
    source = cog_source(
        tmp_path,
        """
        from cog import BasePredictor, Input, Path

        class Predictor(BasePredictor):
            def predict(
                self,
                test_image: Path | None = Input(description="Test image", default=None),
            ) -> Path:
                pass
        """,
    )
    schema = input_of(openapi_schema(source, "Predictor"))
    assert "required" not in schema
    assert schema["properties"]["test_image"] == {
        "default": None,
        "description": "Test image",
        "format": "uri",
        "nullable": True,
        "title": "Test Image",
        "type": "string",
        "x-order": 0,
    }


def test_optional_without_default_is_not_required(tmp_path):
    # parser_test.go TestOptionalInputOpenAPINotRequired: no "required", "nullable": true.
    source = cog_source(
        tmp_path,
        """
        from typing import Optional

        class Predictor:
            def predict(self, value: Optional[str]) -> str:
                return "ok"
        """,
    )
    schema = input_of(openapi_schema(source, "Predictor"))
    assert "required" not in schema and schema["properties"]["value"]["nullable"] is True
    assert "default" not in schema["properties"]["value"]


def test_none_default_on_a_required_type_is_required(tmp_path):
    # openapi_spec_test.go TestNoneDefaultOnRequiredTypeIsRequired (its fields, written as Python).
    source = cog_source(
        tmp_path,
        """
        from cog import BasePredictor, Input

        class Predictor(BasePredictor):
            def predict(self, prompt: str, seed: int = Input(default=None)) -> str:
                pass
        """,
    )
    schema = input_of(openapi_schema(source, "Predictor"))
    assert (
        schema["required"] == ["prompt", "seed"] and "default" not in schema["properties"]["seed"]
    )


@pytest.mark.parametrize(
    "go_test, module, param, enum",
    [
        (
            "TestChoicesLiteralList",
            "",
            'color: str = Input(choices=["red", "green", "blue"])',
            ["red", "green", "blue"],
        ),
        (
            "TestChoicesModuleLevelListVar",
            'MY_CHOICES = ["x", "y", "z"]',
            "color: str = Input(choices=MY_CHOICES)",
            ["x", "y", "z"],
        ),
        (
            "TestChoicesListDictKeys",
            'ASPECT_RATIOS = {"1:1": (1024, 1024), "16:9": (1344, 768), "2:3": (832, 1216)}',
            'color: str = Input(choices=list(ASPECT_RATIOS.keys()), default="1:1")',
            ["1:1", "16:9", "2:3"],
        ),
        (
            "TestChoicesListDictValues",
            'LABELS = {"fast": "Fast Mode", "slow": "Slow Mode"}',
            "color: str = Input(choices=list(LABELS.values()))",
            ["Fast Mode", "Slow Mode"],
        ),
        (
            "TestChoicesDictKeysPlusLiteral",
            'SIZES = {"small": 256, "large": 1024}',
            'color: str = Input(choices=list(SIZES.keys()) + ["custom"])',
            ["small", "large", "custom"],
        ),
        (
            "TestChoicesConcatTwoVars",
            'BASE = ["a", "b"]\nEXTRA = ["c"]',
            "color: str = Input(choices=BASE + EXTRA)",
            ["a", "b", "c"],
        ),
        (
            "TestIntegerChoices",
            "",
            "color: int = Input(choices=[256, 512, 1024])",
            [256, 512, 1024],
        ),
    ],
)
def test_choices_become_an_enum_component(tmp_path, go_test, module, param, enum):
    # parser_test.go <go_test> for the list; openapi_spec_test.go TestChoicesGenerateEnum /
    # TestIntegerChoices for the shape: a component named as the parameter, referenced by allOf.
    schema = openapi_schema(write_predictor(tmp_path, param, module + "\n"))
    component = schema["components"]["schemas"]["color"]
    assert (component["title"], component["enum"]) == ("color", enum)
    assert component["type"] == ("integer" if go_test == "TestIntegerChoices" else "string")
    assert input_of(schema)["properties"]["color"]["allOf"] == [
        {"$ref": "#/components/schemas/color"}
    ]


@pytest.mark.parametrize(
    "go_test, module, param, expected",
    [
        (
            "TestDefaultModuleLevelStringInInput",
            'DEFAULT_RATIO = "1:1"',
            "ar: str = Input(default=DEFAULT_RATIO)",
            {"default": "1:1"},
        ),
        (
            "TestDefaultModuleLevelIntInInput",
            "DEFAULT_STEPS = 50",
            "ar: int = Input(default=DEFAULT_STEPS)",
            {"default": 50},
        ),
        (
            "TestDefaultModuleLevelVarPlain",
            'MY_DEFAULT = "hello"',
            "ar: str = MY_DEFAULT",
            {"default": "hello"},
        ),
        (
            "TestDescriptionFromModuleLevelVar",
            'STEP_DESC = "Number of denoising steps. 4 is recommended."',
            "ar: int = Input(default=4, description=STEP_DESC)",
            {"default": 4, "description": "Number of denoising steps. 4 is recommended."},
        ),
        ("TestNegativeNumberDefault", "", "ar: float = Input(default=-1.5)", {"default": -1.5}),
        (
            "TestBoolDefault",
            "",
            "ar: bool = Input(default=True)",
            {"default": True, "type": "boolean"},
        ),
        ("TestDefaultFalse", "", "ar: bool = Input(default=False)", {"default": False}),
        ("TestDefaultEmptyString", "", 'ar: str = Input(default="")', {"default": ""}),
        (
            "TestInputConstraints",
            "",
            'ar: str = Input(description="Input text", min_length=1, max_length=100, '
            'regex="^[a-z]+$")',
            {"minLength": 1, "maxLength": 100, "pattern": "^[a-z]+$"},
        ),
        (
            "TestDeprecatedInput",
            "",
            'ar: str = Input(deprecated=True, default="x")',
            {"deprecated": True},
        ),
        (
            "TestInputRegistryAttribute",
            'RATIOS = {"1:1": (1024, 1024), "16:9": (1344, 768)}\n\n'
            "class Inputs:\n"
            '    ar = Input(description="Aspect ratio", choices=list(RATIOS.keys()), '
            'default="1:1")',
            "ar: str = Inputs.ar",
            {"description": "Aspect ratio", "default": "1:1"},
        ),
        (
            "TestInputRegistryMethod",
            "class Inputs:\n    @staticmethod\n    def guidance(default: float) -> Input:\n"
            '        return Input(description="Guidance scale", ge=0.0, le=20.0, default=default)',
            "ar: float = Inputs.guidance(7.5)",
            {"description": "Guidance scale", "minimum": 0, "maximum": 20, "default": 7.5},
        ),
    ],
)
def test_values_cog_resolves(tmp_path, go_test, module, param, expected):
    prop = input_of(openapi_schema(write_predictor(tmp_path, param, module + "\n")))["properties"][
        "ar"
    ]
    assert {key: prop[key] for key in expected} == expected, go_test


@pytest.mark.parametrize(
    "go_test, module, param, message",
    [
        (
            "TestDefaultFactoryError",
            "",
            "items: str = Input(default_factory=list)",
            "default_factory",
        ),
        (
            "TestChoicesVarNotAListErrors",
            'NOT_A_LIST = "oops"',
            "x: str = Input(choices=NOT_A_LIST)",
            "choices",
        ),
        ("TestChoicesUndefinedVarErrors", "", "x: str = Input(choices=DOES_NOT_EXIST)", "choices"),
        ("TestChoicesArbitraryCallErrors", "", "x: str = Input(choices=get_choices())", "choices"),
        (
            "TestChoicesListComprehensionErrors",
            "",
            'x: str = Input(choices=[f"{i}x" for i in range(5)])',
            "choices",
        ),
        (
            "TestChoicesErrorIncludesParamName",
            "",
            "my_param: str = Input(choices=some_func())",
            "my_param",
        ),
        (
            "TestChoicesNestedVarNotInScope",
            'def helper():\n    NESTED = ["a", "b"]',
            "x: str = Input(choices=NESTED)",
            "choices",
        ),
        (
            "TestDefaultUndefinedVarPlainErrors",
            "",
            "text: str = UNDEFINED_VAR",
            "cannot be statically resolved",
        ),
        ("TestMissingTypeAnnotation", "", 's="hello"', "has no type annotation"),
    ],
)
def test_what_fails_cogs_build_fails_here(tmp_path, go_test, module, param, message):
    with pytest.raises(CogBuildError, match=message):
        openapi_schema(write_predictor(tmp_path, param, module + "\n"))


@pytest.mark.parametrize(
    "go_test, returns",
    [
        ("TestMissingReturnType", None),
        ("TestOptionalOutputErrors", "Optional[str]"),
        ("TestOptionalOutputPipeNoneErrors", "str | None"),
    ],
)
def test_what_fails_for_the_output_fails_here(tmp_path, go_test, returns):
    with pytest.raises(CogBuildError):
        openapi_schema(write_predictor(tmp_path, "s: str", returns=returns))


def test_document_around_the_inputs(tmp_path):
    # openapi_spec_test.go TestGeneratesValidOpenAPI, TestPredictEndpoints,
    # TestFixedComponentSchemas, TestNoInputs; the order of components and paths is
    # openapi_spec.go:69-255's.
    schema = openapi_schema(write_predictor(tmp_path, ""), version="0.23.1")
    assert (schema["openapi"], schema["info"]) == ("3.0.2", {"title": "Cog", "version": "0.23.1"})
    assert list(schema["paths"]) == [
        "/",
        "/health-check",
        "/predictions",
        "/predictions/{prediction_id}/cancel",
    ]
    post = schema["paths"]["/predictions"]["post"]
    assert (post["summary"], post["operationId"]) == ("Predict", "predict_predictions_post")
    schemas = schema["components"]["schemas"]
    assert list(schemas) == [
        "Input",
        "Output",
        "PredictionRequest",
        "PredictionResponse",
        "Status",
        "HTTPValidationError",
        "ValidationError",
    ]
    assert schemas["PredictionRequest"]["properties"]["input"] == {
        "$ref": "#/components/schemas/Input"
    }
    assert schemas["PredictionResponse"]["properties"]["output"] == {
        "$ref": "#/components/schemas/Output"
    }
    assert schemas["Status"]["enum"] == [
        "starting",
        "processing",
        "succeeded",
        "canceled",
        "failed",
    ]
    assert schemas["Input"] == {"title": "Input", "type": "object", "properties": {}}
    # Go writes maps with sorted keys and its ordered maps as built, compact, with <>& escaped.
    assert go_json(schema).startswith(
        '{"components":{"schemas":{"Input":{"properties":{},"title":"Input"'
    )
    assert go_json({"b": "<&>", "a": 2.0}) == '{"a":2,"b":"\\u003c\\u0026\\u003e"}'


# --- coglet, Cog's real server, started on a generated schema ------------------------------------

SERVED = """
from typing import Optional

from cog import BaseRunner, Input


class Runner(BaseRunner):
    def run(
        self,
        prompt: str = Input(description="Text to echo.", default="", max_length=20),
        tier: int = Input(description="2 or 3.", default=2, choices=[2, 3]),
        steps: Optional[int] = Input(description="1 to 10.", default=None, ge=1, le=10),
    ) -> str:
        return f"{prompt}|{tier}|{steps}"
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = tmp_path_factory.mktemp("served")
    predictor = directory / "runner.py"
    predictor.write_text(SERVED)
    schema = openapi_schema(predictor)
    # The weights folder is unused: this runner loads nothing.
    server = CogServer(
        directory, directory / "server.log", predictor=f"{predictor}:Runner", schema=schema
    )
    try:
        server.wait_until_ready(timeout=120)
        yield server, schema
    finally:
        server.stop()


def post(server: CogServer, inputs: dict) -> requests.Response:
    """The raw answer (CogServer.predict reads it for the other tests)."""
    server.wait_until_ready(timeout=30)  # coglet frees its slot just after it answers
    return requests.post(f"{server.url}/predictions", json={"input": inputs}, timeout=60)


def test_coglet_serves_the_generated_schema(served):
    server, schema = served
    assert requests.get(f"{server.url}/openapi.json", timeout=10).json() == schema


@pytest.mark.parametrize(
    "inputs, field, message",
    [
        ({"steps": "ten"}, "steps", '"ten" is not of type "integer"'),
        ({"steps": 11}, "steps", "11 is greater than the maximum of 10"),
        ({"tier": 4}, "tier", "4 is not one of [2,3]"),
        ({"prompt": "x" * 21}, "prompt", "is longer than 20 characters"),
        # coglet validates with JSON Schema, which ignores OpenAPI's `nullable`: an explicit null
        # for an Optional input is refused; leaving the field out is how a client asks for None.
        ({"steps": None}, "steps", 'null is not of type "integer"'),
    ],
)
def test_coglet_refuses_a_bad_input_naming_the_field(served, inputs, field, message):
    server, _ = served
    response = post(server, inputs)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "input", field] and message in detail["msg"], detail


def test_coglet_strips_an_unknown_field_and_fills_defaults(served):
    server, _ = served
    response = post(server, {"prompt": "hi", "bogus": 1})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["output"]) == ("succeeded", "hi|2|None")
