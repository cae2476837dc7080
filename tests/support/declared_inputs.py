"""run()'s signature as Cog's SDK sees it at run time: each input's type and its `Input(...)`.

The tests compare it with the checks in pipelines/inputs.py (which must agree with it) and draw
fuzzed values from it, so the signature, not a copy of it, is what they hold the model to.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass

from cog.input import FieldInfo

from predict import Runner


@dataclass(frozen=True)
class DeclaredInput:
    name: str
    type: type  # bool, int, float, str or cog.Path, with Optional taken off
    optional: bool
    field: FieldInfo  # description, default, ge, le, max_length, choices as written in run()


def declared_inputs() -> dict[str, DeclaredInput]:
    hints = typing.get_type_hints(Runner.run)
    declared = {}
    for name, parameter in inspect.signature(Runner.run).parameters.items():
        if name == "self":
            continue
        hint = hints[name]
        arguments = [argument for argument in typing.get_args(hint) if argument is not type(None)]
        optional = typing.get_origin(hint) is typing.Union and len(arguments) == 1
        declared[name] = DeclaredInput(
            name, arguments[0] if optional else hint, optional, parameter.default
        )
    return declared


# What the schema's JSON types accept, as coglet 0.23.1 validates them (seen through its server,
# tests/test_server.py): JSON has one number type, so 16.0 is an "integer"; true is not a number,
# and a "boolean" is true or false only (not 1, not "true"); and null is refused for every input,
# Optional ones included (coglet does not honour OpenAPI's `nullable`): a caller leaves an input
# out rather than sending null.
def _json_type_accepts(declared_type: type, value) -> bool:
    if declared_type is bool:
        return isinstance(value, bool)
    if value is None or isinstance(value, bool):
        return False
    if declared_type is int:
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if declared_type is float:
        return isinstance(value, (int, float))
    return isinstance(value, str)  # str, and cog.Path (a "string" of format "uri")


def refused_by_schema(declared: DeclaredInput, value) -> bool:
    """Whether Cog, serving the schema `cog build` writes, answers 422 for this value: its type,
    range (`ge`/`le`), choices and length are all the schema knows."""
    field = declared.field
    if not _json_type_accepts(declared.type, value):
        return True
    if field.choices is not None and value not in field.choices:
        return True
    if field.ge is not None and not field.ge <= value <= field.le:
        return True
    return field.max_length is not None and len(value) > field.max_length
