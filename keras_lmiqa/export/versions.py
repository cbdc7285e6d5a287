"""Version folders written crash-safe: a reader sees the old version or the new, never half.

An export writes `.tmp-<N>-xxxx/` (a name TF Serving ignores) and holds an flock on
that folder while it lives; the lock dies with the process, so an unlocked `.tmp-*`
folder is a leftover of a killed export. `--overwrite` exchanges the new folder with
version N in one syscall (Linux `renameat2(RENAME_EXCHANGE)`); where the file system
cannot, it moves N aside into a locked `.tmp-old-<N>-xxxx/previous` and the new folder
in: a kill between those two renames leaves no N until the next export (or `lmiqa
export --clean`) moves `previous` back (`recover_exports`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import logging
import os
import re
import shutil
import tempfile

from keras_lmiqa.errors import ModelError

logger = logging.getLogger("keras_lmiqa.export")  # the name users see in its log lines


_TEMPORARY = re.compile(r"\.tmp-(old-)?(\d+)-[A-Za-z0-9_]+")
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _renameat2(source: str, target: str, flags: int) -> bool:
    """`renameat2(source, target, flags)`; False when this system or file system lacks it."""
    function = getattr(_libc(), "renameat2", None)
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), source, None, target)


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _exchange(temporary: str, final: str) -> bool:
    """Atomically swap two folders (True), or False when the file system cannot."""
    return _renameat2(temporary, final, _RENAME_EXCHANGE)


def _set_aside(final: str, previous: str) -> None:
    os.rename(final, previous)


def _lock(path: str, blocking: bool = True) -> int | None:
    """An fd holding an exclusive flock on folder `path`; None if another process holds it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def locked_temporary(export_dir: str, prefix: str) -> tuple[str, int]:
    """A new folder `export_dir/<prefix>xxxx` and the fd of its lock. The base folder's
    shared lock keeps `recover_exports` (exclusive) from seeing it before it is locked."""
    base = os.open(export_dir, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(base, fcntl.LOCK_SH)
        temporary = tempfile.mkdtemp(prefix=prefix, dir=export_dir)
        return temporary, _lock(temporary)
    finally:
        os.close(base)


def recover_exports(export_dir: str) -> list[str]:
    """Undo what killed exports left in `export_dir`; returns what was done, one line each.

    A `.tmp-old-<N>-*/previous` whose version N is missing is moved back to N; then
    every `.tmp-<N>-*` and `.tmp-old-<N>-*` folder no live export holds is removed. A
    folder a running export holds (its flock) is left alone.
    """
    if not os.path.isdir(export_dir):
        return []
    actions = []
    base = os.open(export_dir, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(base, fcntl.LOCK_EX)
        for name in sorted(os.listdir(export_dir)):
            match = _TEMPORARY.fullmatch(name)
            path = os.path.join(export_dir, name)
            if not match or os.path.islink(path) or not os.path.isdir(path):
                continue
            lock = _lock(path, blocking=False)
            if lock is None:  # a running export's
                continue
            try:
                previous, final = os.path.join(path, "previous"), os.path.join(export_dir, match.group(2))
                if match.group(1) and os.path.isdir(previous) and not os.path.lexists(final):
                    os.rename(previous, final)
                    actions.append(f"restored version {match.group(2)} from {name}/previous (an overwrite was killed)")
                shutil.rmtree(path)
                actions.append(f"removed {name} (left by a killed export)")
            finally:
                os.close(lock)
    finally:
        os.close(base)
    return actions


def move_into_place(temporary: str, final: str, overwrite: bool) -> None:
    if not os.path.lexists(final):
        try:
            if not _renameat2(temporary, final, _RENAME_NOREPLACE):
                os.rename(temporary, final)  # replaces only an empty folder
            return
        except OSError as error:
            if not os.path.lexists(final):
                raise ModelError(f"cannot move the export into place at {final}: {error}") from None
    if not overwrite:
        raise ModelError(f"version folder appeared while exporting: {final}")
    if _exchange(temporary, final):  # `final` is the new version; `temporary` holds the old one
        shutil.rmtree(temporary, ignore_errors=True)
        return
    logger.warning("%s: this file system cannot exchange folders atomically; version %s is missing "
                   "between two renames", os.path.dirname(final), os.path.basename(final))
    old, lock = locked_temporary(os.path.dirname(final), f".tmp-old-{os.path.basename(final)}-")
    previous = os.path.join(old, "previous")
    try:
        _set_aside(final, previous)
        try:
            os.rename(temporary, final)
        except OSError as error:
            os.rename(previous, final)  # put the previous version back
            raise ModelError(f"cannot move the export into place at {final}: {error}") from None
    finally:
        if os.path.lexists(final) or not os.path.lexists(previous):  # else recover_exports puts it back
            shutil.rmtree(old, ignore_errors=True)
        os.close(lock)
