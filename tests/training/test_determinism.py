"""`--deterministic`: the same command twice gives the same weights, bit for bit."""

import os
import subprocess
import sys

import keras
import numpy as np

import keras_lmiqa  # noqa: F401  (registers the layers for load_model)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _train(data_root, run_dir):
    command = [sys.executable, "-m", "keras_lmiqa.cli", "train", "--dataset", "csv", "--data-root", data_root,
               "--dataset-option", "group_column=group", "--output-dir", run_dir, "--backbone", "tiny",
               "--weights", "none", "--crop-size", "32", "--crops", "3", "--positives", "1", "--batch-size", "4",
               "--epochs", "1", "--deterministic", "--set", "head_units=16", "--set", "embedding_dim=8",
               "--set", "val_fraction=0.25", "--set", "test_fraction=0.34"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    return [w.numpy() for w in model.weights]


def test_deterministic_reruns_give_identical_weights(toy_dataset, tmp_path):
    first = _train(toy_dataset, str(tmp_path / "a"))
    second = _train(toy_dataset, str(tmp_path / "b"))
    assert len(first) == len(second) > 10
    changed = [i for i, (a, b) in enumerate(zip(first, second)) if not np.array_equal(a, b)]
    assert changed == []
