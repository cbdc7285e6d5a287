"""Fixtures for the reliability tests: untrained runs and their exports (no training needed).

An untrained `tiny` branch scores images with random weights: enough to test decoding,
request handling, faults and load, where what matters is that the same graph gives the
same numbers everywhere, not that they are good quality scores.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from untrained import write_untrained_run  # noqa: E402


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory) -> str:
    return write_untrained_run(str(tmp_path_factory.mktemp("untrained_run")))


@pytest.fixture(scope="session")
def untrained_export(untrained_model, tmp_path_factory) -> str:
    """Version folder 1 of the untrained model's export."""
    from keras_lmiqa.export import export_model

    return export_model(untrained_model, str(tmp_path_factory.mktemp("untrained_exports") / "lmiqa"))
