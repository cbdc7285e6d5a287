"""Scores a dataset can hold: finite and within MAX_ABS_SCORE (1e308 would pass and normalise
every image to NaN or 0); a training set whose scores are all equal is trained with a warning."""

from __future__ import annotations

import logging
import math
import re

import pytest

from keras_lmiqa.datasets.records import MAX_ABS_SCORE, make_dataset
from keras_lmiqa.errors import DatasetError


def _entries(scores):
    return [(f"/data/{index}.png", score, f"g{index}", None) for index, score in enumerate(scores)]


@pytest.mark.parametrize("extreme", [1e308, -1e308, 2 * MAX_ABS_SCORE])
def test_a_score_beyond_the_bound_is_refused_naming_the_image(extreme):
    message = "^" + re.escape(f"mine: score of /data/1.png is {extreme!r}, outside [-1e+09, 1e+09]")
    with pytest.raises(DatasetError, match=message):
        make_dataset("mine", "/data", _entries([3.0, extreme, 5.0]), higher_better=True, synthetic=False)


def test_scores_at_the_bound_normalise_to_finite_qualities():
    dataset = make_dataset("mine", "/data", _entries([-MAX_ABS_SCORE, 0.0, MAX_ABS_SCORE]), True, False)
    assert [r.quality for r in dataset] == [0.0, 0.5, 1.0]
    assert all(math.isfinite(r.quality) for r in dataset)


def test_identical_training_scores_are_trained_with_a_warning(monkeypatch, caplog):
    from keras_lmiqa.config import from_dict
    from keras_lmiqa.training import loop as training

    same = make_dataset("mine", "/data", _entries([3.0] * 20), higher_better=True, synthetic=False)
    monkeypatch.setattr(training.datasets, "load", lambda *args, **kwargs: same)
    with caplog.at_level(logging.WARNING, logger="keras_lmiqa.training"):
        data = training.load_data(from_dict({"dataset": "csv"}))
    assert [m for m in caplog.messages if "have the same score" in m] == [
        f"all {len(data.train)} training images have the same score (3): the model cannot learn to rank them"]
    caplog.clear()
    varied = make_dataset("mine", "/data", _entries([float(i) for i in range(20)]), True, False)
    monkeypatch.setattr(training.datasets, "load", lambda *args, **kwargs: varied)
    with caplog.at_level(logging.WARNING, logger="keras_lmiqa.training"):
        training.load_data(from_dict({"dataset": "csv"}))
    assert not [m for m in caplog.messages if "same score" in m]
