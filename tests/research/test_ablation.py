"""Ablations share the protocol: same splits, resumable, one table with deltas vs full."""

import json
import os
import shutil

import pytest
from research_helpers import CountingTrain

from keras_lmiqa.research.ablation import SWITCHES, run_ablation


def test_ablation_table_compares_each_variant_with_full(protocol_run, tmp_path):
    out = str(tmp_path / "ablation")
    # The protocol's split 0 is the full model's split 0: a finished run is reused, not retrained.
    shutil.copytree(os.path.join(protocol_run["dir"], "split-0"), os.path.join(out, "full", "split-0"))
    counting = CountingTrain()
    data = run_ablation(protocol_run["config"], 1, out, variants=["regression"], train_fn=counting)
    assert counting.seeds == [0]  # only the regression baseline trained
    record = json.load(open(os.path.join(out, "regression", "split-0", "config.json")))
    assert all(record["config"][switch] is False for switch in SWITCHES)
    full = json.load(open(os.path.join(out, "full", "split-0", "metrics.json")))["test"]
    regression = json.load(open(os.path.join(out, "regression", "split-0", "metrics.json")))["test"]
    assert [row["variant"] for row in data["rows"]] == ["full", "regression"]
    row = data["rows"][1]
    assert row["srcc median"] == pytest.approx(regression["srcc"]) and row["srcc std"] == 0.0
    assert row["srcc delta"] == pytest.approx(regression["srcc"] - full["srcc"])
    assert row["plcc delta"] == pytest.approx(regression["plcc"] - full["plcc"])
    assert data["rows"][0]["srcc delta"] == 0.0
    md = open(os.path.join(out, "ablation.md")).read()
    assert f"| regression | {', '.join(SWITCHES)} | {regression['srcc']:.4f} |" in md
