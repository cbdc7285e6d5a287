"""`lmiqa export` / `python export.py`: a run's model.keras to a TF Serving SavedModel.

    lmiqa export --model RUN_DIR/model.keras --export-dir EXPORTS/lmiqa [--version N] [--overwrite]

Writes `EXPORTS/lmiqa/<N>/` (default N: one above the highest version present) and
prints that folder. See `keras_lmiqa.export` for the signatures and metadata.
"""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa.export import export_model  # heavy import only when exporting

    version_dir = export_model(args.model, args.export_dir, version=args.version, overwrite=args.overwrite,
                               config_path=args.config)
    print(version_dir)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("export", help="export a trained model as a TF Serving SavedModel",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, metavar="PATH", help="the run's model.keras")
    parser.add_argument("--export-dir", required=True, metavar="DIR",
                        help="export base folder (TF Serving's --model_base_path); versions go in DIR/N")
    parser.add_argument("--version", type=int, default=None, metavar="N",
                        help="version number (default: one above the highest present, 1 for a new folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace version N if it exists")
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="the run's config.json (default: config.json beside --model)")
    parser.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `export.py`: the `lmiqa export` command on its own."""
    from keras_lmiqa.cli import main as lmiqa_main

    return lmiqa_main(["export", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
