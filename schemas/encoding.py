"""The JSON of a message our own code builds by the thousand (a customer record per imported
customer, a link event and a fill command per first-synced pair), without pydantic's cost
per message (a model and its JSON cost 7-25 µs; orjson about 1 µs).

The shortcut is taken only when the model would accept the values exactly as they are: the
check is derived from the model's own field definitions the first time it is encoded, so a
field added to a model is checked (or, if its type is not one the check knows, sends every
message through the model) without anything here to edit. Anything else goes through the
model, which normalises it or raises its ValidationError. Either way the bytes are the
model's `model_dump_json(exclude_unset=True)`; tests/unit/test_message_encoding.py holds the
two paths equal.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
from pydantic import BaseModel, StringConstraints

# pydantic writes an aware UTC datetime as "...Z", orjson as "...+00:00" unless told.
_OPTIONS = orjson.OPT_UTC_Z


def message_json(model: type[BaseModel], values: Mapping[str, Any]) -> bytes:
    """`model.model_validate(values).model_dump_json(exclude_unset=True)`, as bytes, at
    orjson's cost when `values` are already what the model would make of them (the fields
    it declares, in its order, of the right types; nested models as such dicts)."""
    if type(values) is dict:
        shape = tuple(values)
        try:
            accepts = _CHECKS[model][shape]
        except KeyError:
            accepts = _learn_shape(model, shape)
        if accepts(values):
            try:
                return orjson.dumps(values, option=_OPTIONS)
            except orjson.JSONEncodeError:  # e.g. a lone surrogate: the model decides
                pass
    return model.model_validate(values).model_dump_json(exclude_unset=True).encode()


# Each model's checks, one per shape of values (the fields present, in their order): a
# message with unset fields left out has a shape of its own. Our writers use a handful of
# shapes; past this many the model decides.
_MOST_SHAPES = 256
_CHECKS: dict[type[BaseModel], dict[tuple[str, ...], Callable[[Any], bool]]] = {}


def _learn_shape(model: type[BaseModel], shape: tuple[str, ...]) -> Callable[[Any], bool]:
    checks = _CHECKS.setdefault(model, {})
    if len(checks) >= _MOST_SHAPES:
        return _refuse
    check = checks[shape] = _shape_check(model, shape)
    return check


def _refuse(values: Any) -> bool:
    return False


def _accepts_as_is(model: type[BaseModel], values: Any) -> bool:
    """The check of a nested model's values in a shape other than its full one."""
    if type(values) is not dict:
        return False
    shape = tuple(values)
    try:
        accepts = _CHECKS[model][shape]
    except KeyError:
        accepts = _learn_shape(model, shape)
    return accepts(values)


def _shape_check(model: type[BaseModel], shape: tuple[str, ...]) -> Callable[[Any], bool]:
    """Whether values of this shape are what the model would make of them: a function
    written as Python source and compiled once (as `dataclasses` writes `__init__`), one
    expression per field, since a loop of small checks costs several times the microsecond
    or two this saves on a message."""
    names: dict[str, Any] = {}
    test = _fields_test(model, shape, "values", "v", names)
    if test is None:
        return _refuse  # unknown fields, a required one missing, another order
    exec(f"def accepts(values):\n    return {test}\n", names)
    accepts: Callable[[Any], bool] = names["accepts"]
    return accepts


def _fields_test(
    model: type[BaseModel], shape: tuple[str, ...], source: str, prefix: str, names: dict[str, Any]
) -> str | None:
    """An expression true when the fields of `source` (a dict of this shape) are what the
    model keeps as they are; None when no values of this shape are."""
    fields = model.model_fields
    required = {name for name, info in fields.items() if info.is_required()}
    if list(shape) != [name for name in fields if name in shape] or not required <= set(shape):
        return None
    tests = [
        _value_test(
            fields[name].annotation,
            fields[name].metadata,
            f"({prefix}{number} := {source}[{name!r}])",
            f"{prefix}{number}",
            names,
        )
        for number, name in enumerate(shape)
    ]
    return " and ".join(tests) or "True"


def _value_test(
    annotation: Any, metadata: list[Any], value: str, variable: str, names: dict[str, Any]
) -> str:
    """A Python expression true when pydantic keeps `value` (an expression that also binds
    `variable`) exactly as it is; strict: `1` for a text field is refused here, and the model
    decides."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *more = get_args(annotation)
        return _value_test(inner, [*metadata, *more], value, variable, names)
    if origin in (Union, types.UnionType):
        options = [option for option in get_args(annotation) if option is not type(None)]
        if len(options) != 1:
            return "False"  # a union of several types: the model decides
        test = _value_test(options[0], metadata, variable, variable, names)
        return f"({value} is None or {test})"
    if origin is Literal:
        choices = _name(names, frozenset(get_args(annotation)))
        return f"(type({value}) is str and {variable} in {choices})"
    if annotation is str:
        return _text_test(metadata, value, variable)
    if annotation in (bool, int, float, datetime):
        return f"type({value}) is {_name(names, annotation)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        # A nested model's values in its full shape (the usual case) are checked in line;
        # any other shape goes through the look-up by shape.
        order = tuple(annotation.model_fields)
        inline = _fields_test(annotation, order, variable, f"{variable}_", names)
        other = _name(names, partial(_accepts_as_is, annotation))
        full = _name(names, order)
        return (
            f"(type({value}) is dict and (tuple({variable}) == {full} and {inline}"
            f" or tuple({variable}) != {full} and {other}({variable})))"
        )
    return "False"  # a type this check does not know: the model decides


def _text_test(metadata: list[Any], value: str, variable: str) -> str:
    constraints = [item for item in metadata if isinstance(item, StringConstraints)]
    if not constraints:
        return f"type({value}) is str"
    (only,) = constraints if len(constraints) == 1 else (None,)
    if only is None or _constraints_set(only) - {"strip_whitespace", "min_length"}:
        return "False"
    test = f"type({value}) is str"
    if only.min_length:
        test += f" and len({variable}) >= {int(only.min_length)}"
    if only.strip_whitespace:
        test += f" and {variable} == {variable}.strip()"
    return f"({test})"


def _constraints_set(constraints: StringConstraints) -> set[str]:
    names = ("strip_whitespace", "to_upper", "to_lower", "strict", "min_length", "max_length")
    return {name for name in (*names, "pattern") if getattr(constraints, name) not in (None, False)}


def _name(names: dict[str, Any], thing: Any) -> str:
    name = f"_{len(names)}"
    names[name] = thing
    return name
