"""Cross-dataset tests: models trained on one dataset scored on others.

A test dataset is given as `[LABEL=]NAME[:ROOT][,KEY=VALUE...]`, e.g. `live:/data/live`,
`demo`, or `mine=csv:/data/mine.csv,higher_better=false` (KEY=VALUE are reader options,
typed like `--set`). On the run's own dataset a cell uses the run's test split; on any
other dataset it scores every image. Each cell is written to its own folder and reused
when rerun, so an interrupted matrix continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from keras_lmiqa import artifacts
from keras_lmiqa.config import parse_yaml
from keras_lmiqa.errors import ConfigError, shown
from keras_lmiqa.research import tables
from keras_lmiqa.research.evaluate import (
    METRICS_FILE,
    evaluate_model,
    evaluation_request,
    is_training_dataset,
    resolve_model,
    run_config_path,
)

logger = logging.getLogger(__name__)

MATRIX_METRICS = ("srcc", "plcc")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    label: str
    name: str
    root: str | None = None
    options: dict = dataclasses.field(default_factory=dict)


def parse_dataset_spec(text: str) -> DatasetSpec:
    """`[LABEL=]NAME[:ROOT][,KEY=VALUE...]` -> DatasetSpec (ConfigError if malformed)."""
    label = None
    head = text.split(":", 1)[0].split(",", 1)[0]
    if "=" in head:
        label, text = text.split("=", 1)
    location, *option_texts = text.split(",")
    name, _, root = location.partition(":")
    options = {}
    for item in option_texts:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"dataset {text!r}: reader option {item!r} is not KEY=VALUE")
        options[key.strip()] = parse_yaml(value, f"dataset {shown(text)}: reader option {shown(key.strip())}")
    if not name.strip():
        raise ConfigError(f"dataset {text!r}: expected [LABEL=]NAME[:ROOT][,KEY=VALUE...], e.g. live:/data/live")
    return DatasetSpec(label=(label or name).strip(), name=name.strip(), root=root.strip() or None, options=options)


def unique_labels(specs: list[DatasetSpec]) -> list[DatasetSpec]:
    labels = [s.label for s in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"dataset label {repeated[0]!r} is used twice; name them LABEL=NAME:ROOT")
    return specs


class ModelCache:
    """Loads each model once for all the datasets it is scored on."""

    def __init__(self):
        self._scorers: dict = {}

    def __call__(self, model_path: str):
        from keras_lmiqa.scorer import load_scorer

        if model_path not in self._scorers:
            self._scorers = {model_path: load_scorer(model_path)}  # keep one: models can be large
        return self._scorers[model_path]


def evaluate_cell(model_path: str, spec: DatasetSpec, output_dir: str, models: ModelCache | None = None) -> dict:
    """One model on one dataset (own test split or all images), cached in `output_dir`."""
    model_path = resolve_model(model_path)
    cached = os.path.join(output_dir, METRICS_FILE)
    if os.path.isfile(cached):
        previous = artifacts.read_json(cached)
        if previous.get("request") == evaluation_request(model_path, spec.name, spec.root, spec.options):
            return previous
        logger.info("%s was made for another model or dataset; scoring again", cached)
    config_path = run_config_path(model_path)
    own = config_path is not None and is_training_dataset(config_path, spec.name, spec.root)
    result = evaluate_model(model_path, spec.name, spec.root, split="test" if own else "all",
                            output_dir=output_dir, dataset_options=spec.options or None,
                            scorer=models(model_path) if models else None)
    return {key: value for key, value in result.items() if key != "predictions"}


def cross_matrix(runs: dict[str, str], targets: list[DatasetSpec], output_dir: str) -> dict:
    """Score each run (label -> run folder or model) on each target dataset.

    Writes `OUT/<run>-on-<target>/` per cell and the matrix as crossdata.{json,csv,md}:
    one row per run, SRCC and PLCC per target ("test" cells are the run's own split).
    """
    if not runs or not targets:
        raise ConfigError("a cross-dataset matrix needs at least one run (--runs) and one dataset (--datasets)")
    unique_labels(targets)
    cells = {}
    models = ModelCache()
    for run_label, model_path in runs.items():
        for spec in targets:
            cells[(run_label, spec.label)] = evaluate_cell(model_path, spec, os.path.join(
                output_dir, f"{run_label}-on-{spec.label}"), models)
    columns = ["train"] + [f"{spec.label} {key}" for spec in targets for key in MATRIX_METRICS]
    rows = [{"train": run_label, **{f"{spec.label} {key}": cells[(run_label, spec.label)]["metrics"][key]
                                    for spec in targets for key in MATRIX_METRICS}} for run_label in runs]
    data = {"runs": {label: os.path.abspath(path) for label, path in runs.items()},
            "datasets": [dataclasses.asdict(spec) for spec in targets],
            "cells": [{"train": r, "test": t, "split": cell["split"], "metrics": cell["metrics"]}
                      for (r, t), cell in cells.items()]}
    tables.write_table(output_dir, "crossdata", columns, rows, data,
                       title="# Cross-dataset SRCC / PLCC (rows: trained on; columns: tested on)")
    return {**data, "columns": columns, "rows": rows}
