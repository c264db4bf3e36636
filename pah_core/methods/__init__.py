"""Continual-learning methods, one small class each, behind ``pah_core.methods.base.Method``."""

from .base import Method, register, registry


def registered_methods() -> dict[str, type[Method]]:
    """All methods, after importing the modules that define them."""
    from . import agem, ewc, finetune, hnet, joint, lwf, pah, si  # noqa: F401  (register themselves)

    return registry()


def build_method(cfg, spec, device, dist=None) -> Method:
    from pah_core.distributed import LOCAL

    methods = registered_methods()
    if cfg.method.name not in methods:
        raise ValueError(
            f"method.name = {cfg.method.name!r} is not allowed: one of {sorted(methods)}"
        )
    return methods[cfg.method.name](cfg, spec, device, dist or LOCAL)


__all__ = ["Method", "build_method", "register", "registered_methods", "registry"]
