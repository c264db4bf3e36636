"""The sweeps' one error type, for library and entry points alike."""

from __future__ import annotations

import sys
from collections.abc import Callable


class SweepError(RuntimeError):
    """A bad input, or a state the user must fix: the entry points print it as one line, exit 2."""


def exit_code(run: Callable[[], int]) -> int:
    """``run()``'s exit code; a SweepError or ConfigError (a bad input) printed as one line on
    stderr, exit code 2."""
    from pah_core.config import ConfigError

    try:
        return run()
    except (SweepError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
