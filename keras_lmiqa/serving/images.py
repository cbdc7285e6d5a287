"""Image inputs for the scoring clients and CLI: paths, folders and raw bytes.

No TensorFlow here: the server decodes the bytes (`serving_default` takes encoded
JPEG/PNG/BMP/GIF bytes), so the clients only read files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from keras_lmiqa.artifacts import read_regular_file
from keras_lmiqa.constants import MAX_MESSAGE_BYTES
from keras_lmiqa.errors import ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def collect_images(paths: Iterable[str]) -> list[str]:
    """Expand folders (walked recursively, image extensions case-insensitive, sorted) and
    keep files as given, in order. Raises ImageError for a missing path or an empty folder."""
    found: list[str] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            inside = sorted(os.path.join(root, name)
                            for root, _, names in os.walk(path) for name in names if is_image_file(name))
            if not inside:
                raise ImageError(f"no {'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} images under {path}")
            found.extend(inside)
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise ImageError(f"no such image file or folder: {path}")
    return found


# No request may exceed the servers' default body (32 MiB), so a larger file cannot be sent.
MAX_IMAGE_FILE_BYTES = MAX_MESSAGE_BYTES


def read_bytes(path: str, max_bytes: int = MAX_IMAGE_FILE_BYTES) -> bytes:
    """The file's bytes; only a regular file of at most `max_bytes` is read (a FIFO,
    a device such as /dev/zero or a folder is refused without reading: ImageError)."""
    return read_regular_file(os.fspath(path), max_bytes, "image")


def as_inputs(items: Sequence[str | bytes | os.PathLike]) -> tuple[list[bytes | None], list[str]]:
    """Labels for a list of paths and/or encoded-image bytes, and lazily-read contents.

    Returns `(contents, labels)`: `contents[i]` is the bytes given, or None for a path
    (read when its batch is sent, so a 10 000-image folder is not held in memory);
    `labels[i]` is the path, or `"<bytes #i>"`.
    """
    if isinstance(items, (str, bytes, os.PathLike)):
        raise ImageError("expected a list of image paths or encoded-image bytes, got a single "
                         f"{type(items).__name__}; wrap it in a list")
    contents: list[bytes | None] = []
    labels: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, (bytes, bytearray, memoryview)):
            contents.append(bytes(item))
            labels.append(f"<bytes #{index}>")
        elif isinstance(item, (str, os.PathLike)):
            contents.append(None)
            labels.append(os.fspath(item))
        else:
            raise ImageError(f"item {index}: expected a path or bytes, got {type(item).__name__}")
    return contents, labels
