"""pah_core: Prototype-Augmented Hypernetworks for continual learning, as a library.

Nothing here imports Ray, Tune or MLflow at module level; those are adapters plugged in by sweeps/.
"""

__version__ = "0.1.0"
