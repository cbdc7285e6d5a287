"""The repeated-split protocol: summary from the split runs, and resumption."""

import json
import os

import numpy as np
import pytest
from research_helpers import tiny_config

from keras_lmiqa.errors import ConfigError
from keras_lmiqa.research.protocol import run_protocol


def _split_metrics(out, seed):
    return json.load(open(os.path.join(out, f"split-{seed}", "metrics.json")))


def test_interrupted_protocol_trains_only_the_missing_split(protocol_run):
    out = protocol_run["dir"]
    assert protocol_run["first_seeds"] == [0]
    assert protocol_run["second_seeds"] == [1]  # split 0 was finished: not retrained
    path = os.path.join(out, "split-0", "metrics.json")
    assert os.stat(path).st_mtime_ns == protocol_run["split0_before"]["mtime"]
    assert open(path).read() == protocol_run["split0_before"]["text"]
    for seed in (0, 1):
        record = json.load(open(os.path.join(out, f"split-{seed}", "config.json")))
        assert record["config"]["split_seed"] == seed and record["split"]["seed"] == seed


def test_summary_is_median_and_std_of_the_split_runs(protocol_run):
    out = protocol_run["dir"]
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["seeds"] == [0, 1] and summary["summary"]["n_splits"] == 2
    tests = [_split_metrics(out, seed)["test"] for seed in (0, 1)]
    for key in ("srcc", "plcc", "krcc", "rmse"):
        values = np.array([t[key] for t in tests])
        assert summary["summary"][key]["median"] == pytest.approx(np.median(values))
        assert summary["summary"][key]["std"] == pytest.approx(np.std(values, ddof=1))
    md = open(os.path.join(out, "summary.md")).read()
    assert "| median |" in md and "| std |" in md and f"{tests[1]['srcc']:.4f}" in md
    assert os.path.isfile(os.path.join(out, "summary.csv"))


def test_half_finished_split_resumes_from_its_backup(protocol_run, tmp_path):
    """A split killed after its last epoch was backed up: rerunning finishes it without
    training another epoch."""
    import shutil

    out = str(tmp_path / "protocol")
    shutil.copytree(os.path.join(protocol_run["dir"], "split-0"), os.path.join(out, "split-0"))
    os.remove(os.path.join(out, "split-0", "metrics.json"))
    history_before = open(os.path.join(out, "split-0", "history.json")).read()
    data = run_protocol(protocol_run["config"], 1, out)
    assert open(os.path.join(out, "split-0", "history.json")).read() == history_before
    assert data["splits"][0]["test"]["n"] == _split_metrics(protocol_run["dir"], 0)["test"]["n"]
    assert os.path.isfile(os.path.join(out, "split-0", "metrics.json"))


def test_finished_split_with_other_settings_is_refused(protocol_run, toy_dataset):
    def never_train(config):
        raise AssertionError("must not train")

    with pytest.raises(ConfigError, match=r"split-0 holds a run with different settings \(lr\)"):
        run_protocol(tiny_config(toy_dataset, lr=0.5), 1, protocol_run["dir"], train_fn=never_train)
