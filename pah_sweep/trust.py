"""What a ``--resume`` may load from a sweep's folder: the trust model of sweep state.

Tune restores a sweep from pickles (``tuner.pkl``, ``searcher-state-*.pkl``, the trials'
``params.pkl``/``error.pkl``) and from ``experiment_state-*.json``, whose entries are cloudpickles
too: loading them runs whatever code they name. So a resume loads them only when they are
verifiably this user's sweep's own:

- **a keyed digest**: every such file is listed, with an HMAC-SHA256 of its path and content under
  a per-user secret key, in the signature files ``.pah-sweep.sig`` (``tuner.pkl`` and
  ``pah_sweep.json``, written by the driver) and ``.pah-tune.sig`` (Tune's own state, signed each
  time Tune snapshots the sweep, before the snapshot is copied to ``--storage``). A file missing
  from them, or whose digest differs, is refused before Ray starts and before anything is read.
- **the key** (``key_path``): ``$PAH_SWEEP_KEY_FILE``, else ``$XDG_CONFIG_HOME/pah/sweep.key``,
  else ``~/.config/pah/sweep.key``; 32 random bytes, created owner-only (0600 in a 0700 folder) by
  the first sweep. A key another user could read or write is refused. On a cluster, the driver's
  node holds it: point ``PAH_SWEEP_KEY_FILE`` at a persistent owner-only secret there.
- **owner and permissions** (local and shared folders): the sweep folder, its trial folders and
  every file checked belong to this user and are not group- or world-writable.

Not covered: a rollback by someone who can write the folder to an older state that this key
signed (it runs no foreign code), and files changed while Tune copies a snapshot into a bucket.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

SWEEP_SIG = ".pah-sweep.sig"
TUNE_SIG = ".pah-tune.sig"
_DOMAIN = b"pah-sweep-state-v1\0"


class TrustError(RuntimeError):
    """Sweep state that a resume must not load; the message names the file and the fix."""


def key_path() -> Path:
    explicit = os.environ.get("PAH_SWEEP_KEY_FILE")
    if explicit:
        return Path(explicit).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "pah" / "sweep.key"


def _check_private(path: Path, what: str) -> os.stat_result:
    st = path.stat()
    if st.st_uid != os.getuid():
        raise TrustError(
            f"{what} {path} belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})"
        )
    if st.st_mode & 0o022:
        raise TrustError(f"{what} {path} is writable by others (mode {stat.S_IMODE(st.st_mode):o})")
    return st


def load_key(create: bool) -> bytes:
    """This user's sweep key; created (owner-only) when ``create`` and absent."""
    path = key_path()
    if not path.exists():
        if not create:
            raise TrustError(
                f"no sweep key at {path}: the sweep was signed with a key that is not here "
                "(another user or machine). Run the resume where the sweep was started, or set "
                "PAH_SWEEP_KEY_FILE to that key (a copy, owner-only), or start a new --name"
            )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another sweep created it meanwhile: read that one
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    st = _check_private(path, "the sweep key")
    if st.st_mode & 0o044:
        raise TrustError(
            f"the sweep key {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
            "anyone who read it can sign sweep state. Remove it (sweeps signed with it can then "
            "not be resumed) or chmod 600 it if nobody else could have read it"
        )
    return bytes.fromhex(path.read_text().strip())


def digest(key: bytes, relpath: str, content: bytes) -> str:
    inner = hashlib.sha256(content).digest()
    return hmac.new(key, _DOMAIN + relpath.encode() + b"\0" + inner, hashlib.sha256).hexdigest()


def loadable(relpath: str) -> bool:
    """Files Tune may unpickle on restore: any pickle, and the JSON files at the top (Tune copies
    every top-level .json and .pkl back and decodes experiment state with cloudpickle)."""
    return relpath.endswith(".pkl") or ("/" not in relpath and relpath.endswith(".json"))


def _files(folder: Path) -> Iterable[str]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        rel_root = Path(root).relative_to(folder)
        for name in sorted(files):
            rel = (rel_root / name).as_posix()
            if loadable(rel):
                yield rel


def sign_files(folder: Path, key: bytes, relpaths: Iterable[str] | None = None) -> dict[str, str]:
    """``{relative path: digest}`` of the loadable files under ``folder`` (or of ``relpaths``)."""
    names = _files(folder) if relpaths is None else relpaths
    return {rel: digest(key, rel, (folder / rel).read_bytes()) for rel in names}


def write_signatures(folder: Path, name: str, signed: dict[str, str]) -> None:
    """The signature file ``name`` in ``folder``, replaced atomically, owner-only."""
    tmp = folder / f"{name}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"version": 1, "files": signed}, f, indent=1, sort_keys=True)
    os.replace(tmp, folder / name)


def read_signatures(folder: Path, name: str) -> dict[str, str]:
    path = folder / name
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError
        return {str(k): str(v) for k, v in files.items()}
    except (ValueError, KeyError, TypeError) as e:
        raise TrustError(
            f"{path} is damaged ({type(e).__name__}): the sweep cannot be verified"
        ) from None


def sign_sweep(sweep_dir: Path, key: bytes) -> None:
    """The driver's own files (``tuner.pkl``, the state file), after the Tuner wrote them."""
    names = [n for n in ("tuner.pkl", "pah_sweep.json") if (sweep_dir / n).is_file()]
    write_signatures(sweep_dir, SWEEP_SIG, sign_files(sweep_dir, key, names))


FIX = (
    "A resume loads these files, and pickles run code when loaded: refused, nothing was run. If "
    "the folder was tampered with, start a new --name; if you know every file in it is your own "
    "(e.g. a sweep started before signatures existed), sign it: "
    "python -m pah_sweep.trust --adopt {dir}"
)


def verify_sweep(sweep_dir: Path) -> None:
    """Refuse (TrustError) unless every file a resume may load is signed with this user's key,
    and (local folders) the folder and files are this user's, not writable by others."""
    sweep_dir = Path(sweep_dir)
    fix = FIX.format(dir=sweep_dir)
    try:
        _check_private(sweep_dir, "the sweep folder")
        for root, dirs, _ in os.walk(sweep_dir):
            for d in dirs:
                _check_private(Path(root) / d, "the folder")
        key = load_key(create=False)
        # tuner.pkl and the state file are signed by the driver, the rest with Tune's snapshots;
        # pah_sweep.json is in both after a resume (Tune copies every top-level .json back).
        signatures = [read_signatures(sweep_dir, n) for n in (SWEEP_SIG, TUNE_SIG)]
        for rel in _files(sweep_dir):
            path = sweep_dir / rel
            _check_private(path, "the file")
            if path.is_symlink():
                raise TrustError(f"{path} is a symbolic link")
            actual = digest(key, rel, path.read_bytes())
            known = [s[rel] for s in signatures if rel in s]
            if not known:
                raise TrustError(f"{path} is not signed by this user's sweep key")
            if not any(hmac.compare_digest(actual, k) for k in known):
                short = (
                    " (it is empty: cut short, e.g. by a full disk)"
                    if not path.stat().st_size
                    else ""
                )
                raise TrustError(f"{path} differs from what this user's sweep signed{short}")
    except TrustError as e:
        raise TrustError(f"--resume: {e}. {fix}") from None


def adopt(sweep_dir: Path) -> int:
    """Sign a sweep folder as it is now (the user vouches for it); the files signed."""
    sweep_dir = Path(sweep_dir)
    _check_private(sweep_dir, "the sweep folder")
    key = load_key(create=True)
    signed = sign_files(sweep_dir, key)
    for rel in signed:
        _check_private(sweep_dir / rel, "the file")
    write_signatures(sweep_dir, TUNE_SIG, signed)
    sign_sweep(sweep_dir, key)
    return len(signed)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m pah_sweep.trust", description=adopt.__doc__)
    p.add_argument("--adopt", metavar="SWEEP_DIR", required=True)
    args = p.parse_args(argv)
    try:
        n = adopt(Path(args.adopt))
    except (TrustError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"signed {n} file(s) in {args.adopt} with {key_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
