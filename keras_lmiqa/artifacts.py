"""Atomic writes for everything other processes read (metrics, configs, models), and
the file checks around them.

Each writer produces a temporary file in the destination folder, then `os.replace`s it
into place, so a reader never sees a half-written file and a killed process leaves
the previous version intact. A `.keras` file written by `save_keras` carries the
SHA-256 of its contents in its zip comment; `verify_keras` checks it at load.
`read_regular_file` reads only regular files under a size limit (never a FIFO or a
device); `writable_file` / `writable_folder` check an output path before any work;
`lock_folder` keeps a folder to one writing process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import zipfile

from keras_lmiqa.errors import ConfigError, ImageError


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable read; done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()

@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary path beside `path`; on success it replaces `path`. An OSError
    raised meanwhile names `path` (the previous `path` is left as it was)."""
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
    except OSError as error:
        if error.filename or not error.errno:
            raise
        # A write() error names no file (ENOSPC while saving): name the one being written.
        raise OSError(error.errno, error.strerror, path) from None
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
    """`model.save` to `path` (.keras or .weights.h5) atomically; a `.keras` file carries
    the SHA-256 of its contents (`verify_keras` checks it at load)."""
    with atomic_path(path) as temporary:
        if path.endswith(".weights.h5"):
            model.save_weights(temporary, overwrite=True)
        else:
            model.save(temporary, overwrite=True)
            _add_checksum(temporary)


# ---------------------------------------------------------------- checksummed model files

# `save_keras` records a SHA-256 of the archive's members in the .keras zip's comment
# (written before the atomic rename, so a model file and its checksum appear together).
CHECKSUM_PREFIX = b"lmiqa-sha256:"
_MEMBER_BLOCK = 1 << 20
# A member declaring far more bytes than it stores is a decompression bomb: Keras
# stores members uncompressed, so no model file of ours comes near this.
_BOMB_FLOOR_BYTES = 1 << 28
_BOMB_RATIO = 100


class ChecksumError(ValueError):
    """A model file's contents do not match the checksum recorded when it was saved."""


def _members_sha256(archive: zipfile.ZipFile) -> str:
    """SHA-256 over every member's name, size and bytes (zipfile also checks each CRC-32)."""
    digest = hashlib.sha256()
    for info in archive.infolist():
        if info.file_size > max(_BOMB_FLOOR_BYTES, _BOMB_RATIO * info.compress_size):
            raise ChecksumError(f"{info.filename} declares {info.file_size} bytes in {info.compress_size}: "
                                "refusing a potential decompression bomb")
        digest.update(f"{info.filename}\0{info.file_size}\0".encode())
        with archive.open(info) as member:
            for block in iter(lambda: member.read(_MEMBER_BLOCK), b""):
                digest.update(block)
    return digest.hexdigest()


def _add_checksum(path: str) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = CHECKSUM_PREFIX + _members_sha256(archive).encode()


def verify_keras(path: str) -> bool:
    """Check a `.keras` file against the checksum `save_keras` wrote into it.

    Returns True when the file carries a checksum and matches it, False when it carries
    none (saved by plain `model.save`; its members' CRC-32s are still checked). Raises
    ChecksumError (a ValueError) when a member fails its CRC-32 or the SHA-256 differs:
    weights flipped, truncated or modified after saving.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            recorded = archive.comment
            try:
                actual = _members_sha256(archive)
            except zipfile.BadZipFile as error:  # "Bad CRC-32 for file 'model.weights.h5'"
                raise ChecksumError(f"{error} (the file was changed after it was written)") from None
    except zipfile.BadZipFile as error:
        raise ChecksumError(f"not a .keras (zip) archive: {error}") from None
    if not recorded.startswith(CHECKSUM_PREFIX):
        return False
    expected = recorded[len(CHECKSUM_PREFIX):].decode("ascii", "replace")
    if not re.fullmatch(r"[0-9a-f]{64}", expected):  # cut or edited: says nothing about the weights
        raise ChecksumError(f"its checksum record is damaged ({len(expected)} characters where a SHA-256 has 64 "
                            "hex digits): the file was cut or edited after it was written")
    if actual != expected:
        raise ChecksumError(f"its contents do not match the SHA-256 checksum recorded when it was saved "
                            f"({actual[:12]}... != {expected[:12]}...): the weights were corrupted or modified")
    return True


# ---------------------------------------------------------------- safe reads and writable targets


def read_regular_file(path: str, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of `path`, which must be a regular file (symlinks followed) of at most
    `max_bytes`. A FIFO, a device (/dev/zero), a socket or a folder is refused without
    reading: the file is opened non-blocking and checked with fstat on the open
    descriptor, so nothing swapped in between the check and the read gets through.
    Raises ImageError naming the file (`what`: "image" -> "cannot read image PATH: ...")."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise ImageError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        problem = _problem(path, os.fstat(descriptor), max_bytes, what)
        if problem:
            raise ImageError(problem)
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:  # grew since fstat
        raise ImageError(f"cannot read {what} {path}: above the {max_bytes}-byte limit; not read")
    return data


def check_regular_file(path: str, max_bytes: int, what: str = "file") -> str | None:
    """Why `path` cannot be read as a regular file of at most `max_bytes` (stat only,
    nothing opened), or None."""
    try:
        return _problem(path, os.stat(path), max_bytes, what)
    except OSError as error:
        return f"cannot read {what} {path}: {error.strerror or error}"


def _problem(path: str, status: os.stat_result, max_bytes: int, what: str) -> str | None:
    if not stat.S_ISREG(status.st_mode):
        return f"cannot read {what} {path}: {_kind(status.st_mode)}, not a regular file; not read"
    if status.st_size > max_bytes:
        return oversize_problem(path, status.st_size, max_bytes, what)
    return None


def oversize_problem(path: str, size: int, max_bytes: int, what: str = "file") -> str:
    """The message for a file of `size` bytes above `max_bytes`, refused unread (also for
    files listed by another file system, e.g. Beam's)."""
    return f"cannot read {what} {path}: {size} bytes, above the {max_bytes}-byte limit; not read"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def writable_file(path: str, what: str) -> str:
    """Check, before any work, that `path` can be written atomically (a temporary file
    beside it, then a rename); returns the path to write (symlinks resolved, so the
    rename replaces the link's target, not the link). Raises ConfigError naming `what`
    (e.g. "--csv") for a missing folder, a folder, a device or special file, or a folder
    where files cannot be created (/proc, read-only file systems)."""
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    if os.path.isdir(real):
        raise ConfigError(f"{what} {path} is a folder; give a file path")
    if os.path.exists(real) and not stat.S_ISREG(os.stat(real).st_mode):
        raise ConfigError(f"{what} {path} is {_kind(os.stat(real).st_mode)}, not a regular file")
    if not os.path.isdir(folder):
        raise ConfigError(f"{what} {path}: folder {folder} does not exist")
    try:
        handle, probe = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise ConfigError(f"{what} {path}: cannot create files in {folder} ({error.strerror or error})") from None
    return real


def writable_folder(path: str, what: str) -> str:
    """Check that files can be written in folder `path` (created later if missing);
    returns its absolute path. Raises ConfigError naming `what` for a file, or a folder
    (or nearest existing parent of a missing one) where nothing can be created. Leaves
    nothing behind: the probe is a temporary folder, removed at once."""
    path = os.path.abspath(path)
    existing = path
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        if existing == path:
            raise ConfigError(f"{what} {path} is a file, not a folder")
        raise ConfigError(f"{what} {path}: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tmp-probe-", dir=existing))
    except OSError as error:
        raise ConfigError(f"{what} {path}: cannot create anything in {existing} ({error.strerror or error})") from None
    return path


# ---------------------------------------------------------------- one writer per folder

# A folder's writer holds an flock on this file for its whole life and records its PID
# in it. The OS drops an flock when its holder exits or is killed (SIGKILL included), so
# a stale lock cannot outlive a process and a killed run's rerun needs no cleanup.
LOCK_FILE = ".lmiqa.lock"


class FolderLock:
    """The exclusive lock `lock_folder` took; `release()` (or the process's end) drops it."""

    def __init__(self, path: str, descriptor: int):
        self.path = path
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the last descriptor drops the flock
            self._descriptor = None


def lock_folder(folder: str, what: str) -> FolderLock:
    """Take `folder`'s writer lock without waiting (`LOCK_FILE`, fcntl.flock) and record
    this process's PID in it. Raises ConfigError naming the folder and the holder's PID
    when another process holds it (`what`: e.g. "a training run")."""
    path = os.path.join(folder, LOCK_FILE)
    # O_CLOEXEC: a child process (git, a server) must not inherit, and so keep, the lock.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666 & ~_UMASK)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(descriptor)
        raise ConfigError(f"{folder} is in use by {what} (PID {holder}); wait for it to end or choose "
                          "another folder") from None
    except BaseException:
        os.close(descriptor)
        raise
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return FolderLock(path, descriptor)
