"""Continual-learning methods, one module each, behind ``pah_core.methods.base.Method``.

A method is one file here: its options dataclass, its algorithm, and ``@register`` on its class.
``registered_methods`` imports every module of this package, so nothing lists them.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Method, register, registry


def registered_methods() -> dict[str, type[Method]]:
    """All methods, after importing every module of the package (each registers its own)."""
    for module in pkgutil.iter_modules(__path__, f"{__name__}."):
        importlib.import_module(module.name)
    return registry()


def searched_keys(method: str) -> list[str]:
    """The config keys a search of ``method`` tunes (its file's ``search_space``); [] for a
    method that is not registered here (a store written by other code)."""
    cls = registered_methods().get(method)
    return list(cls.search_space) if cls is not None else []


def param_label(key: str) -> str:
    """A searched key's name in tables and figures: the label a method gives it, else the key's
    last part (``method.lwf.lambda`` -> ``lambda``)."""
    for cls in registered_methods().values():
        if key in cls.labels:
            return cls.labels[key]
    return key.rsplit(".", 1)[-1]


def build_method(cfg, spec, device, dist=None) -> Method:
    from pah_core.distributed import LOCAL

    methods = registered_methods()
    if cfg.method.name not in methods:
        raise ValueError(
            f"method.name = {cfg.method.name!r} is not allowed: one of {sorted(methods)}"
        )
    return methods[cfg.method.name](cfg, spec, device, dist or LOCAL)


__all__ = [
    "Method",
    "build_method",
    "param_label",
    "register",
    "registered_methods",
    "registry",
    "searched_keys",
]
