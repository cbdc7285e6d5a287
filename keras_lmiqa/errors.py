"""Errors raised by keras-lmiqa.

Every user-facing failure is a subclass of :class:`LmiqaError`; the `lmiqa` CLI and the
`train.py`/`export.py` entry points print its message on one line and exit with code 2.
"""


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
