"""The development server's limits: defaults and one check, shared by `LocalServer`
(parameter names in its errors) and `lmiqa serve` (flag names). No TensorFlow, so
`lmiqa serve --help` shows the defaults without importing it."""

from __future__ import annotations

import math
from collections.abc import Callable

from keras_lmiqa.errors import ConfigError

DEFAULT_MAX_REQUEST_PIXELS = 50_000_000  # the default export's max_pixels: one full-size image
DEFAULT_MAX_CONCURRENT_REQUESTS = 1  # the memory budget holds for the whole server, not per request
DEFAULT_READ_TIMEOUT = 30.0  # seconds a REST client may take to send its request
GRPC_MESSAGE_LIMIT_BYTES = 2 ** 31 - 1  # gRPC keeps message sizes in a signed 32-bit int


def _is_port(value) -> bool:
    return isinstance(value, int) and 0 <= value <= 65535


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_seconds(value, allow_zero: bool) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)


# setting -> (valid?, what a valid value is)
RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "port": (_is_port, "a TCP port in 0..65535 (0: any free port)"),
    "rest_port": (lambda v: v is None or _is_port(v), "a TCP port in 0..65535 (0: any free port)"),
    "max_batch_size": (_is_count, ">= 1"),
    "max_request_bytes": (lambda v: _is_count(v) and v <= GRPC_MESSAGE_LIMIT_BYTES,
                          f"in 1..{GRPC_MESSAGE_LIMIT_BYTES} bytes"),
    "max_request_pixels": (_is_count, ">= 1"),
    "max_concurrent_requests": (_is_count, ">= 1"),
    "workers": (_is_count, ">= 1"),
    "rest_workers": (_is_count, ">= 1"),
    "read_timeout": (lambda v: _is_seconds(v, False), "> 0 seconds"),
    "poll_seconds": (lambda v: _is_seconds(v, True), ">= 0 (0 disables polling)"),
    "retry_seconds": (lambda v: _is_seconds(v, False), "> 0 seconds"),
}


def check_server_settings(label: Callable[[str], str] = str, **settings) -> None:
    """ConfigError naming the first setting out of range (`label(name)`: how the user
    wrote it, e.g. "--max-batch-size"), before anything is bound or loaded."""
    for name, value in settings.items():
        valid, wanted = RULES[name]
        if not valid(value):
            raise ConfigError(f"{label(name)} must be {wanted}, got {value!r}")
    port, rest_port = settings.get("port"), settings.get("rest_port")
    if port and rest_port == port:
        raise ConfigError(f"{label('port')} and {label('rest_port')} are both {port}; give two ports")
