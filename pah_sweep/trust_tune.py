"""The Tune side of pah_sweep/trust.py: a callback that signs each snapshot Tune takes of a sweep."""

from __future__ import annotations

from pathlib import Path

from ray import tune

from .trust import TUNE_SIG, load_key, read_signatures, sign_files, write_signatures


class TuneStateSigner(tune.Callback):
    """Signs Tune's snapshot of the sweep each time Tune takes one.

    Tune writes a snapshot into its driver staging folder and then copies that folder to
    ``--storage``; the callbacks' ``get_state`` is called last in a snapshot, before the copy, so
    the signatures travel with the files they sign. Entries of files not in the staging folder
    (trial folders of an earlier session, verified when this resume started) are kept.

    Tune pickles its callbacks into ``tuner.pkl``: this one holds paths only, never the key."""

    def __init__(self, sweep_dir: Path) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.staging: Path | None = None
        self.kept: dict[str, str] | None = None

    def __getstate__(self):
        return {"sweep_dir": self.sweep_dir, "staging": None, "kept": None}

    def on_step_begin(self, iteration, trials, **info):
        if self.staging is None and trials:
            self.staging = Path(trials[0].storage.experiment_driver_staging_path)

    def get_state(self):
        if self.staging is not None and self.staging.is_dir():
            if self.kept is None:
                self.kept = read_signatures(self.sweep_dir, TUNE_SIG)
            fresh = sign_files(self.staging, load_key(create=False))
            write_signatures(self.staging, TUNE_SIG, {**self.kept, **fresh})
        return None  # nothing of its own to restore
