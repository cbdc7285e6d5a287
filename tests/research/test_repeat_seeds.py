"""Protocol repeats are distinct runs: each changes the split seed and the model seed.

On an official split (docs/method.md, "Evaluation protocol") the test part stays as
distributed and the validation carve and model seed change; no model is trained here,
a stand-in train() records what each repeat would train on.
"""

from __future__ import annotations

import os
import types

import cv2
import numpy as np
import pytest
from research_helpers import tiny_config

from keras_lmiqa import datasets
from keras_lmiqa.datasets.splits import split_dataset
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.metrics import METRIC_KEYS
from keras_lmiqa.research.ablation import run_ablation
from keras_lmiqa.research.protocol import repeat_config, run_protocol


def write_labels(folder, official: bool) -> str:
    """12 tiny images in a `csv` dataset; with `official`, a split column (9 train, 3 test)."""
    os.makedirs(folder, exist_ok=True)
    rows = ["path,mos" + (",split" if official else "")]
    for i in range(12):
        name = f"img{i:02d}.png"
        pixels = np.random.default_rng(i).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        assert cv2.imwrite(os.path.join(folder, name), pixels)
        rows.append(f"{name},{i / 11:.3f}" + ((",test" if i >= 9 else ",train") if official else ""))
    path = os.path.join(folder, "labels.csv")
    with open(path, "w") as handle:
        handle.write("\n".join(rows) + "\n")
    return path


class RecordingTrain:
    """A stand-in for `training.train`: splits the data as train() does, trains nothing."""

    def __init__(self):
        self.runs: list[dict] = []

    def __call__(self, config):
        data = datasets.load(config.dataset, config.data_root, **config.dataset_options)
        split = split_dataset(data, config.split_seed, config.test_fraction, config.val_fraction,
                              use_official=config.use_official_split)
        self.runs.append({"config": config, "split": split})
        metrics = {key: 0.5 + 0.01 * len(self.runs) for key in METRIC_KEYS}
        return types.SimpleNamespace(metrics={"test": {**metrics, "n": len(split.test)}, "val": metrics})


def config_for(labels: str, **changes):
    # group_column None: each image is its own group, as in an authentic set.
    return tiny_config(labels, dataset_options={}, val_fraction=0.34, **changes)


def test_official_split_repeats_keep_test_and_change_val_carve_and_model_seed(tmp_path):
    train = RecordingTrain()
    run_protocol(config_for(write_labels(str(tmp_path / "data"), official=True)), 3, str(tmp_path / "out"),
                 train_fn=train)
    splits = [run["split"] for run in train.runs]
    configs = [run["config"] for run in train.runs]
    assert all(s.official for s in splits)
    assert {s.test for s in splits} == {(9, 10, 11)}  # the official test part, every repeat
    assert len({s.val for s in splits}) == 3  # a different validation carve per repeat
    assert all(set(s.train + s.val) == set(range(9)) for s in splits)
    assert [c.split_seed for c in configs] == [0, 1, 2] and [c.seed for c in configs] == [0, 1, 2]
    assert [c.output_dir for c in configs] == [str(tmp_path / "out" / f"split-{i}") for i in range(3)]


def test_random_split_repeats_change_the_model_seed_too(tmp_path):
    train = RecordingTrain()
    labels = write_labels(str(tmp_path / "data"), official=False)
    run_protocol(config_for(labels, split_seed=5, seed=40), 2, str(tmp_path / "out"), train_fn=train)
    (first, second) = train.runs
    assert (first["config"].split_seed, first["config"].seed) == (5, 40)  # repeat 0 is the config as given
    assert (second["config"].split_seed, second["config"].seed) == (6, 41)
    assert not first["split"].official and first["split"].test != second["split"].test


def test_ablation_variants_share_each_repeats_seeds(tmp_path):
    train = RecordingTrain()
    labels = write_labels(str(tmp_path / "data"), official=True)
    run_ablation(config_for(labels), 2, str(tmp_path / "out"), variants=["regression"], train_fn=train)
    seeds = [(run["config"].use_mutual, run["config"].split_seed, run["config"].seed) for run in train.runs]
    assert seeds == [(True, 0, 0), (True, 1, 1), (False, 0, 0), (False, 1, 1)]
    assert train.runs[0]["split"].val == train.runs[2]["split"].val  # a paired comparison


def test_repeat_config_refuses_a_seed_below_the_first(tmp_path):
    config = config_for(write_labels(str(tmp_path / "data"), official=True), split_seed=3)
    assert repeat_config(config, 4, "out").seed == 1
    with pytest.raises(ConfigError, match="split seed 2 is below the protocol's first seed"):
        repeat_config(config, 2, "out")
