"""`lmiqa export` / `python export.py`: a run's model.keras to a TF Serving SavedModel.

    lmiqa export --model RUN_DIR/model.keras --export-dir EXPORTS/lmiqa [--version N] [--overwrite]
    lmiqa export --pretrained biq2021-mobilenet-v2 --export-dir EXPORTS/lmiqa   # a shipped model
    lmiqa export --export-dir EXPORTS/lmiqa --clean

The model.keras alone is enough: it carries the run's inference settings.

Writes `EXPORTS/lmiqa/<N>/` (default N: one above the highest version present) and
prints that folder. `--overwrite` swaps the new folder in atomically: version N is
there at every moment. Each export first recovers what killed exports left (a version
an overwrite had moved aside is put back; their `.tmp-*` folders are removed);
`--clean` does only that and prints what it did. See `keras_lmiqa.export.savedmodel`
for the signatures and metadata.
"""

from __future__ import annotations

import argparse
import sys

from keras_lmiqa import artifacts
from keras_lmiqa.errors import ConfigError


def run(args: argparse.Namespace) -> int:
    artifacts.writable_folder(args.export_dir, "--export-dir")
    if args.clean:
        from keras_lmiqa.export import recover_exports

        actions = recover_exports(args.export_dir)
        print("\n".join(actions) if actions else f"nothing to clean in {args.export_dir}")
        return 0
    if bool(args.model) == bool(args.pretrained):
        raise ConfigError("give one of --model PATH or --pretrained NAME (or --clean, to only clean up after "
                          "killed exports)")
    if args.pretrained and args.config:
        raise ConfigError("--config applies to --model only: a shipped model carries its settings")
    from keras_lmiqa.export import export_model  # heavy import only when exporting

    if args.pretrained:
        from keras_lmiqa.pretrained_models import pretrained, source_label

        model, source = pretrained(args.pretrained), source_label(args.pretrained)
    else:
        model, source = args.model, None
    version_dir = export_model(model, args.export_dir, version=args.version, overwrite=args.overwrite,
                               config_path=args.config, source=source)
    print(version_dir)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("export", help="export a trained model as a TF Serving SavedModel",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", metavar="PATH", help="the run's model.keras")
    parser.add_argument("--pretrained", metavar="NAME", help="a shipped model instead (`lmiqa models` lists them)")
    parser.add_argument("--export-dir", required=True, metavar="DIR",
                        help="export base folder (TF Serving's --model_base_path); versions go in DIR/N")
    parser.add_argument("--version", type=int, default=None, metavar="N",
                        help="version number (default: one above the highest present, 1 for a new folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace version N if it exists")
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="a run's config.json to check against: the model.keras carries its own settings, "
                             "and a --config given with it must agree with them")
    parser.add_argument("--clean", action="store_true",
                        help="only recover from killed exports in --export-dir (restore a version an overwrite "
                             "moved aside, remove their .tmp-* folders), print what was done, and exit")
    parser.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `export.py`: the `lmiqa export` command on its own."""
    from keras_lmiqa.cli import main as lmiqa_main

    return lmiqa_main(["export", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
