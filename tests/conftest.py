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

MEASURED = "measured"  # user_properties key of figures printed in the run's log (pytest_terminal_summary)


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


def pytest_terminal_summary(terminalreporter):
    """Print the figures tests record with `record_property(MEASURED, text)` (the photo
    pages' timings) at the end of the run; here, so the xdist controller prints its workers'."""
    lines = [value for report in terminalreporter.stats.get("passed", [])
             for key, value in report.user_properties if key == MEASURED]
    if lines:
        terminalreporter.write_sep("-", "measured")
        for line in lines:
            terminalreporter.write_line(line)
