"""Errors raised by keras-lmiqa.

Every user-facing failure is a subclass of :class:`LmiqaError`; the `lmiqa` CLI and the
`train.py`/`export.py` entry points print its message on one line and exit with code 2.
"""

from __future__ import annotations

import reprlib
from typing import Any


class LmiqaError(Exception):
    """Base class of every error keras-lmiqa raises for bad input or bad state."""


class ConfigError(LmiqaError):
    """A configuration value, flag or config file is invalid."""


class DatasetError(LmiqaError):
    """A dataset is missing, malformed or does not match its official layout."""


class ImageError(LmiqaError):
    """An image file or buffer cannot be decoded or is outside the allowed limits."""


class ModelError(LmiqaError):
    """A model file, checkpoint or export is missing, partial or incompatible."""


class ServingError(LmiqaError):
    """A scoring request failed (server unreachable, rejected request, ...)."""


# How error messages show a value: 4 items per level, 3 levels, at most SHOWN_CHARACTERS.
SHOWN_CHARACTERS = 100
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, SHOWN_CHARACTERS, SHOWN_CHARACTERS
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4


def shown(value: Any) -> str:
    """`value`'s repr for an error message, truncated (never expands a large or nested value)."""
    text = _SHOWN.repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 3] + "..."
