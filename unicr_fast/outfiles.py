"""Durable, resumable output files (certify TSVs, C-OPT tables): an exclusive lock on the open
file, line appends that reach the disk before the next one starts, and a settings sidecar
(OUT.params.json) compared before a run resumes -- rows without a readable one are resumed
only when the user says so. Callers turn a refusal into their own error (UsageError naming --out
on the command line, ValueError in the Python API)."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Dict, Iterable, List, Optional

PARAMS_SUFFIX = ".params.json"


def try_lock(fh) -> bool:
    """Take an exclusive advisory lock on the open file; False if another process holds it.
    POSIX only (True without locking elsewhere); released when the process ends, however."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks, no protection
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def append_line(fh, line: str) -> None:
    """One line, durably: written, flushed and fsynced."""
    fh.write(line.encode("utf-8"))
    fh.flush()
    os.fsync(fh.fileno())


def write_settings(out: str, settings: Dict) -> None:
    """OUT.params.json, atomically (temporary file + rename)."""
    path = out + PARAMS_SUFFIX
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(settings, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def read_settings(out: str, suffix: str = PARAMS_SUFFIX) -> Optional[Dict]:
    """The settings recorded beside ``out`` (``out + suffix``); None when missing or unreadable."""
    try:
        with open(out + suffix) as f:
            record = json.load(f)
    except (OSError, ValueError):   # ValueError: not JSON, or not UTF-8
        return None
    return record if isinstance(record, dict) else None


def settings_differences(out: str, settings: Dict, keys: Optional[Iterable[str]] = None, *,
                         force: bool = False, flag: str = "force_resume=True",
                         suffix: str = PARAMS_SUFFIX) -> List[str]:
    """'key: old there, new now' for each of ``keys`` (default: all of ``settings``) where the
    recorded settings of ``out`` (which holds rows) differ from ``settings``.

    A missing or unreadable record cannot be checked, and resuming would append rows of these
    settings to rows of unknown ones and then record these for all of them: ValueError telling
    the user to pass ``flag`` -- unless ``force`` (the user vouches that the rows are of these
    settings): then a warning, and no differences."""
    path = out + suffix
    old = read_settings(out, suffix)
    if old is None:
        if not force:
            raise ValueError(f"{out} holds rows but its settings record {path} is missing or "
                             f"unreadable, so they cannot be checked against this run's "
                             f"settings; pass {flag} if they come from this very run (its "
                             f"settings are then recorded for them), or choose another output")
        print(f"warning: {path} is missing or unreadable; resuming {out} as asked, its rows "
              f"taken to be of this run's settings", file=sys.stderr)
        return []
    return [f"{k}: {repr(old[k]) if k in old else 'not recorded (an older output)'} there, "
            f"{settings[k]!r} now"
            for k in (settings if keys is None else keys) if old.get(k) != settings[k]]


def sha256_file(path: str) -> str:
    """Fingerprint of a file's bytes (the model a settings sidecar names)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_tensors(*tensors) -> str:
    """Fingerprint of a data set: each tensor's shape and bytes, so the same data hashes the same
    from every caller and device."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()
