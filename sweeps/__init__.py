"""The entry points: one script per thing a researcher runs (``python sweeps/<name>.py`` or its
console script, see pyproject.toml). The machinery they share is the library package pah_sweep."""
