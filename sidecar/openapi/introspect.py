"""What a handler reads from a request, found in its source: query parameters parsed with the
``sidecar.routes.params`` helpers (name, type, default, bounds), raw ``request.query`` reads,
and the keys read from a JSON body.

The OpenAPI document is built from this, so it cannot drift from the handlers: a parameter
added, renamed or re-bounded in a handler is in the next document.  Helpers of the same module
that a handler calls (``_window(request)``) are followed.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from sidecar.config import Settings

#: params.py helper -> (OpenAPI type, positional argument names after ``request``)
PARAM_HELPERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "int_param": ("integer", ("name", "default", "lo", "hi")),
    "float_param": ("number", ("name", "default", "lo", "hi")),
    "bool_param": ("boolean", ("name", "default")),
    "str_param": ("string", ("name", "required")),
    "list_param": ("array", ("name",)),
}


@dataclass
class QueryParam:
    name: str
    type: str
    default: Any = None
    minimum: Any = None
    maximum: Any = None
    required: bool = False
    #: bounds or defaults that are expressions (``start + 200``), as source text
    notes: list[str] = field(default_factory=list)


@dataclass
class HandlerReads:
    query: dict[str, QueryParam] = field(default_factory=dict)
    body_keys: list[str] = field(default_factory=list)
    #: keys read from a posted form (``form = await request.post()``)
    form_keys: list[str] = field(default_factory=list)


class _Unknown:
    def __init__(self, text: str) -> None:
        self.text = text


def _value(node: ast.expr | None, module: ModuleType) -> Any:
    """A literal, a module constant, or a setting's default (``settings.x``,
    ``request.app[SETTINGS].x``); anything else is :class:`_Unknown` with its source text."""
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    if isinstance(node, ast.Name):
        value = getattr(module, node.id, None)
        if isinstance(value, int | float | str | bool):
            return value
    if isinstance(node, ast.Attribute) and node.attr in Settings.model_fields:
        base = ast.unparse(node.value)
        if base.endswith("settings") or base.endswith("[SETTINGS]"):
            default = Settings.model_fields[node.attr].default
            return _Unknown(f"setting {node.attr.upper()} (default {default})")
    return _Unknown(ast.unparse(node))


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _args(call: ast.Call, names: tuple[str, ...]) -> dict[str, ast.expr]:
    """The helper's arguments by name (the first positional one, ``request``, dropped)."""
    out = dict(zip(names, call.args[1:], strict=False))
    out.update({k.arg: k.value for k in call.keywords if k.arg})
    return out


def _param(call: ast.Call, helper: str, module: ModuleType) -> QueryParam | None:
    kind, names = PARAM_HELPERS[helper]
    args = _args(call, names)
    name = _value(args.get("name"), module)
    if not isinstance(name, str):
        return None
    p = QueryParam(name, kind)
    for attr in ("default", "lo", "hi", "required"):
        v = _value(args.get(attr), module)
        if isinstance(v, _Unknown):
            p.notes.append(f"{'minimum' if attr == 'lo' else 'maximum' if attr == 'hi' else attr}: {v.text}")
            continue
        if attr == "default":
            p.default = v
        elif attr == "lo":
            p.minimum = v
        elif attr == "hi":
            p.maximum = v
        elif attr == "required":
            p.required = bool(v)
    return p


@functools.cache
def _module_functions(module: ModuleType) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(inspect.getsource(module))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _calls(fn: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            yield node


def _query_read(call: ast.Call) -> str | None:
    """``request.query.get("x")`` / ``.getall("x")`` / ``.getone("x")``."""
    f = call.func
    if (
        isinstance(f, ast.Attribute)
        and f.attr in ("get", "getall", "getone")
        and isinstance(f.value, ast.Attribute)
        and f.value.attr == "query"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ):
        return call.args[0].value
    return None


def _body_key(call: ast.Call) -> str | None:
    """``body.get("k")``, or a helper called as ``helper(body, "k", ...)``."""
    f = call.func
    if (
        isinstance(f, ast.Attribute)
        and f.attr == "get"
        and isinstance(f.value, ast.Name)
        and f.value.id == "body"
    ):
        first = call.args[0] if call.args else None
    elif len(call.args) >= 2 and isinstance(call.args[0], ast.Name) and call.args[0].id == "body":
        first = call.args[1]
    else:
        return None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _form_key(call: ast.Call) -> str | None:
    f = call.func
    if (
        isinstance(f, ast.Attribute)
        and f.attr == "get"
        and isinstance(f.value, ast.Name)
        and f.value.id == "form"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ):
        return call.args[0].value
    return None


def handler_reads(handler: Callable[..., Any]) -> HandlerReads:
    """What ``handler`` (and the functions of its module it calls) reads from the request."""
    fn = inspect.unwrap(handler)
    module = inspect.getmodule(fn)
    out = HandlerReads()
    if module is None:
        return out
    functions = _module_functions(module)
    start = functions.get(fn.__code__.co_name)
    if start is None or start.lineno < fn.__code__.co_firstlineno:
        # made by a factory (a closure): its own source
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        start = next(n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    seen: set[str] = set()
    todo: list[ast.FunctionDef | ast.AsyncFunctionDef] = [start]
    while todo:
        node = todo.pop(0)
        if node.name in seen:
            continue
        seen.add(node.name)
        for call in _calls(node):
            name = _call_name(call)
            if name in PARAM_HELPERS:
                p = _param(call, name, module)
                if p is not None and p.name not in out.query:
                    out.query[p.name] = p
            elif (q := _query_read(call)) is not None:
                out.query.setdefault(q, QueryParam(q, "string"))
            elif (k := _body_key(call)) is not None:
                if k not in out.body_keys:
                    out.body_keys.append(k)
            elif (k := _form_key(call)) is not None:
                if k not in out.form_keys:
                    out.form_keys.append(k)
            if isinstance(call.func, ast.Name) and call.func.id in functions:
                todo.append(functions[call.func.id])
    return out
