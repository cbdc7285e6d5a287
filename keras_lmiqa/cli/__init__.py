"""The `lmiqa` command: one module per subcommand, each thin over the library.

Each `keras_lmiqa.cli.<name>_cmd` module defines `register(subparsers)`, which adds its
parser and sets `func=run` on it. `main` turns any :class:`LmiqaError` into one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from keras_lmiqa.errors import LmiqaError

# Subcommand modules, in the order `lmiqa --help` lists them.
COMMAND_MODULES = (
    "keras_lmiqa.cli.train_cmd",
    "keras_lmiqa.cli.datasets_cmd",
    "keras_lmiqa.cli.export_cmd",
    "keras_lmiqa.cli.serve_cmd",
    "keras_lmiqa.cli.score_cmd",
    "keras_lmiqa.cli.eval_cmd",
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
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
        return int(args.func(args) or 0)
    except LmiqaError as error:
        print(f"lmiqa {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmiqa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
