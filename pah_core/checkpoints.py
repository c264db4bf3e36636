"""Checkpoints at task boundaries: what they hold, how they are written (atomically, owner-only)
and read (tensors and plain data only, so a file from a shared folder or bucket cannot run code),
and which config keys a resumed run may change."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pah_core.config import RUN_ONLY_KEYS, own_method_keys, with_added_keys

CHECKPOINT_FILE = "state.pt"
# 2: tensors and plain Python data only, loaded with torch.load(weights_only=True), so a checkpoint
# from a shared folder or bucket cannot run code. 1: pickled numpy state, refused. 3: adds the
# validation splits' counts (2 had none; refused with the same message, not resumed half-blind).
CHECKPOINT_FORMAT = 3
# Config keys that may differ between a checkpoint and the run resuming it: the run-only keys, the
# pretrained weights (they only initialise a run; a resumed one takes every weight from its
# checkpoint) and how many tasks to run.
RESUME_FREE_KEYS = RUN_ONLY_KEYS | {"model.pretrained_path", "schedule.max_tasks"}


class CheckpointError(RuntimeError):
    pass


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain data (what weights_only loading accepts)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    # The checkpoint is read onto the run's device; generator states must be CPU byte tensors.
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].cpu().numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([g.cpu() for g in state["cuda"]])


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's flat config and the run's, beyond what a resume may
    change; other methods' options are no part of a run (an older checkpoint still lists them)."""
    saved, current = own_method_keys(with_added_keys(saved)), own_method_keys(current)
    keys = (set(saved) | set(current)) - RESUME_FREE_KEYS
    return [
        f"{k}: {saved.get(k)!r} (checkpoint) vs {current.get(k)!r} (now)"
        for k in sorted(keys)
        if saved.get(k) != current.get(k)
    ]


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's payload, read without running code: tensors and plain data only."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch names what it blocked ("Trying to load unsupported GLOBAL posix.system ..."); torch's
        # own advice (weights_only=False) is exactly what must not be done here, so it is not shown.
        blocked = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln]
        if not blocked:
            raise CheckpointError(
                f"checkpoint {path} could not be read: not a torch checkpoint, or truncated"
            ) from e
        raise CheckpointError(
            f"checkpoint {path} refused: it holds objects other than tensors and plain data, which "
            "could run code when loaded (a tampered file, or one written before checkpoint format "
            f"{CHECKPOINT_FORMAT}). Load checkpoints written by this version of pah-platform only, "
            f"or start a new run. ({blocked[0][:200]})"
        ) from e
    except Exception as e:  # noqa: BLE001 - truncated, not a torch file, unreadable
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(e).__name__}: {str(e)[:300]})"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a pah-platform checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {found!r}): start a new run, or resume with the version that wrote it"
        )
    return payload


def write_checkpoint(payload: dict[str, Any], directory: Path) -> Path:
    """``directory/state.pt``, replaced atomically; owner-only, since a checkpoint holds the whole
    model, which may come from private data."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = directory / f"{CHECKPOINT_FILE}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        torch.save(payload, f)
    os.replace(tmp, directory / CHECKPOINT_FILE)
    return directory
