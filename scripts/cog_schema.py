"""The OpenAPI schema `cog build` writes for predict.py, and what in it Cog rejects or loses.

Cog never imports predict.py to learn its inputs: a Go parser (tree-sitter) reads the source text
and writes `.cog/openapi_schema.json`, which coglet checks every request against. This module
redoes, with the stdlib `ast`, the part of that parser a predictor like ours uses, and names each
parameter where Cog fails the build or silently drops or changes what the source says. Citations are
`file:line` in replicate/cog at commit 6110c912, under pkg/schema/python/ unless a folder is named.

    python -m scripts.cog_schema [predict.py] [--class Runner] [--out .cog/openapi_schema.json]
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import sys
from dataclasses import dataclass
from decimal import Decimal
from importlib import metadata
from pathlib import Path

# pkg/schema/types.go:32-51, 62-83: the type's *name* decides, so pathlib's Path counts as cog's.
PRIMITIVES = {
    "bool": {"type": "boolean"},
    "float": {"type": "number"},
    "int": {"type": "integer"},
    "str": {"type": "string"},
    "Path": {"type": "string", "format": "uri"},
    "File": {"type": "string", "format": "uri"},
}
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
UNRESOLVED, DROPPED = object(), object()  # Go's `ok == false`; a keyword Cog does not keep
FAILS = "(cog build fails)"


class CogBuildError(Exception):
    """What `cog build` stops on (it reports only the first)."""


class Ordered(dict):
    """An object Cog writes in insertion order (its orderedMapAny); every other one gets sorted
    keys, as Go's encoding/json writes a map (pkg/schema/openapi_spec.go:566-630)."""


@dataclass
class DictValue:
    """A dict literal, kept as Go keeps it: keys and values side by side (types.go:155-164)."""

    keys: list
    values: list


@dataclass
class Problem:
    text: str
    fatal: bool  # True: `cog build` fails; False: Cog drops or changes something without a word


def go_string(raw: str):
    """literals.go:79-100 cuts the quotes off the *source text*: escapes are not decoded, implicit
    concatenation keeps its inner quotes, a prefixed string other than r"" (f"", b"") is refused."""
    for quote in ('"""', "'''"):
        if raw.startswith(quote):
            return raw[3:-3] if len(raw) >= 6 else UNRESOLVED
    if raw[:1] in ('"', "'") and len(raw) >= 2:
        return raw[1:-1]
    return raw[2:-1] if raw[:2] in ('r"', "r'") else UNRESOLVED


def go_float(raw: str):
    """strconv.ParseFloat, all that ge/le/min_length/max_length go through (literals.go:102-109)."""
    try:
        number = float(raw.strip())
    except ValueError:
        return UNRESOLVED
    return number if math.isfinite(number) else UNRESOLVED


def go_int(raw: str):
    """strconv.ParseInt(text, 0, 64), as literals.go:20-26 and 58-66 use it."""
    try:
        number = int(raw.strip(), 0)
    except ValueError:
        return UNRESOLVED
    return number if -(2**63) <= number < 2**63 else UNRESOLVED


def to_json(value):
    """A parsed value as Cog writes it (types.go:181-212): sets and tuples as lists."""
    if isinstance(
        value, DictValue
    ):  # Go writes a non-string key with %v, as go_json writes a number
        return {
            k if isinstance(k, str) else go_json(k): to_json(v)
            for k, v in zip(value.keys, value.values)
        }
    return [to_json(item) for item in value] if isinstance(value, (list, tuple)) else value


class Predictor:
    """One parse of a predictor file: `inputs` and `output` as Cog keeps them, and `problems`, in
    source order, wherever Cog fails the build or loses what the source says."""

    def __init__(self, source: str, class_name: str = "Runner", method: str = "run"):
        self.text, self.lines = source, source.splitlines(keepends=True)
        self.tree = ast.parse(source)
        self.problems: list[Problem] = []
        # inputs.go:441-457: a call to `Input`, or to an alias of cog's Input (imports.go:11-34).
        imports = [
            node
            for node in self.tree.body
            if isinstance(node, ast.ImportFrom) and node.module == "cog"
        ]
        self.input_names = {"Input"} | {
            a.asname for node in imports for a in node.names if a.name == "Input"
        }
        self.scope = self._module_scope()
        self.attributes, self.methods = self._input_registry()
        self.function = self._target(class_name, method)
        self.inputs = self._extract_inputs()
        self.output = self._output()

    def report(self, text: str, fatal: bool = False) -> None:
        self.problems.append(Problem(f"{text} {FAILS}" if fatal else text, fatal))

    def raw(self, node: ast.AST, after: ast.AST | None = None) -> str:
        """The source text of `node`, with the parentheses `ast` folds away when `after` (what
        stands before the `=`) is given: to tree-sitter `(x)` is a parenthesized_expression, no
        literal."""
        text = ast.get_source_segment(self.text, node)
        if after is None:
            return text
        start, end = (after.end_lineno, after.end_col_offset), (node.lineno, node.col_offset)
        opened = self.text[self._index(*start) : self._index(*end)].partition("=")[2].strip()
        return opened + text + ")" * opened.count("(")

    def _index(self, lineno: int, col: int) -> int:  # ast counts columns in UTF-8 bytes
        return sum(map(len, self.lines[: lineno - 1])) + len(
            self.lines[lineno - 1].encode()[:col].decode()
        )

    def is_input_call(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and self.raw(node.func) in self.input_names

    def literal(self, node: ast.AST, raw: str | None = None):
        """literals.go:12-77: the values Cog reads without running anything."""
        raw = self.raw(node) if raw is None else raw
        if raw.startswith("(") and not isinstance(node, ast.Tuple):
            return UNRESOLVED
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or isinstance(value, bool):
                return value
            if isinstance(value, (int, float)):
                return (go_int if isinstance(value, int) else go_float)(raw)
            return go_string(raw) if isinstance(value, str) else UNRESOLVED
        if isinstance(
            node, ast.JoinedStr
        ):  # an f-string starts with f": refused; "a" f"{b}" is cut
            return go_string(raw)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            number = go_int(raw)  # literals.go:58-66 parses the operator's text
            return go_float(raw) if number is UNRESOLVED else number
        if isinstance(node, (ast.List, ast.Set)):
            items = [self.literal(item) for item in node.elts]
            # a set is written as a list, but is no list to `choices` (a tuple stands for it here)
            return (
                UNRESOLVED
                if UNRESOLVED in items
                else items
                if isinstance(node, ast.List)
                else tuple(items)
            )
        if isinstance(node, ast.Tuple):  # literals.go:67-74: an item it cannot read is left out
            return [item for item in map(self.literal, node.elts) if item is not UNRESOLVED]
        if isinstance(node, ast.Dict):  # literals.go:143-164: so is a pair
            pairs = [
                (self.literal(k), self.literal(v)) for k, v in zip(node.keys, node.values) if k
            ]
            pairs = [pair for pair in pairs if UNRESOLVED not in pair]
            return DictValue([k for k, _ in pairs], [v for _, v in pairs])
        return UNRESOLVED

    def resolve(self, node: ast.AST, raw: str, strings_only: bool = False):
        """A literal, else a same-file module constant (module_scope.go:49-75); with the node Python
        would evaluate, for `changed()`."""
        value = go_string(raw) if strings_only else self.literal(node, raw)
        if value is UNRESOLVED and isinstance(node, ast.Name) and node.id in self.scope:
            value, node = self.scope[node.id]
            value = UNRESOLVED if strings_only and not isinstance(value, str) else value
        return value, node

    def changed(self, node: ast.AST, value) -> bool:
        """Whether Cog's reading differs from what Python evaluates: escapes, quotes, lost items."""
        try:
            wanted = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return True  # Cog read text out of an expression that is no literal
        if isinstance(wanted, (set, frozenset)):
            return wanted != set(value)
        return to_json(wanted) != to_json(value)

    # --- what Cog collects before it reads the signature ------------------------------------------
    def _module_scope(self) -> dict:
        # module_scope.go:11-44: top-level `NAME = literal` only; an unreadable later assignment
        # leaves the earlier value in place.
        scope = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, before = node.targets[0], node.targets[0]
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, before = node.target, node.annotation
            else:
                continue
            if isinstance(target, ast.Name):
                value = self.literal(node.value, self.raw(node.value, before))
                if value is not UNRESOLVED:
                    scope[target.id] = (value, node.value)
        return scope

    def _input_registry(self) -> tuple[dict, dict]:
        # inputs.go:41-171: in a top-level class, `attr = Input(...)` and any method whose body
        # returns Input(...), keyed by their text "Cls.attr" / "Cls.method".
        attributes, methods = {}, {}
        for cls in (node for node in self.tree.body if isinstance(node, ast.ClassDef)):
            for stmt in cls.body:
                targets = (
                    stmt.targets
                    if isinstance(stmt, ast.Assign)
                    else [stmt.target]
                    if isinstance(stmt, ast.AnnAssign)
                    else []
                )
                if (
                    len(targets) == 1
                    and isinstance(targets[0], ast.Name)
                    and self.is_input_call(stmt.value)
                ):
                    attributes[f"{cls.name}.{targets[0].id}"] = stmt.value
                if isinstance(stmt, FUNCTIONS):
                    returned = [
                        s.value
                        for s in stmt.body
                        if isinstance(s, ast.Return) and self.is_input_call(s.value)
                    ]
                    params = [
                        p.arg for p in stmt.args.posonlyargs + stmt.args.args + stmt.args.kwonlyargs
                    ]
                    if returned:
                        params = [param for param in params if param not in ("self", "cls")]
                        methods[f"{cls.name}.{stmt.name}"] = (params, returned[0])
        return attributes, methods

    def _target(self, class_name: str, method: str) -> ast.FunctionDef:
        # target.go:89-133: the class's run(), else its legacy predict(). (Cog also looks in a
        # parent class and takes a top-level function; this project has neither.)
        wanted = (method, "predict") if method == "run" else (method,)
        classes = [
            node
            for node in self.tree.body
            if isinstance(node, ast.ClassDef) and node.name == class_name
        ]
        for cls in classes:
            found = {s.name: s for s in cls.body if isinstance(s, FUNCTIONS) and s.name in wanted}
            if not found:
                names = " or ".join(f"{name}()" for name in wanted)
                raise CogBuildError(f"{class_name} must define {names} {FAILS}")
            return found.get(wanted[0]) or found[wanted[-1]]
        raise CogBuildError(f"predictor not found: {class_name} {FAILS}")

    # --- the signature --------------------------------------------------------------------------
    def _extract_inputs(self) -> Ordered:
        """inputs.go:311-439: each typed parameter, in order, `self` left out."""
        args = self.function.args
        positional = args.posonlyargs + args.args
        defaults = [None] * (len(positional) - len(args.defaults)) + args.defaults
        params = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
        inputs = Ordered()
        for index, (arg, default) in enumerate(params):
            if arg.annotation is None and default is not None:  # inputs.go:348-354
                self.report(
                    f"parameter '{arg.arg}' on {self.function.name} has no type annotation",
                    fatal=True,
                )
            elif arg.annotation is None and not (
                index == 0 and arg.arg == "self"
            ):  # inputs.go:321-331
                self.report(
                    f"parameter '{arg.arg}' has no type annotation: Cog leaves it out of the "
                    "schema, so no request can set it"
                )
            elif arg.annotation is not None:
                try:
                    primitive, nullable = self.input_type(arg.annotation)
                except CogBuildError as error:
                    self.report(f"parameter '{arg.arg}': {error}", fatal=True)
                    continue
                raw = None if default is None else self.raw(default, arg.annotation)
                field = {} if default is None else self._field(arg.arg, default, raw)
                if field is not None:
                    inputs[arg.arg] = dict(
                        field, order=len(inputs), primitive=primitive, nullable=nullable
                    )
                    self._check_field(arg.arg, inputs[arg.arg])
        return inputs

    def input_type(self, node: ast.AST) -> tuple[str, bool]:
        """annotations.go:130-231 and types.go:503-634, for the types this project uses."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a forward reference
            node = ast.parse(node.value.strip(), mode="eval").body
        members = union_members(node)
        if members is not None:
            rest = [m for m in members if not (isinstance(m, ast.Constant) and m.value is None)]
            if len(rest) == 1:
                return self.input_type(rest[0])[0], len(rest) < len(members)
            raise CogBuildError(f"cog_schema.py does not model the union `{ast.unparse(node)}`")
        name = ast.unparse(node).split(".", 1)[-1]  # types.go:366-376: `cog.Path` is `Path`
        if name in PRIMITIVES:
            return name, False
        if isinstance(node, (ast.Name, ast.Attribute)) and name not in (
            "Secret",
            "Any",
            "dict",
            "Dict",
        ):
            raise CogBuildError(f"cannot resolve type '{name}'")  # types.go:528-537
        raise CogBuildError(f"cog_schema.py does not model the type `{ast.unparse(node)}`")

    def _field(self, name: str, default: ast.AST, raw: str) -> dict | None:
        """inputs.go:398-434: Input(...), else a same-file `Cls.attr` / `Cls.method(...)`, else a
        literal or module constant; anything else fails the build (None)."""
        key = ast.unparse(default.func if isinstance(default, ast.Call) else default)
        bare = not raw.startswith("(")  # to tree-sitter `(Input(...))` is no call
        if bare and self.is_input_call(default):
            return self.input_call(default, f"parameter '{name}'")
        if bare and isinstance(default, ast.Attribute) and key in self.attributes:
            registered = self._registered(name, key, raw)
            return (
                self.input_call(self.attributes[key], f"parameter '{name}' ({key})")
                if registered
                else None
            )
        if bare and isinstance(default, ast.Call) and key in self.methods:
            return (
                self._method_call(name, key, default, raw)
                if self._registered(name, key, raw)
                else None
            )
        value, source = self.resolve(default, raw)
        if value is UNRESOLVED:
            self.report(
                f"parameter '{name}': default `{raw}` cannot be statically resolved", fatal=True
            )
            return None
        if self.changed(source, value):
            self.report(f"parameter '{name}': default `{raw}` is read by Cog as {to_json(value)!r}")
        return {"default": value}

    def input_call(self, call: ast.Call, where: str, skip: tuple = ()) -> dict | None:
        """inputs.go:459-534: the keyword arguments of Input(...); None when the build fails. Keys
        in `skip` are set at a Cls.method() call site, so what the method's Input() says does not
        count."""
        for arg in call.args:  # inputs.go:467-470: only keyword arguments are read
            self.report(
                f"{where}: positional argument `{self.raw(arg)}` to Input() is ignored by Cog; "
                "write default=..."
            )
        info, failed = {}, False
        for keyword in call.keywords:
            if keyword.arg is None:
                self.report(
                    f"{where}: Input(**{self.raw(keyword.value)}) is not read by Cog: every "
                    "setting in it is dropped"
                )
            elif keyword.arg not in skip:
                raw = ast.get_source_segment(self.text, keyword).partition("=")[2].strip()
                value = self._keyword(where, keyword.arg, keyword.value, raw)
                failed |= value is UNRESOLVED
                if value is not UNRESOLVED and value is not DROPPED:
                    info[keyword.arg] = value
        return None if failed else info

    def _keyword(self, where: str, key: str, node: ast.AST, raw: str):
        """One Input() keyword as Cog reads it; DROPPED, or UNRESOLVED when the build fails."""
        if key == "default_factory":  # inputs.go:486-487
            self.report(
                f"{where}: default_factory is not supported in static schema generation", fatal=True
            )
            return UNRESOLVED
        if key == "default":  # inputs.go:479-485: a default it cannot read becomes None
            value, node = self.resolve(node, raw)
            if value is UNRESOLVED:
                self.report(
                    f"{where}: default=`{raw}` cannot be statically resolved, so Cog writes "
                    "default None (a required input unless the type is Optional)"
                )
                return None
        elif key == "choices":  # inputs.go:514-521
            value = self.choices(node, raw)
            if value is UNRESOLVED:
                self.report(
                    f"{where}: choices expression `{raw}` cannot be statically resolved", fatal=True
                )
                return UNRESOLVED
            # what to compare with Python's reading: the literal list, or the constant's
            node = (
                self.scope[node.id][1]
                if isinstance(node, ast.Name)
                else (node if isinstance(node, ast.List) else None)
            )
        elif key in ("ge", "le", "min_length", "max_length"):  # inputs.go:492-509
            value = self._kept(where, key, raw, go_float(raw), "a number literal")
            return (
                int(value) if key.endswith("length") and value is not DROPPED else value
            )  # uint64(n)
        elif key == "description":  # inputs.go:488-491
            value, node = self.resolve(node, raw, strings_only=True)
            value = self._kept(
                where, key, raw, value, "a string literal or same-file string constant"
            )
        elif key == "regex":  # inputs.go:510-513
            value = self._kept(where, key, raw, go_string(raw), "a string literal")
        elif key == "deprecated":  # inputs.go:522-525
            flag = {"True": True, "False": False}.get(raw, UNRESOLVED)
            value = self._kept(where, key, raw, flag, "True or False")
        else:
            return DROPPED  # a keyword Cog does not know (Python's Input() refuses it anyway)
        if value is not DROPPED and node is not None and self.changed(node, value):
            self.report(f"{where}: {key}=`{raw}` is read by Cog as {to_json(value)!r}")
        return value

    def _kept(self, where: str, key: str, raw: str, value, what: str):
        if value is UNRESOLVED:
            self.report(f"{where}: {key}=`{raw}` is not {what}: Cog drops it")
            return DROPPED
        return value

    def choices(self, node: ast.AST, raw: str):
        """inputs.go:515-518, module_scope.go:78-175: a list literal, a same-file list or tuple
        constant, list(D.keys()) / list(D.values()) of a same-file dict, or `a + b` of those."""
        if raw.startswith("("):
            return UNRESOLVED
        if isinstance(node, ast.List):
            return self.literal(node, raw)
        if isinstance(node, ast.Name):
            value = self.scope.get(node.id, (None,))[0]
            return value if isinstance(value, list) else UNRESOLVED
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = (self.choices(side, self.raw(side)) for side in (node.left, node.right))
            return UNRESOLVED if UNRESOLVED in (left, right) else left + right
        is_list_call = isinstance(node, ast.Call) and self.raw(node.func) == "list" and node.args
        inner = node.args[0] if is_list_call else None
        method = (
            inner.func
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
            else None
        )
        if (
            method is not None
            and isinstance(method.value, ast.Name)
            and method.attr in ("keys", "values")
        ):
            table = self.scope.get(method.value.id, (None,))[0]
            if isinstance(table, DictValue):
                return table.keys if method.attr == "keys" else table.values
        return UNRESOLVED

    def _registered(self, name: str, key: str, raw: str) -> bool:
        """inputs.go:92-95, 152-155: Cog skips, without a word, a `Cls.attr` or `Cls.method` whose
        Input() fails to parse; a parameter using it then has a default it cannot resolve."""
        kept, self.problems = self.problems, []
        failed = self.input_call(self.attributes.get(key) or self.methods[key][1], key) is None
        reason = next((problem.text for problem in self.problems if problem.fatal), "")
        self.problems = kept
        if failed:
            self.report(
                f"parameter '{name}': default `{raw}` cannot be statically resolved, because Cog "
                f"skips {reason.removesuffix(FAILS).strip()}",
                fatal=True,
            )
        return not failed

    def _method_call(self, name: str, key: str, call: ast.Call, raw: str) -> dict | None:
        """inputs.go:173-239: the method's Input(...), whose default/description/ge/le an argument
        of that *name* replaces if it is a literal; every other argument is ignored."""
        names, body = self.methods[key]
        given = {kw.arg: kw.value for kw in call.keywords if kw.arg} | dict(zip(names, call.args))
        where = f"parameter '{name}' ({raw})"
        readers = {
            "default": self.literal,
            "description": lambda _, raw: go_string(raw),
            "ge": lambda _, raw: go_float(raw),
            "le": lambda _, raw: go_float(raw),
        }
        overridden = {}
        for key_word, node in given.items():
            text = self.raw(node)
            value = readers[key_word](node, text) if key_word in readers else DROPPED
            if value is DROPPED:
                self.report(
                    f"{where}: argument {key_word}=`{text}` is ignored by Cog: at a call site it "
                    "reads only default, description, ge and le"
                )
            elif value is UNRESOLVED:
                self.report(
                    f"{where}: {key_word}=`{text}` is not a literal, all Cog reads at a call site: "
                    "it keeps what the method's Input() says"
                )
            else:
                if self.changed(node, value):
                    self.report(
                        f"{where}: {key_word}=`{text}` is read by Cog as {to_json(value)!r}"
                    )
                overridden[key_word] = value
        where = f"parameter '{name}' (the Input() {key} returns)"
        info = self.input_call(body, where, skip=tuple(overridden))
        return None if info is None else info | overridden

    def _check_field(self, name: str, field: dict) -> None:
        # openapi_spec.go:368-400: None on a type that is not Optional is no default at all.
        if "default" in field and field["default"] is None and not field["nullable"]:
            self.report(
                f"parameter '{name}': default None on a type that is not Optional: Cog makes it a "
                "required input; annotate it Optional[...]"
            )

    def _output(self) -> dict | None:
        """parser.go:258-290; schema_type.go:86-102, 239-329 and 366-427."""
        node = self.function.returns
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node = ast.parse(node.value.strip(), mode="eval").body
        name = ast.unparse(node).split(".", 1)[-1] if node else ""
        if node is None:
            self.report(f"missing return type annotation on {self.function.name}", fatal=True)
        elif union_members(node) is not None:
            self.report(
                "unsupported output type: Optional is not allowed as a return type", fatal=True
            )
        elif name in PRIMITIVES:
            return dict(PRIMITIVES[name], title="Output")
        else:
            self.report(f"cog_schema.py does not model the output type `{name}`", fatal=True)
        return None


def union_members(node: ast.AST) -> list | None:
    """`X | Y` (annotations.go:166-207), Optional[X] (types.go:548-558) or Union[...]; else None."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return (union_members(node.left) or [node.left]) + (
            union_members(node.right) or [node.right]
        )
    if isinstance(node, ast.Subscript) and ast.unparse(node.value).split(".", 1)[-1] in (
        "Optional",
        "Union",
    ):
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        optional = ast.unparse(node.value).endswith("Optional")
        return [*args, ast.Constant(None)] if optional else args
    return None


def title_case(name: str) -> str:
    """types.go:840-849: snake_case to Title Case."""
    return " ".join(part[:1].upper() + part[1:] for part in name.split("_"))


def input_schema(inputs: Ordered) -> tuple[dict, Ordered]:
    """openapi_spec.go:320-460: the Input component, and an enum component for each `choices`."""
    properties, enums, required = Ordered(), Ordered(), []
    for name, field in inputs.items():
        prop = {"x-order": field["order"]}
        if field.get(
            "choices"
        ):  # a component named as the parameter is, in place of type and title
            enums[name] = {
                "title": name,
                "description": "An enumeration.",
                "enum": to_json(field["choices"]),
                "type": PRIMITIVES[field["primitive"]]["type"],
            }
            prop["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
        else:
            prop.update(PRIMITIVES[field["primitive"]], title=title_case(name))
        nullable = field["nullable"]
        has_default = "default" in field and (field["default"] is not None or nullable)
        if not has_default and not nullable:
            required.append(name)
        if has_default:
            prop["default"] = to_json(field["default"])
        if nullable:
            prop["nullable"] = True
        for key, schema_key in (
            ("description", "description"),
            ("ge", "minimum"),
            ("le", "maximum"),
            ("min_length", "minLength"),
            ("max_length", "maxLength"),
            ("regex", "pattern"),
        ):
            if key in field:
                prop[schema_key] = field[key]
        if field.get("deprecated"):
            prop["deprecated"] = True
        properties[name] = prop
    schema = {"title": "Input", "type": "object", "properties": properties}
    return (dict(schema, required=required) if required else schema), enums


def document(inputs: Ordered, output: dict, version: str) -> dict:
    """openapi_spec.go:23-265 for a predictor that does not stream. The post-processing there
    (removeTitleNextToRef, fixNullableAnyOf) changes nothing in what this writes."""

    def answer(schema: dict) -> dict:
        return {
            "description": "Successful Response",
            "content": {"application/json": {"schema": schema}},
        }

    def text(title: str, **extra) -> dict:
        return {"title": title, "type": "string", **extra}

    names = (
        "Input",
        "Output",
        "PredictionRequest",
        "PredictionResponse",
        "HTTPValidationError",
        "ValidationError",
    )
    ref = {name: {"$ref": f"#/components/schemas/{name}"} for name in names}
    invalid = {
        "description": "Validation Error",
        "content": {"application/json": {"schema": ref["HTTPValidationError"]}},
    }
    input_component, enums = input_schema(inputs)
    schemas = Ordered(Input=input_component, Output=output, **enums)
    schemas.update(
        {
            "PredictionRequest": {
                "title": "PredictionRequest",
                "type": "object",
                "properties": {"id": text("Id"), "input": ref["Input"]},
            },
            "PredictionResponse": {
                "title": "PredictionResponse",
                "type": "object",
                "properties": {
                    "input": ref["Input"],
                    "output": ref["Output"],
                    "id": text("Id"),
                    "version": text("Version"),
                    **{
                        key: text(title_case(key), format="date-time")
                        for key in ("created_at", "started_at", "completed_at")
                    },
                    "status": text("Status"),
                    "error": text("Error"),
                    "logs": text("Logs"),
                    "metrics": {"title": "Metrics", "type": "object"},
                },
            },
            "Status": text(
                "Status",
                description="An enumeration.",
                enum=["starting", "processing", "succeeded", "canceled", "failed"],
            ),
            "HTTPValidationError": {
                "title": "HTTPValidationError",
                "type": "object",
                "properties": {
                    "detail": {"title": "Detail", "type": "array", "items": ref["ValidationError"]}
                },
            },
            "ValidationError": {
                "title": "ValidationError",
                "required": ["loc", "msg", "type"],
                "type": "object",
                "properties": {
                    "loc": {
                        "title": "Location",
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": text("Message"),
                    "type": text("Error Type"),
                },
            },
        }
    )
    paths = Ordered(
        {
            "/": {
                "get": {
                    "summary": "Root",
                    "operationId": "root__get",
                    "responses": {"200": answer({})},
                }
            },
            "/health-check": {
                "get": {
                    "summary": "Healthcheck",
                    "operationId": "healthcheck_health_check_get",
                    "responses": {"200": answer({})},
                }
            },
            "/predictions": {
                "post": {
                    "summary": "Predict",
                    "description": "Run a single prediction on the model",
                    "operationId": "predict_predictions_post",
                    "requestBody": {
                        "content": {"application/json": {"schema": ref["PredictionRequest"]}}
                    },
                    "responses": {"200": answer(ref["PredictionResponse"]), "422": invalid},
                }
            },
            "/predictions/{prediction_id}/cancel": {
                "post": {
                    "summary": "Cancel",
                    "operationId": "cancel_predictions__prediction_id__cancel_post",
                    "parameters": [
                        {
                            "required": True,
                            "schema": text("Prediction Id"),
                            "name": "prediction_id",
                            "in": "path",
                        }
                    ],
                    "responses": {"200": answer({}), "422": invalid},
                }
            },
        }
    )
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def go_json(value) -> str:
    """Compact JSON as Go's encoding/json writes it: map keys sorted (Ordered ones kept), <, > and &
    escaped, a whole float without ".0" (the exponent forms below 1e-6 and from 1e21 are not
    redone)."""
    if isinstance(value, dict):
        items = value.items() if isinstance(value, Ordered) else sorted(value.items())
        return "{" + ",".join(f"{go_json(key)}:{go_json(item)}" for key, item in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(go_json, value)) + "]"
    if isinstance(value, float):
        number = format(Decimal(repr(value)), "f")
        return number.rstrip("0").rstrip(".") if "." in number else number
    escaped = json.dumps(value, ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        escaped = escaped.replace(char, f"\\u{ord(char):04x}")
    return escaped


def cog_version() -> str:
    """`info.version` is the cog CLI's version (openapi_spec.go:259); it is released together with
    the SDK installed here. "dev" is what a CLI built from source writes."""
    try:
        return metadata.version("cog")
    except metadata.PackageNotFoundError:
        return "dev"


def openapi_schema(
    predict_py: Path, class_name: str = "Runner", method: str = "run", version: str | None = None
) -> dict:
    """The document `cog build` writes to .cog/openapi_schema.json; CogBuildError where it fails."""
    predictor = Predictor(Path(predict_py).read_text(), class_name, method)
    fatal = [problem.text for problem in predictor.problems if problem.fatal]
    if fatal:
        raise CogBuildError(fatal[0])
    return document(predictor.inputs, predictor.output, version or cog_version())


def check_predict_file(
    predict_py: Path, class_name: str = "Runner", method: str = "run"
) -> list[str]:
    """Every place where `cog build` fails (the text ends "(cog build fails)") or Cog silently drops
    or changes what predict.py says, in source order; [] when there is none."""
    try:
        predictor = Predictor(Path(predict_py).read_text(), class_name, method)
    except CogBuildError as error:
        return [str(error)]
    return [problem.text for problem in predictor.problems]


def write_schema(predict_py: Path, out: Path, class_name: str = "Runner") -> dict:
    schema = openapi_schema(predict_py, class_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(go_json(schema))
    return schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predict_py", nargs="?", type=Path, default=Path("predict.py"))
    parser.add_argument("--class", dest="class_name", default="Runner")
    parser.add_argument(
        "--out", type=Path, help="default: .cog/openapi_schema.json beside predict.py"
    )
    args = parser.parse_args(argv)
    problems = check_predict_file(args.predict_py, args.class_name)
    for problem in problems:
        print(f"{args.predict_py}: {problem}", file=sys.stderr)
    if not any(problem.endswith(FAILS) for problem in problems):
        out = args.out or args.predict_py.parent / ".cog" / "openapi_schema.json"
        write_schema(args.predict_py, out, args.class_name)
        print(f"wrote {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
