"""`lmiqa report RUN_DIR...`: (re)build each run folder's report.html and report/*.png."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa.research.report import write_report

    for run_dir in args.run_dirs:
        print(write_report(run_dir))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="build a training run's report.html", description=__doc__)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished training run folder")
    parser.set_defaults(func=run)
