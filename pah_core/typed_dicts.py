"""Plain dicts (YAML, ``key=value`` overrides, JSON) into typed dataclasses: each value checked
against its annotation, errors that name the key, the value and what is allowed."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import yaml

from pah_core.checks import ConfigError

Resolve = Callable[[Any], Any]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise a ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{key} = {value!r} is not allowed: {_type_name(tp)}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key} = {value!r} is not allowed: {_type_name(tp)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)  # YAML 1.1 reads "1e-3" as a string
        if number is not None:
            # No setting means anything at inf or NaN (a rate, a weight, a temperature): refuse
            # them here, once, rather than in every section's and every method's checks.
            if not math.isfinite(number):
                raise ConfigError(f"{key} = {number} is not allowed: a finite number")
            return number
    elif tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key} = {value!r} is not allowed: {_type_name(tp)}")


def build(
    cls: type, raw: dict[str, Any], prefix: str = "", resolve: Resolve = lambda tp: tp
) -> Any:
    """An instance of dataclass ``cls`` from a plain dict, every value checked against its
    annotation; ``resolve`` may swap a field's type for another (a tree assembled at run time).
    Unknown keys are errors that suggest the nearest known key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{near[0]}'?" if near else ""
            raise ConfigError(
                f"unknown config key '{prefix}{key}'{hint} Allowed keys under "
                f"'{prefix.rstrip('.') or 'config'}': {', '.join(names)}"
            )
    kwargs = {}
    for name in names:
        if name not in raw:
            continue
        tp = resolve(hints[name])
        if dataclasses.is_dataclass(tp):
            sub = raw[name] if raw[name] is not None else {}
            kwargs[name] = build(tp, sub, f"{prefix}{name}.", resolve)
        else:
            kwargs[name] = _coerce(tp, raw[name], f"{prefix}{name}")
    return cls(**kwargs)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{key}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["model.hyper_width=64", "data.root=null"]`` -> {"model.hyper_width": 64, ...}."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"override {item!r} is not of the form key=value (e.g. model.hyper_width=64)"
            )
        out[key.strip()] = plain_yaml(text, f"override {item!r}") if text.strip() else ""
    return out


# A config is a few KB; anything far larger is not one (and is not read into memory whole).
MAX_YAML_BYTES = 1_000_000


def plain_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load(text)``, refusing anchors and aliases first: an alias expands to a copy of
    what it names, so a few hundred bytes of nested aliases become gigabytes before any value
    could be checked (a "billion laughs"). Configs never need them."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(
            f"{what} is {len(text)} characters, not a config: at most {MAX_YAML_BYTES}"
        )
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ConfigError(
                    f"{what} uses YAML anchors or aliases (&name / *name), which configs do not "
                    "allow: write the values out"
                )
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} is not valid YAML: {e}") from e
