"""The `lmiqa` command: one module per subcommand, each thin over the library.

Each `keras_lmiqa.cli.<name>_cmd` module defines `register(subparsers)`, which adds its
parser and sets `func=run` on it. `main` turns any :class:`LmiqaError`, and a full or
failing disk (ENOSPC, EIO, ...) under a file or stdout, into one line on stderr and exit
code 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from keras_lmiqa import tf_logs
from keras_lmiqa.errors import LmiqaError

VERBOSE_FLAGS = ("-v", "--verbose")

# Subcommand modules, in the order `lmiqa --help` lists them.
COMMAND_MODULES = (
    "keras_lmiqa.cli.train_cmd",
    "keras_lmiqa.cli.datasets_cmd",
    "keras_lmiqa.cli.export_cmd",
    "keras_lmiqa.cli.serve_cmd",
    "keras_lmiqa.cli.score_cmd",
    "keras_lmiqa.cli.score_batch_cmd",
    "keras_lmiqa.cli.models_cmd",
    "keras_lmiqa.cli.eval_cmd",
    "keras_lmiqa.cli.sensitivity_cmd",
    "keras_lmiqa.cli.protocol_cmd",
    "keras_lmiqa.cli.crossdata_cmd",
    "keras_lmiqa.cli.ablate_cmd",
    "keras_lmiqa.cli.report_cmd",
    "keras_lmiqa.cli.explain_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmiqa",
        description="LML-IQA: no-reference image quality assessment (train, export, score, serve).",
    )
    verbose_help = "log debug messages and show TensorFlow's start-up lines"
    parser.add_argument(*VERBOSE_FLAGS, action="store_true", help=verbose_help)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for sub in subparsers.choices.values():  # also after the command (`python train.py -v`)
        # SUPPRESS: an absent sub-flag must not reset a `lmiqa -v train` given before it.
        sub.add_argument(*VERBOSE_FLAGS, action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    return parser


def _wants_verbose(argv: list[str]) -> bool:
    """-v/--verbose anywhere before a `--`: read before parsing, so `-v --help` shows them too."""
    words = argv[:argv.index("--")] if "--" in argv else argv
    return any(word in VERBOSE_FLAGS for word in words)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _wants_verbose(argv):
        tf_logs.show_startup()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("absl").setLevel(logging.WARNING)  # tf.data's per-epoch sharding chatter
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a full disk behind `> out.txt` shows here, not at interpreter exit
        return code
    except LmiqaError as error:
        print(f"lmiqa {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmiqa {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lmiqa models --card NAME | head`: the reader left, nothing went wrong here
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush must not fail again
        return 141  # what a shell reports for a process ended by SIGPIPE
    except OSError as error:
        if error.errno not in _STORAGE_ERRORS:
            raise
        # A file written through `artifacts.atomic_path` keeps its previous version.
        target = error.filename or "standard output"
        print(f"lmiqa {args.command}: error: cannot write {target}: {error.strerror}", file=sys.stderr)
        if not error.filename:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit flush must not fail again
        return 2


# Errors of a full or failing disk: the run stops with one line, not a traceback.
_STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


if __name__ == "__main__":
    sys.exit(main())
