"""Atomic writes for everything other processes read (metrics, configs, models).

Each writer produces a temporary file in the destination folder, then `os.replace`s it
into place, so a reader never sees a half-written file and a killed process leaves
the previous version intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable read; done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()

@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary path beside `path`; on success it replaces `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Keep the full suffix (".weights.h5"): Keras picks the format from it.
    name = os.path.basename(path)
    suffix = suffix or (name[name.index("."):] if "." in name else "")
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(handle)
    # mkstemp makes the file private (0600); published files get the usual umask mode.
    os.chmod(temporary, 0o666 & ~_UMASK)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json(path: str, data) -> None:
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, allow_nan=False)
            handle.write("\n")


def read_json(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_keras(model, path: str) -> None:
    """`model.save` to `path` (.keras or .weights.h5) atomically."""
    with atomic_path(path) as temporary:
        if path.endswith(".weights.h5"):
            model.save_weights(temporary, overwrite=True)
        else:
            model.save(temporary, overwrite=True)
