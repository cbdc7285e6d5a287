"""`lmiqa crossdata`: a train-on-A, test-on-B matrix of SRCC and PLCC.

    lmiqa crossdata --runs kadid=runs/kadid10k live=runs/live \\
        --datasets kadid10k:/data/kadid10k live:/data/live csiq:/data/csiq --output-dir runs/crossdata

A run is a run folder or a model (LABEL=PATH). A dataset is [LABEL=]NAME[:ROOT][,KEY=VALUE...]
(KEY=VALUE: reader options). On a run's own dataset the cell scores the run's test split,
elsewhere every image. Cells are cached in OUT/<run>-on-<dataset>/ (rerun to continue);
the matrix is OUT/crossdata.{json,csv,md}. For medians over splits use `lmiqa protocol --cross`.
"""

from __future__ import annotations

import argparse

from keras_lmiqa.errors import ConfigError
from keras_lmiqa.research.tables import markdown


def _run_spec(text: str) -> tuple[str, str]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=RUN_DIR, got {text!r}")
    return label, path


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa.research.crossdata import cross_matrix, parse_dataset_spec

    runs = dict(args.runs)
    if len(runs) != len(args.runs):
        raise ConfigError("--runs: each LABEL may be used once")
    data = cross_matrix(runs, [parse_dataset_spec(text) for text in args.datasets], args.output_dir)
    print(markdown(data["columns"], data["rows"]), end="")
    print(f"table: {args.output_dir}/crossdata.md")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("crossdata", help="cross-dataset matrix: runs x test datasets",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, type=_run_spec, metavar="LABEL=RUN_DIR")
    parser.add_argument("--datasets", nargs="+", required=True, metavar="[LABEL=]NAME[:ROOT]")
    parser.add_argument("--output-dir", required=True, help="folder for the cells and crossdata.{json,csv,md}")
    parser.set_defaults(func=run)
