"""Durable, resumable output files (certify TSVs, C-OPT tables): an exclusive lock on the open
file, line appends that reach the disk before the next one starts, and a settings sidecar
(OUT.params.json) compared before a run resumes. Callers turn a refusal into their own error
(UsageError naming --out on the command line, ValueError in the Python API)."""
from __future__ import annotations

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


def settings_differences(out: str, settings: Dict,
                         keys: Optional[Iterable[str]] = None) -> List[str]:
    """'key: old there, new now' for each of ``keys`` (default: all of ``settings``) where the
    recorded settings of ``out`` differ. A missing or unreadable record cannot be checked: a
    warning, and no differences."""
    path = out + PARAMS_SUFFIX
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, json.JSONDecodeError):
        old = None
    if not isinstance(old, dict):
        print(f"warning: {path} is missing or unreadable, so the settings of the rows in {out} "
              f"cannot be checked; resuming", file=sys.stderr)
        return []
    return [f"{k}: {old.get(k)!r} there, {settings[k]!r} now"
            for k in (settings if keys is None else keys) if old.get(k) != settings[k]]
