"""TensorFlow's C++ start-up lines kept off stderr unless asked for.

TensorFlow 2.21 writes its start-up notices (oneDNN, the CUDA stub, the cuInit failure
of a machine without a GPU, the CPU-feature note) through absl before absl is
initialised, so `TF_CPP_MIN_LOG_LEVEL` does not filter them, and it writes them twice
(two shared libraries). Only pointing file descriptor 2 elsewhere while TensorFlow loads
keeps them out of a command's output. `hold_back_startup` does that once per process,
around TensorFlow's import (`keras_lmiqa._registration` wraps it there):

- lines in absl's format (and the continuation lines of those notices) are kept in
  memory; `lmiqa -v` prints them and lets later ones through (`show_startup`);
- anything else written meanwhile (a Python warning, an import error) goes to stderr;
- a `TF_CPP_MIN_LOG_LEVEL` the user set is honoured for these lines too (0 shows them
  all, 2 shows errors); unset, all are hidden and the level is set to 3 (none) for the rest.

TensorFlow-free itself: it never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# After start-up: none. TensorFlow's C++ logs its notices at error level too (oneDNN's
# "supports DT_UINT8 only on platforms with AVX-512" at the first uint8 op of every
# scoring); a failing op reaches Python as an exception, which names the reason.
DEFAULT_LEVEL = "3"

# "I0000 00:00:1796019229.574992   14058 port.cc:153] ..." and absl's pre-init banner.
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] ")
_CONTINUATIONS = ("WARNING: All log messages before absl::InitializeLog() is called",
                  "To enable the following instructions:")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}

_startup: list[str] = []
_done = False
_show = False  # `show_startup()`: let the start-up lines through as TensorFlow writes them


def _severity(line: str) -> int | None:
    """absl severity of a start-up line (0 info .. 3 fatal), None for other output."""
    match = _ABSL_LINE.match(line)
    if match:
        return _SEVERITY[match.group(1)]
    return 1 if line.startswith(_CONTINUATIONS) else None


def hold_back_startup(load) -> None:
    """Run `load()`, which loads TensorFlow, with its start-up lines held back (once per
    process; `keras_lmiqa._registration` wraps TensorFlow's own import in it)."""
    global _done
    user_level = os.environ.get(LEVEL_VARIABLE)
    os.environ.setdefault(LEVEL_VARIABLE, DEFAULT_LEVEL)
    if _done or _show:
        load()
        return
    _done = True
    shown_from = int(user_level) if user_level and user_level.isdigit() else 4  # unset: hide all
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                load()
                # Device discovery prints the cuInit line; do it here, not mid-command.
                # (Physical devices only: logical device settings stay possible after it.)
                sys.modules["tensorflow"].config.list_physical_devices("GPU")
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                captured = sink.read().decode("utf-8", "replace")
    finally:
        os.close(saved)
    for line in captured.splitlines():
        severity = _severity(line)
        if severity is not None:
            _startup.append(line)
        if severity is None or severity >= shown_from:
            print(line, file=sys.stderr)


def show_startup() -> None:
    """From now on TensorFlow's start-up lines go to stderr as it writes them (`lmiqa -v`);
    those already held back are printed."""
    global _show
    _show = True
    for line in _startup:
        print(line, file=sys.stderr)
