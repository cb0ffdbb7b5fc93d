"""Typed dataclasses from plain mappings (a preset's sections), with one-line errors, and the shared validators.

Every problem with a config value is one :class:`~harness.core.errors.ConfigError` line of one form::

    section.field: what is wrong; allowed: what would be accepted
    ppo.kl_coef: got -1; allowed: a number >= 0
    spg.equivalence: got 'cosine'; allowed: 'exact', 'embedding', 'nli'

:func:`build` checks every key and value against the dataclass's type hints (``Literal`` choices, numbers, paths,
nested dataclasses) before the dataclass's own ``__post_init__`` checks what types cannot say (ranges), with the
``require_*`` validators below. A validator names the bare field (``kl_coef: got -1; ...``): it cannot know which
section its dataclass was read from, so :func:`build` adds the dotted section in front.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

from harness.core.errors import ConfigError


def invalid(name: str, value: Any, allowed: str) -> ConfigError:
    """The one error of a bad value: ``name: got value; allowed: allowed``."""
    return ConfigError(f"{name}: got {value!r}; allowed: {allowed}")


def _checked(obj: Any, names: tuple[str, ...], ok: typing.Callable[[Any], bool], allowed: str) -> None:
    """Raises :func:`invalid` for the first of ``names`` whose value fails ``ok``; None passes (an unset option)."""
    for name in names:
        value = getattr(obj, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise invalid(name, value, allowed + (" or null" if _accepts_none(obj, name) else ""))


def _accepts_none(obj: Any, name: str) -> bool:
    return type(None) in typing.get_args(typing.get_type_hints(type(obj)).get(name))


def require_positive(obj: Any, *names: str) -> None:
    """Each field of ``names`` is a number > 0 (or None, where its type allows it)."""
    _checked(obj, names, lambda v: v > 0, "a number > 0")


def require_at_least(obj: Any, minimum: float, *names: str) -> None:
    """Each field of ``names`` is a number >= ``minimum`` (or None, where its type allows it)."""
    _checked(obj, names, lambda v: v >= minimum, f"a number >= {minimum}")


def require_between(obj: Any, low: float, high: float, *names: str, closed: str = "[]") -> None:
    """Each field of ``names`` lies between ``low`` and ``high``; ``closed`` gives the interval's brackets
    (``"[]"`` both ends included, ``"[)"`` the high end excluded, ``"()"`` both excluded)."""
    left, right = closed

    def ok(value: float) -> bool:
        above = value >= low if left == "[" else value > low
        below = value <= high if right == "]" else value < high
        return above and below

    _checked(obj, names, ok, f"a number in {left}{low}, {high}{right}")


def require_probability(obj: Any, *names: str) -> None:
    """Each field of ``names`` is a probability, a number in [0, 1]."""
    require_between(obj, 0, 1, *names)


def require_choice(obj: Any, *names: str) -> None:
    """Each ``Literal`` field of ``names`` holds one of its choices: :func:`build` checks this when it reads a
    preset; a dataclass built in code (a judge's options) calls this to be held to the same rule."""
    hints = typing.get_type_hints(type(obj))
    for name in names:
        if getattr(obj, name) not in typing.get_args(hints[name]):
            raise invalid(name, getattr(obj, name), describe(hints[name]))


def require_that(ok: bool, obj: Any, name: str, allowed: str) -> None:
    """A rule no other validator states (a power of 2, a divisor of another field): raises unless ``ok``.

    ``allowed`` names another field with its value in brackets, ``a divisor of rollout_batch_size (64)``: the
    loader then blames the ``--set`` that gave that field, when one did.
    """
    if not ok:
        raise invalid(name, getattr(obj, name), allowed)


def build(cls: type, data: Any, where: str) -> Any:
    """Builds dataclass ``cls`` from a mapping, checking keys and types; ``where`` is the dotted path so far.

    An instance of ``cls`` is accepted as it is (it was built, and checked, already).
    """
    if isinstance(data, cls):
        return data
    label = where or "config"
    if not isinstance(data, dict):
        raise invalid(label, data, "a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)  # keys may be numbers too
    if unknown:
        raise ConfigError(f"{dotted(where, unknown[0])}: unknown field; allowed: {', '.join(fields)}")
    kwargs = {name: _coerce(hints[name], value, dotted(where, name)) for name, value in data.items()}
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{dotted(where, missing[0])}: missing; allowed: {describe(hints[missing[0]])}")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(dotted(where, str(err))) from None
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{label}: {err}") from None


def dotted(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def describe(tp: Any) -> str:
    """What a value of type ``tp`` looks like to a user: ``a number``, ``'hf', 'vllm'``, ``an integer or null``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return "a list" if item_tp is Any else f"a list of ({describe(item_tp)})"
    if dataclasses.is_dataclass(tp) or origin is dict or tp is dict:
        return "a mapping"
    names = {type(None): "null", bool: "true or false", float: "a number", int: "an integer", str: "a string",
             Path: "a path"}
    return names.get(tp, "anything")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Checks ``value`` against type ``tp`` (ints are accepted where floats are expected)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, where)
            except ConfigError as err:
                errors.append(str(err))
        if len(errors) == 1 and not errors[0].startswith(f"{where}:"):
            raise ConfigError(errors[0])  # a problem deeper inside the value (a list item) names that item
        raise invalid(where, value, describe(tp))
    if origin is Literal:
        if isinstance(value, bool) and (word := "yes" if value else "no") in typing.get_args(tp):
            return word  # YAML 1.1 reads an unquoted no (or yes) as a boolean: runtime.mixed_precision=no
        if value not in typing.get_args(tp):
            raise invalid(where, value, describe(tp))
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise invalid(where, value, describe(tp))
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise invalid(where, value, describe(tp))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid(where, value, describe(tp))
        if not math.isfinite(value):  # YAML's .nan and .inf: no field means anything by them
            raise invalid(where, value, "a finite number")
        return float(value)
    checks = {bool: lambda v: isinstance(v, bool), int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              str: lambda v: isinstance(v, str), Path: lambda v: isinstance(v, str)}
    if tp in checks:
        if not checks[tp](value):
            raise invalid(where, value, describe(tp))
        return Path(value) if tp is Path else value
    return value
