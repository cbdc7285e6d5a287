"""`evaluate_model`: score a dataset (its run's test split or all of it) with a model.

Predictions are the model's normalised quality (higher = better) mapped linearly onto
the *evaluated* dataset's scale and direction (`ScoreScale.to_mos`). On the training
dataset this is exactly what training reports; on another dataset (cross-dataset) it
puts DMOS sets the right way round, so a good model has a positive SRCC everywhere.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from keras_lmiqa import artifacts, datasets
from keras_lmiqa import metrics as iqa_metrics
from keras_lmiqa.constants import SCORING_BATCH_SIZE
from keras_lmiqa.errors import ConfigError, ModelError

SPLITS = ("test", "all")
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"


def run_config_path(model_path: str) -> str | None:
    """The run's config.json for a `model.keras` (beside it), None for an export."""
    if os.path.isfile(model_path):
        path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.json")
        return path if os.path.isfile(path) else None
    return None


def is_training_dataset(config_path: str, dataset_name: str, data_root: str | None) -> bool:
    """True when `dataset_name` at `data_root` is the one the run in `config_path` trained on."""
    run_config = artifacts.read_json(config_path).get("config", {})
    if run_config.get("dataset") != dataset_name:
        return False
    trained_root = run_config.get("data_root")
    return (trained_root is None and data_root is None) or (
        trained_root is not None and data_root is not None
        and os.path.abspath(trained_root) == os.path.abspath(data_root))


def evaluation_request(model_path: str, dataset_name: str, data_root: str | None, options: dict | None) -> dict:
    """What an evaluation was asked for (the model file's version included), kept in its
    metrics.json so a cached result is reused only for the same request."""
    return {"model": os.path.abspath(model_path), "model_mtime_ns": os.stat(model_path).st_mtime_ns,
            "dataset": dataset_name, "data_root": data_root and os.path.abspath(data_root),
            "options": dict(options or {})}


def resolve_model(model_path: str) -> str:
    """A run folder stands for its model.keras."""
    candidate = os.path.join(model_path, "model.keras")
    if os.path.isdir(model_path) and os.path.isfile(candidate):
        return candidate
    if not os.path.exists(model_path):
        raise ModelError(f"--model {model_path}: no such file or folder (expected a run folder, a model.keras "
                         "or an export folder)")
    return model_path


def _test_records(dataset, config_path: str):
    """The run's own test split of `dataset`, refusing any other dataset."""
    from keras_lmiqa.datasets.splits import split_dataset
    from keras_lmiqa.loading import read_run_record

    config, _, record = read_run_record(config_path)
    trained = record.get("dataset", {})
    same = (trained.get("name") == dataset.name and trained.get("size") == len(dataset)
            and os.path.abspath(trained.get("root", "")) == os.path.abspath(dataset.root))
    if not same:
        raise ConfigError(
            f"--split test needs the dataset the run was trained on ({trained.get('name')} at {trained.get('root')}, "
            f"{trained.get('size')} images), got {dataset.name} at {dataset.root} ({len(dataset)} images); "
            "use --split all for a cross-dataset test")
    split = split_dataset(dataset, config.split_seed, config.test_fraction, config.val_fraction,
                          use_official=config.use_official_split)
    expected = {part: record["split"][part] for part in ("train", "val", "test") if part in record.get("split", {})}
    if expected and expected != {part: size for part, size in split.sizes().items() if part in expected}:
        raise ConfigError(f"the split drawn now ({split.sizes()}) differs from the run's ({expected}); "
                          f"{config_path} does not match this dataset")
    # Images the run skipped (on_bad_image: skip) cannot be scored now either.
    metrics_path = os.path.join(os.path.dirname(config_path), "metrics.json")
    skipped = set()
    if os.path.isfile(metrics_path):
        skipped = {item["path"] for item in artifacts.read_json(metrics_path).get("skipped", [])}
    return tuple(r for r in split.records(dataset, "test") if r.path not in skipped)


def evaluate_model(model_path: str, dataset_name: str, data_root: str | None, split: str = "test",
                   output_dir: str | None = None, dataset_options: dict | None = None,
                   batch_size: int = SCORING_BATCH_SIZE, scorer=None) -> dict:
    """Score `dataset_name` with a model and measure the predictions against its labels.

    Args:
        model_path: a run folder, its model.keras, an export folder or a version folder.
        dataset_name, data_root, dataset_options: the dataset, as `datasets.load` takes
            them. Options default to the run's own when it is the run's dataset.
        split: "test" (the run's test split; needs the run's config.json) or "all"
            (every image: the cross-dataset test).
        output_dir: where to write metrics.json and predictions.csv (None: nothing).
        scorer: the model already loaded (`load_scorer(model_path)`), to score several
            datasets with one load.

    Returns:
        {"model", "dataset": {name, root, scale}, "split", "metrics": evaluate() dict}
        plus "predictions": the per-image rows.

    Raises:
        ConfigError: bad split or a test split asked of another dataset or an export.
        ModelError, DatasetError: missing or unreadable model or dataset.
    """
    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    model_path = resolve_model(model_path)
    config_path = run_config_path(model_path)
    if split == "test" and config_path is None:
        raise ConfigError(f"--split test needs the run's config.json beside the model; {model_path} has none "
                          "(an export does not record its split): pass the run's model.keras or use --split all")
    request = evaluation_request(model_path, dataset_name, data_root, dataset_options)
    if dataset_options is None and config_path and is_training_dataset(config_path, dataset_name, data_root):
        dataset_options = dict(artifacts.read_json(config_path)["config"].get("dataset_options", {}))
    dataset = datasets.load(dataset_name, data_root, **(dataset_options or {}))
    records = _test_records(dataset, config_path) if split == "test" else tuple(dataset.records)
    if len(records) < 3:
        raise ConfigError(f"{dataset.name}: {len(records)} image(s) in the {split} split; metrics need at least 3")

    from keras_lmiqa.scorer import load_scorer  # heavy: TensorFlow

    scorer = scorer or load_scorer(model_path, batch_size=batch_size)
    quality = np.asarray(scorer.score([r.path for r in records]), np.float64)
    predicted = np.asarray(dataset.scale.to_mos(quality), np.float64)
    targets = np.array([r.mos for r in records], np.float64)
    result = {
        "model": os.path.abspath(model_path),
        "dataset": {"name": dataset.name, "root": dataset.root, "scale": dataset.scale.to_dict()},
        "split": split,
        # What was asked for, so a cached result can be checked against a new request.
        "request": request,
        "metrics": iqa_metrics.evaluate(predicted, targets),
    }
    rows = [{"path": r.path, "mos": r.mos, "predicted_mos": float(p), "quality": r.quality,
             "predicted_quality": float(q), "group": r.group} for r, p, q in zip(records, predicted, quality)]
    if output_dir:
        write_evaluation(output_dir, result, rows)
    return {**result, "predictions": rows}


def write_evaluation(output_dir: str, result: dict, rows: list[dict]) -> None:
    """metrics.json and predictions.csv (path, mos, predicted_mos, quality, predicted_quality, group)."""
    artifacts.write_json(os.path.join(output_dir, METRICS_FILE), result)
    columns = ("path", "mos", "predicted_mos", "quality", "predicted_quality", "group")
    with artifacts.atomic_path(os.path.join(output_dir, PREDICTIONS_FILE)) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([f"{row[c]:.9g}" if isinstance(row[c], float) else row[c] for c in columns])
