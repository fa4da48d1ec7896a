"""The vocabulary of valid values: types and ranges, and the check of one value against them.

A component declares its parameters' ranges in its own signature, with the annotated-types
vocabulary (`lr: Annotated[float, Gt(0)]`, or the aliases below); the registry checks every value a
config gives against them, and dlkit/plan.py the keys that belong to no component.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import annotated_types as at

from dlkit.errors import ConfigError

PositiveFloat = Annotated[float, at.Gt(0)]
NonNegativeFloat = Annotated[float, at.Ge(0)]
Fraction = Annotated[float, at.Interval(ge=0, lt=1)]  # dropout p, a momentum β
SplitFraction = Annotated[float, at.Interval(gt=0, lt=1)]  # a validation or test share
PositiveInt = Annotated[int, at.Ge(1)]
NonNegativeInt = Annotated[int, at.Ge(0)]
NonEmptyStr = Annotated[str, at.MinLen(1)]

_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def check_value(key: str, value: Any, annotation: Any) -> None:
    """Raise a ConfigError naming key, value and what is allowed, if value does not fit annotation. A list's
    items (Sequence[PositiveInt]) and a TypedDict's keys are checked one by one: `model.hidden[0]`."""
    if typing.get_origin(annotation) in (Sequence, list):
        if not _is_list(value):
            raise ConfigError(f"{key} must be a list, e.g. [{value!r}], got {value!r}.")
        (item,) = typing.get_args(annotation)
        for i, each in enumerate(value):
            check_value(f"{key}[{i}]", each, item)
        return
    if typing.is_typeddict(annotation) and isinstance(value, Mapping):
        fields = typing.get_type_hints(annotation, include_extras=True)
        for name, each in value.items():
            if name in fields:
                check_value(f"{key}.{name}", each, fields[name])
        return
    options, constraints = _parts(annotation)
    if value is None:
        if type(None) not in options:
            raise ConfigError(f"{key} must be set ({_describe(options, constraints)}), got null.")
        return
    simple = [t for t in options if t in _TYPE_WORDS]
    if (
        simple
        and not any(is_a(value, t) for t in simple)
        and len(simple) == len([t for t in options if t is not type(None)])
    ):
        raise ConfigError(f"{key} must be {_describe(options, constraints)}, got {value!r}.")
    for constraint in _flat(constraints):
        if not _holds(constraint, value):
            raise ConfigError(f"{key} must be {_describe(options, constraints)}, got {value!r}.")


def _parts(annotation: Any) -> tuple[tuple, list]:
    """Annotated[float, Gt(0)] | None -> ((float, NoneType), [Gt(0)])."""
    constraints: list = []
    if typing.get_origin(annotation) is Annotated:
        annotation, *constraints = typing.get_args(annotation)
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = []
    for option in typing.get_args(annotation) if union else (annotation,):
        if typing.get_origin(option) is Annotated:
            option, *extra = typing.get_args(option)
            constraints += extra
        options.append(option)
    return tuple(options), constraints


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def is_a(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _flat(constraints: list) -> list:
    flat = []
    for c in constraints:
        flat += list(c) if isinstance(c, at.GroupedMetadata) else [c]
    return flat


_OPS = {
    at.Gt: (">", lambda v, b: v > b),
    at.Ge: ("≥", lambda v, b: v >= b),
    at.Lt: ("<", lambda v, b: v < b),
    at.Le: ("≤", lambda v, b: v <= b),
}


def _bound(constraint) -> Any:
    return next(getattr(constraint, f) for f in ("gt", "ge", "lt", "le") if hasattr(constraint, f))


def _holds(constraint, value: Any) -> bool:
    if isinstance(constraint, at.MinLen):
        return not isinstance(value, str) or len(value) >= constraint.min_length
    op = _OPS.get(type(constraint))
    if op is None or not isinstance(value, (int, float)):
        return True
    return op[1](value, _bound(constraint))


def _describe(options: tuple, constraints: list) -> str:
    words = " or ".join(_TYPE_WORDS[t] for t in options if t in _TYPE_WORDS) or "a value"
    flat = [c for c in _flat(constraints) if type(c) in _OPS]
    low = next((c for c in flat if isinstance(c, (at.Gt, at.Ge))), None)
    high = next((c for c in flat if isinstance(c, (at.Lt, at.Le))), None)
    if low is not None and high is not None:
        opening, closing = "(" if isinstance(low, at.Gt) else "[", ")" if isinstance(high, at.Lt) else "]"
        words += f" in {opening}{_bound(low)}, {_bound(high)}{closing}"
    elif low is not None or high is not None:
        c = low if low is not None else high
        words += f" {_OPS[type(c)][0]} {_bound(c)}"
    if any(isinstance(c, at.MinLen) for c in _flat(constraints)):
        words = f"a non-empty {words.removeprefix('a ')}"
    if type(None) in options:
        words += " (or null)"
    return words


def hints(factory: Any) -> dict[str, Any]:
    """A factory's parameter annotations, resolved (a plugin's unresolvable ones are skipped)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        return {}
