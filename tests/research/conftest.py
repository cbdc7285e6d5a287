"""Shared research fixtures: one tiny protocol run, interrupted after its first split and
continued, and a DMOS twin of the toy dataset (same images, labels inverted)."""

from __future__ import annotations

import os

import pytest
from research_helpers import CountingTrain, tiny_config
from toy_data import make_toy_dataset

DMOS_OFFSET = 10.0


@pytest.fixture(scope="session")
def protocol_run(tmp_path_factory, toy_dataset) -> dict:
    """A 2-split protocol run as an interrupted one would continue: first only split 0
    finishes, then the same protocol is rerun with --repeats 2."""
    from keras_lmiqa.research.protocol import run_protocol

    out = str(tmp_path_factory.mktemp("protocol"))
    config = tiny_config(toy_dataset)
    first_train = CountingTrain()
    first = run_protocol(config, 1, out, train_fn=first_train)
    split0_metrics = os.path.join(out, "split-0", "metrics.json")
    before = {"mtime": os.stat(split0_metrics).st_mtime_ns, "text": open(split0_metrics).read()}
    second_train = CountingTrain()
    second = run_protocol(config, 2, out, train_fn=second_train)
    return {"dir": out, "config": config, "first": first, "second": second, "first_seeds": first_train.seeds,
            "second_seeds": second_train.seeds, "split0_before": before}


@pytest.fixture(scope="session")
def dmos_twin(tmp_path_factory, toy_dataset) -> str:
    """The toy images again, labelled DMOS = 10 - MOS (lower = better); read it with
    the csv option higher_better=False."""
    root = make_toy_dataset(str(tmp_path_factory.mktemp("dmos")))
    lines = open(root).read().splitlines()
    rows = [lines[0]]
    for line in lines[1:]:
        path, mos, group = line.split(",")
        rows.append(f"{path},{DMOS_OFFSET - float(mos):.2f},{group}")
    with open(root, "w") as handle:
        handle.write("\n".join(rows) + "\n")
    return root
