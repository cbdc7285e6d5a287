"""`lmiqa datasets`: list the supported benchmark datasets, or check one on disk.

    lmiqa datasets list
    lmiqa datasets check NAME [--data-root DIR] [--option KEY=VALUE ...]

`check` loads the dataset from its official layout, decodes every image and prints a
summary; it exits 0 when everything is readable, 1 when an image is missing or
unreadable (and 2, via the CLI, when the layout itself is wrong).
"""

from __future__ import annotations

import argparse

from keras_lmiqa import datasets
from keras_lmiqa.errors import ConfigError


def parse_option(text: str) -> tuple[str, object]:
    """`KEY=VALUE` -> (key, value); true/false -> bool, none/null -> None, numbers -> int/float."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--option expects KEY=VALUE, got {text!r}")
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    if lowered in ("none", "null"):
        return key.strip(), None
    for cast in (int, float):
        try:
            return key.strip(), cast(raw)
        except ValueError:
            pass
    return key.strip(), raw


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("datasets", help="list or check benchmark datasets",
                                   description="List supported datasets or check one on disk.")
    actions = parser.add_subparsers(dest="datasets_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="dataset names and the file layouts they are read from")
    listing.set_defaults(func=run)
    check = actions.add_parser("check", help="load a dataset, decode every image and print a summary")
    check.add_argument("name", metavar="NAME", help="dataset name (see `lmiqa datasets list`)")
    check.add_argument("--data-root", metavar="DIR", default=None,
                       help="the dataset folder as downloaded (for `csv`: the CSV file)")
    check.add_argument("--option", metavar="KEY=VALUE", action="append", default=[],
                       help="reader option, e.g. resolution=1024x768 (repeatable)")
    check.set_defaults(func=run)
    parser.set_defaults(func=run)
    return parser


def _list() -> int:
    for name in datasets.NAMES:
        try:
            text = datasets.layout(name)
        except ImportError as error:
            text = f"(reader unavailable: {error})"
        print(f"{name:10s} {text}")
    return 0


def _check(args) -> int:
    from keras_lmiqa.datasets.check import check, format_summary

    options = dict(parse_option(text) for text in args.option)
    summary = check(datasets.load(args.name, args.data_root, **options))
    print(format_summary(summary))
    return 1 if summary["missing"] or summary["unreadable"] else 0


def run(args) -> int:
    action = getattr(args, "datasets_command", None)
    if action == "list":
        return _list()
    if action == "check":
        return _check(args)
    raise ConfigError("lmiqa datasets: choose an action: list or check")
