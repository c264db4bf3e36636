"""Hyperparameter search of a method (PAH by default, --method) on cifar100: `python sweeps/cifar100_search.py --preset smoke` (see --help).

On a cluster: `ray job submit --working-dir . -- python sweeps/cifar100_search.py --preset paper`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a plain checkout too

from pah_sweep import search  # noqa: E402


def main() -> int:
    return search.main("cifar100")


if __name__ == "__main__":
    sys.exit(main())
