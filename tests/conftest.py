"""Shared fixtures: a small real-photo IQA set and a tiny trained run.

`toy_dataset` writes a user CSV dataset (the `csv` reader) of scikit-image photographs
blurred and noised at increasing levels, scored by level. `trained_run` trains the
cpu-demo model on it for a few epochs; session-scoped, so each test worker trains once.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from toy_data import TOY_TRAIN_SETTINGS, make_toy_dataset  # noqa: E402


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> str:
    return make_toy_dataset(str(tmp_path_factory.mktemp("toy")))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, toy_dataset) -> str:
    """A finished run folder (model.keras, config.json, metrics.json) on the toy set."""
    from keras_lmiqa.config import from_dict
    from keras_lmiqa.training import train

    run_dir = str(tmp_path_factory.mktemp("run"))
    train(from_dict({**TOY_TRAIN_SETTINGS, "data_root": toy_dataset, "output_dir": run_dir}))
    return run_dir
