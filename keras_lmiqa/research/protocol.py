"""The repeated-split protocol: one training run per split seed, then a summary table.

    OUT/split-<seed>/        a full run folder per seed (train(config) with that seed)
    OUT/split-<seed>/cross/<label>/   its cross-dataset evaluations (with `cross`)
    OUT/summary.{json,csv,md}         per split, then median and std over the splits

Rerunning continues an interrupted protocol: a split whose metrics.json exists is read,
not retrained; a half-finished split resumes from its own backup (train() resumes); a
split folder holding a run with other settings is refused.

Repeat i (i = 0, 1, ...) trains with `split_seed = config.split_seed + i` and model
`seed = config.seed + i`. On a random split the split seed draws new parts; on an
official split (BIQ2021, KonIQ-10k) the train/test parts stay as distributed and the
split seed only re-carves the validation part from train (when the split ships none), so
the changing model seed is what keeps the repeats distinct runs (docs/method.md).
"""

from __future__ import annotations

import logging
import os

from keras_lmiqa import artifacts
from keras_lmiqa.config import TrainConfig, check_same_settings
from keras_lmiqa.datasets.splits import protocol_seeds
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.metrics import METRIC_KEYS, summarize
from keras_lmiqa.research import tables
from keras_lmiqa.research.report import REPORT_FILE, write_report

logger = logging.getLogger(__name__)

SUMMARY_STEM = "summary"
SUMMARY_ROWS = ("median", "std")


def split_dir(output_dir: str, seed: int) -> str:
    return os.path.join(output_dir, f"split-{seed}")


def repeat_config(config: TrainConfig, seed: int, output_dir: str) -> TrainConfig:
    """The config that split `seed` (from `config.split_seed` up) trains with.

    Both seeds move with the repeat: the split seed (new random parts, or a new
    validation carve of an official train part) and the model seed, so no two repeats
    are the same run even where the split itself cannot change.
    """
    offset = seed - config.split_seed
    if offset < 0:
        raise ConfigError(f"split seed {seed} is below the protocol's first seed (split_seed={config.split_seed})")
    return config.replace(split_seed=seed, seed=config.seed + offset, output_dir=split_dir(output_dir, seed))


def run_split(config: TrainConfig, seed: int, output_dir: str, train_fn=None) -> dict:
    """The metrics of split `seed`: read when finished, else trained (or resumed)."""
    run_dir = split_dir(output_dir, seed)
    split_config = repeat_config(config, seed, output_dir)
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.isfile(metrics_path):
        check_same_settings(run_dir, split_config)  # a finished split is reused only with these settings
        logger.info("split %d: finished earlier (%s), not retrained", seed, metrics_path)
        metrics = artifacts.read_json(metrics_path)
    else:
        if train_fn is None:
            from keras_lmiqa.training import train as train_fn  # heavy import only when training
        logger.info("split %d: training in %s", seed, run_dir)
        metrics = train_fn(split_config).metrics
    # The report of a run trained now, or of one whose report failed or predates reports
    # (a stand-in train_fn that writes no run folder gets none).
    if os.path.isfile(metrics_path) and not os.path.isfile(os.path.join(run_dir, REPORT_FILE)):
        write_report(run_dir)
    return metrics


def split_row(seed: int, test: dict, cross: dict[str, dict]) -> dict:
    """One table row: the split's test metrics and, per cross dataset, its SRCC and PLCC."""
    row = {"split": seed, **{key: test[key] for key in (*METRIC_KEYS, "n")}}
    for label, metrics in cross.items():
        row[f"{label} srcc"], row[f"{label} plcc"] = metrics["srcc"], metrics["plcc"]
    return row


def summary_table(rows: list[dict]) -> tuple[list[str], list[dict], dict]:
    """Columns, the per-split rows followed by median and std rows, and `metrics.summarize`."""
    stats = summarize([{k: v for k, v in row.items() if k != "split"} for row in rows])
    columns = list(rows[0])
    extra = [{"split": name, **{key: stats[key][name] for key in columns if key in stats}} for name in SUMMARY_ROWS]
    return columns, [*rows, *extra], stats


def run_protocol(config: TrainConfig, repeats: int, output_dir: str, cross=(), train_fn=None) -> dict:
    """Train on `repeats` split seeds (from `config.split_seed` up) and summarise.

    Args:
        config: the training config; `split_seed` and `seed` are the first repeat's
            split and model seeds (see :func:`repeat_config`), `output_dir` is
            ignored (each split trains in `output_dir/split-<seed>`).
        repeats: number of splits (10 in the standard protocol).
        output_dir: the protocol folder.
        cross: `crossdata.DatasetSpec`s each split's model is also scored on.
        train_fn: `training.train` unless given (tests).

    Returns:
        The summary.json content: seeds, per-split results, summary statistics.
    """
    from keras_lmiqa.research.crossdata import ModelCache, evaluate_cell, unique_labels

    cross = unique_labels(list(cross))
    seeds = protocol_seeds(repeats, config.split_seed)
    rows, splits = [], []
    models = ModelCache()
    for seed in seeds:
        metrics = run_split(config, seed, output_dir, train_fn)
        if not metrics.get("test"):
            raise ConfigError(f"split {seed} has no test images; the protocol needs test_fraction > 0")
        run_dir = split_dir(output_dir, seed)
        cross_metrics = {spec.label: evaluate_cell(os.path.join(run_dir, "model.keras"), spec,
                                                   os.path.join(run_dir, "cross", spec.label), models)["metrics"]
                         for spec in cross}
        rows.append(split_row(seed, metrics["test"], cross_metrics))
        splits.append({"seed": seed, "run_dir": os.path.abspath(run_dir), "test": metrics["test"],
                       "val": metrics.get("val", {}), "cross": cross_metrics})
    columns, table_rows, stats = summary_table(rows)
    data = {"dataset": config.dataset, "data_root": config.data_root, "config": config.to_dict(),
            "seeds": seeds, "splits": splits, "summary": stats}
    title = f"# {config.dataset}: test metrics over {len(seeds)} split(s) (median and sample std last)"
    tables.write_table(output_dir, SUMMARY_STEM, columns, table_rows, data, title=title)
    return data
