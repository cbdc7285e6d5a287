"""Summary arithmetic (median, sample std) against NumPy, and the table files."""

import csv
import json

import numpy as np
import pytest

from keras_lmiqa.errors import ConfigError
from keras_lmiqa.research.crossdata import parse_dataset_spec
from keras_lmiqa.research.protocol import split_row, summary_table
from keras_lmiqa.research.tables import write_table


def _test_metrics(rng):
    return {"srcc": float(rng.uniform(0.5, 1)), "plcc": float(rng.uniform(0.5, 1)),
            "plcc_logistic": float(rng.uniform(0.5, 1)), "krcc": float(rng.uniform(0.3, 0.8)),
            "rmse": float(rng.uniform(0.1, 1)), "n": 40}


def test_summary_rows_are_numpy_median_and_sample_std(tmp_path):
    rng = np.random.default_rng(3)
    tests = [_test_metrics(rng) for _ in range(5)]
    cross = [{"live": {"srcc": float(rng.uniform(-1, 1)), "plcc": float(rng.uniform(-1, 1))}} for _ in range(5)]
    rows = [split_row(seed, test, other) for seed, (test, other) in enumerate(zip(tests, cross))]
    columns, table, stats = summary_table(rows)
    assert [row["split"] for row in table] == [0, 1, 2, 3, 4, "median", "std"]
    median, std = table[-2], table[-1]
    for key in ("srcc", "plcc", "plcc_logistic", "krcc", "rmse"):
        values = np.array([t[key] for t in tests])
        assert median[key] == pytest.approx(np.median(values), abs=1e-12)
        assert std[key] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    live = np.array([c["live"]["srcc"] for c in cross])
    assert median["live srcc"] == pytest.approx(np.median(live))
    assert std["live srcc"] == pytest.approx(np.std(live, ddof=1))
    assert "n" not in median and stats["n_splits"] == 5

    paths = write_table(str(tmp_path), "summary", columns, table, {"summary": stats}, title="# t")
    with open(paths[1], newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [r["split"] for r in written] == ["0", "1", "2", "3", "4", "median", "std"]
    assert float(written[-2]["srcc"]) == pytest.approx(median["srcc"], abs=5e-5)
    md = open(paths[2]).read().splitlines()
    assert md[0] == "# t" and md[2].startswith("| split | srcc | plcc |") and len(md) == 4 + len(table)
    assert json.load(open(paths[0]))["summary"]["srcc"]["median"] == median["srcc"]


def test_single_split_has_zero_std():
    rows = [split_row(7, _test_metrics(np.random.default_rng(0)), {})]
    _, table, _ = summary_table(rows)
    assert table[-1]["srcc"] == 0.0 and table[-2]["srcc"] == rows[0]["srcc"]


@pytest.mark.parametrize("text, expected", [
    ("live:/data/live", ("live", "live", "/data/live", {})),
    ("demo", ("demo", "demo", None, {})),
    ("mine=csv:/d/l.csv,higher_better=false,group_column=ref",
     ("mine", "csv", "/d/l.csv", {"higher_better": False, "group_column": "ref"})),
])
def test_dataset_specs(text, expected):
    spec = parse_dataset_spec(text)
    assert (spec.label, spec.name, spec.root, spec.options) == expected


def test_bad_dataset_spec():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_dataset_spec("csv:/d/l.csv,oops")
