"""`lmiqa eval`: score a dataset with a model; SRCC, PLCC, KRCC, RMSE and predictions.

    lmiqa eval --model runs/demo --dataset demo --split test --output-dir runs/demo/eval
    lmiqa eval --model runs/kadid/model.keras --dataset live --data-root /data/live --split all --output-dir OUT

`--split test` scores the run's own test split (the dataset must be the run's);
`--split all` scores every image (the cross-dataset test). Predictions are the model's
normalised quality mapped onto the evaluated dataset's scale and direction, so SRCC is
positive for a good model on MOS and DMOS datasets alike. Writes OUT/metrics.json,
OUT/predictions.csv and OUT/scatter.png (predicted vs subjective scores with the fitted
4-parameter logistic, as in a training run's report).
"""

from __future__ import annotations

import argparse
import os

from keras_lmiqa import artifacts
from keras_lmiqa.cli.train_cmd import _key_value
from keras_lmiqa.constants import SCORING_BATCH_SIZE
from keras_lmiqa.errors import ConfigError

SCATTER_FILE = "scatter.png"


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    artifacts.writable_folder(args.output_dir, "--output-dir")  # before the model loads and the images score
    from keras_lmiqa.research.evaluate import evaluate_model

    result = evaluate_model(args.model, args.dataset, args.data_root, split=args.split, output_dir=args.output_dir,
                            dataset_options=dict(args.dataset_option) or None, batch_size=args.batch_size)
    _write_scatter(args.output_dir, result)
    m = result["metrics"]
    print(f"{result['dataset']['name']} ({args.split}, n={m['n']}): SRCC {m['srcc']:.4f} PLCC {m['plcc']:.4f} "
          f"PLCC(logistic) {m['plcc_logistic']:.4f} KRCC {m['krcc']:.4f} RMSE {m['rmse']:.4f}; "
          f"written to {args.output_dir}")
    return 0


def _write_scatter(output_dir: str, result: dict) -> None:
    from keras_lmiqa.research.report import scatter_png, write_png

    dataset = result["dataset"]
    png = scatter_png(result["predictions"], dataset["scale"].get("kind", "MOS"),
                      f"{dataset['name']}, {result['split']} split, n={len(result['predictions'])}")
    if png is not None:
        write_png(os.path.join(output_dir, SCATTER_FILE), png)


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="score a dataset with a model and write its metrics",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder, model.keras, export folder or version folder")
    parser.add_argument("--dataset", required=True, help="dataset name (see `lmiqa datasets list`)")
    parser.add_argument("--data-root", help="the dataset folder (the CSV file for csv; not needed for demo)")
    parser.add_argument("--dataset-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="reader option (default: the run's own when it is the run's dataset)")
    parser.add_argument("--split", default="test", help="test (the run's test split, default) or all")
    parser.add_argument("--output-dir", required=True, help="folder for metrics.json, predictions.csv and scatter.png")
    parser.add_argument("--batch-size", type=int, default=SCORING_BATCH_SIZE,
                        help=f"images per scoring call (default {SCORING_BATCH_SIZE})")
    parser.set_defaults(func=run)
