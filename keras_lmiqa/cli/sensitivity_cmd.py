"""`lmiqa sensitivity`: does the score fall as photos are distorted more?

    lmiqa sensitivity --images PHOTOS --output-dir OUT                  # the default shipped model
    lmiqa sensitivity --model RUN_DIR --images PHOTOS --output-dir OUT  # run folder, model.keras or export
    lmiqa sensitivity --images ROOT --images-list names.txt --limit 100 --output-dir OUT

Distorts each photo with 7 families (noise, jpeg, blur, over_exposure, under_exposure,
contrast, downscale) at 5 levels each, with keras_lmiqa.sensitivity's own NumPy/OpenCV
code (never the training distortions), and scores every version as `lmiqa score` scores
files. Per family: the median per-photo SRCC(level, -score) over levels 0..5, the mean
score drop from the original to level 5 and the share of photos whose score strictly
decreases at every level. Writes OUT/sensitivity.json, sensitivity.csv,
sensitivity-photos.csv (every score) and sensitivity.png, and prints the table.
docs/sensitivity.md lists the levels.

Photos: every .jpg/.jpeg/.png under --images (sorted), or the lines of --images-list
(names inside --images, or beside the list file without --images; absolute paths as
they are), the first --limit of them.
"""

from __future__ import annotations

import argparse
import os
import sys

from keras_lmiqa import artifacts
from keras_lmiqa.cli.progress import progress_printer
from keras_lmiqa.constants import SCORING_BATCH_SIZE
from keras_lmiqa.errors import ConfigError


def _check(args) -> str:
    """Flag checks before any work; returns the output folder."""
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.model is not None and not os.path.exists(args.model):
        raise ConfigError(f"--model {args.model}: no such file or folder")
    if args.pretrained:
        from keras_lmiqa.pretrained_models import model_folder

        model_folder(args.pretrained)  # an unknown name fails before any photo is read
    return artifacts.writable_folder(args.output_dir, "--output-dir")


def _scorer(args):
    """(Scorer, label): --model as `lmiqa eval` resolves it (a run folder stands for its
    model.keras), else the shipped model --pretrained (default: the default model)."""
    from keras_lmiqa import pretrained_models
    from keras_lmiqa.scorer import load_scorer

    if args.model is not None:
        from keras_lmiqa.research.evaluate import resolve_model

        path = resolve_model(args.model)
        return load_scorer(path, batch_size=args.batch_size), path
    name = args.pretrained or pretrained_models.default_model()
    label = pretrained_models.source_label(name)
    return pretrained_models.scorer(name, batch_size=args.batch_size), label


def _photo_name(path: str, root: str | None) -> str:
    """How the per-photo CSV names a photo: relative to --images when inside it."""
    if root is not None:
        relative = os.path.relpath(path, root)
        if not relative.startswith(os.pardir):
            return relative
    return path


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa import sensitivity

    output_dir = _check(args)
    paths = sensitivity.photo_paths(args.images, args.images_list, args.limit)
    scorer, label = _scorer(args)
    print(f"lmiqa sensitivity: {label}, {len(paths)} photos x {len(sensitivity.FAMILIES)} families x "
          f"{sensitivity.LEVELS} levels", file=sys.stderr)

    progress = progress_printer("photos", len(paths), in_logs=True)
    scores = sensitivity.measure(scorer.score, paths, seed=args.seed, batch_size=args.batch_size, progress=progress)
    record = sensitivity.result_record(sensitivity.summarize(scores), label, len(paths), args.seed)
    sensitivity.write_outputs(output_dir, record, scores, [_photo_name(p, args.images) for p in paths])
    print(sensitivity.table(record["families"]))
    print(f"targets: median SRCC >= {sensitivity.TARGET_MEDIAN_SRCC}, mean drop >= {sensitivity.TARGET_MEAN_DROP}; "
          f"written to {output_dir}", file=sys.stderr)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sensitivity", help="score photos under 7 synthetic distortions at 5 levels",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", metavar="PATH", help="run folder, model.keras, export folder or version folder")
    source.add_argument("--pretrained", metavar="NAME",
                        help="a shipped model (`lmiqa models`); the default when no --model is given")
    parser.add_argument("--images", metavar="DIR", help="folder of the photos (or the root of --images-list's names)")
    parser.add_argument("--images-list", metavar="FILE", help="text file, one photo per line, measured in that order")
    parser.add_argument("--output-dir", required=True, metavar="OUT", help="folder for the json, csv and png files")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="measure the first N photos only")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the noise fields (default 0)")
    parser.add_argument("--batch-size", type=int, default=SCORING_BATCH_SIZE,
                        help=f"images per scoring call (default {SCORING_BATCH_SIZE})")
    parser.set_defaults(func=run)
    return parser
