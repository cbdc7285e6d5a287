"""`lmiqa models`: the quality models shipped with keras-lmiqa, scored with no training.

    lmiqa models                # name, backbone, training data, test figures, size
    lmiqa models --card NAME    # the model card (MODEL_CARD.md)

`lmiqa score IMAGES` uses the default model (marked *); `--pretrained NAME` another.
"""

from __future__ import annotations

import argparse
import os

from keras_lmiqa.constants import MIB


def _size_mb(folder: str) -> float:
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)) / MIB


def run(args: argparse.Namespace) -> int:
    from keras_lmiqa import pretrained_models as shipped

    if args.card:
        folder = shipped.model_folder(args.card)
        with open(os.path.join(folder, shipped.CARD_TEXT_FILE), encoding="utf-8") as handle:
            print(handle.read().rstrip())
        return 0
    names = shipped.list_models()
    if not names:
        print("no models are shipped with this keras-lmiqa")
        return 0
    rows = [("", "name", "backbone", "crop", "trained on", "test SRCC", "test PLCC", "MB")]
    default = shipped.default_model()
    for name in names:
        card = shipped.model_card(name)
        test = card["shipped_metrics"]
        rows.append(("*" if name == default else "", name, card["backbone"]["name"],
                     f"{card['inference']['crop_size']} px", card["training"]["dataset"],
                     f"{test['srcc']:.3f}", f"{test['plcc']:.3f}", f"{_size_mb(shipped.model_folder(name)):.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("* the default of `lmiqa score` and `keras_lmiqa.load_scorer()`; test figures on the training "
          "dataset's official test split; `lmiqa models --card NAME` for the card")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("models", help="list the shipped pretrained models",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--card", metavar="NAME", help="print this model's card")
    parser.set_defaults(func=run)
    return parser
