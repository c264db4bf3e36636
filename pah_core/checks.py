"""How a config value is refused: ``ConfigError`` and ``require``.

Below everything else in the package (it imports nothing from it): ``pah_core.config`` checks its
sections with it, and each method's options check theirs, without importing the config module that
loads the methods (``pah_core.config`` re-exports ``ConfigError``).
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value or key that cannot be used; the message says which and what is allowed."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ``ConfigError`` naming the dotted ``key``, its ``value`` and what is ``allowed``."""
    if not ok:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")
