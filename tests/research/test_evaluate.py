"""`evaluate_model` and `lmiqa eval`/`crossdata`: own test split, cross-dataset, DMOS direction."""

import csv
import json
import os

import matplotlib.image
import numpy as np
import pytest
from scipy import stats

from keras_lmiqa.cli import main
from keras_lmiqa.research.crossdata import cross_matrix, parse_dataset_spec
from keras_lmiqa.research.evaluate import evaluate_model


@pytest.fixture(scope="module")
def run_dir(protocol_run):
    return os.path.join(protocol_run["dir"], "split-0")


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_eval_cli_on_the_runs_test_split_matches_training(run_dir, toy_dataset, tmp_path, capsys):
    out = str(tmp_path / "eval")
    code = main(["eval", "--model", run_dir, "--dataset", "csv", "--data-root", toy_dataset, "--split", "test",
                 "--output-dir", out])
    assert code == 0, capsys.readouterr().err
    written = json.load(open(os.path.join(out, "metrics.json")))
    trained = json.load(open(os.path.join(run_dir, "metrics.json")))["test"]
    assert written["split"] == "test" and written["metrics"]["n"] == trained["n"]
    for key in ("srcc", "plcc", "plcc_logistic", "krcc", "rmse"):
        assert written["metrics"][key] == pytest.approx(trained[key], abs=1e-3), key
    rows = _rows(os.path.join(out, "predictions.csv"))
    expected = {r["path"]: float(r["mos"]) for r in _rows(os.path.join(run_dir, "test_predictions.csv"))}
    assert {r["path"]: float(r["mos"]) for r in rows} == expected
    assert f"SRCC {written['metrics']['srcc']:.4f}" in capsys.readouterr().out
    # The scatter with the fitted logistic, drawn by the run report's code: the points
    # (tab:blue at alpha 0.7 on white) and the curve (tab:red) are both on it.
    pixels = matplotlib.image.imread(os.path.join(out, "scatter.png"))[..., :3]
    near = lambda rgb: (np.abs(pixels - np.array(rgb)).max(axis=-1) < 0.08).sum()  # noqa: E731
    assert near((0.839, 0.153, 0.157)) > 100 and near((0.385, 0.627, 0.794)) > 20


def test_cross_dataset_on_a_dmos_dataset_keeps_the_sign(run_dir, toy_dataset, dmos_twin, tmp_path):
    """The twin holds the same images with DMOS = 10 - MOS: every correlation must equal
    the one on the MOS labels, not its negative."""
    from keras_lmiqa.scorer import load_scorer

    scorer = load_scorer(os.path.join(run_dir, "model.keras"))
    on_mos = evaluate_model(run_dir, "csv", toy_dataset, split="all", dataset_options={}, scorer=scorer)
    on_dmos = evaluate_model(run_dir, "csv", dmos_twin, split="all", output_dir=str(tmp_path / "dmos"),
                             dataset_options={"higher_better": False}, scorer=scorer)
    assert on_dmos["dataset"]["scale"]["higher_better"] is False
    assert on_mos["metrics"]["n"] == on_dmos["metrics"]["n"] == 66
    assert on_mos["metrics"]["srcc"] != 0.0
    for key in ("srcc", "plcc", "krcc"):
        assert on_dmos["metrics"][key] == pytest.approx(on_mos["metrics"][key], abs=1e-9), key
    rows = _rows(str(tmp_path / "dmos" / "predictions.csv"))
    predicted = np.array([float(r["predicted_quality"]) for r in rows])
    quality = np.array([float(r["quality"]) for r in rows])
    dmos = np.array([float(r["mos"]) for r in rows])
    assert stats.spearmanr(predicted, quality)[0] == pytest.approx(on_dmos["metrics"]["srcc"], abs=1e-4)
    assert stats.spearmanr(predicted, dmos)[0] == pytest.approx(-on_dmos["metrics"]["srcc"], abs=1e-4)


def test_crossdata_matrix_uses_the_own_test_split_and_all_of_the_other(run_dir, toy_dataset, dmos_twin, tmp_path):
    out = str(tmp_path / "matrix")
    targets = [parse_dataset_spec(f"toy=csv:{toy_dataset}"),
               parse_dataset_spec(f"dmos=csv:{dmos_twin},higher_better=false")]
    data = cross_matrix({"A": run_dir}, targets, out)
    cells = {c["test"]: c for c in data["cells"]}
    trained = json.load(open(os.path.join(run_dir, "metrics.json")))["test"]
    assert cells["toy"]["split"] == "test" and cells["toy"]["metrics"]["n"] == trained["n"]
    assert cells["toy"]["metrics"]["srcc"] == pytest.approx(trained["srcc"], abs=1e-3)
    assert cells["dmos"]["split"] == "all" and cells["dmos"]["metrics"]["n"] == 66
    assert data["rows"] == [{"train": "A", "toy srcc": cells["toy"]["metrics"]["srcc"],
                             "toy plcc": cells["toy"]["metrics"]["plcc"],
                             "dmos srcc": cells["dmos"]["metrics"]["srcc"],
                             "dmos plcc": cells["dmos"]["metrics"]["plcc"]}]
    md = open(os.path.join(out, "crossdata.md")).read()
    assert "| train | toy srcc | toy plcc | dmos srcc | dmos plcc |" in md
    # A rerun reads the cached cells instead of scoring again.
    stamp = os.stat(os.path.join(out, "A-on-dmos", "metrics.json")).st_mtime_ns
    assert cross_matrix({"A": run_dir}, targets, out)["rows"] == data["rows"]
    assert os.stat(os.path.join(out, "A-on-dmos", "metrics.json")).st_mtime_ns == stamp
    # Another dataset under the same label is scored again, not read from the cache: read
    # as MOS (the wrong direction), the DMOS labels flip the sign.
    wrong_way = cross_matrix({"A": run_dir}, [targets[0], parse_dataset_spec(f"dmos=csv:{dmos_twin}")], out)
    assert wrong_way["rows"][0]["dmos srcc"] == pytest.approx(-data["rows"][0]["dmos srcc"], abs=1e-9)


@pytest.mark.parametrize("args, message", [
    (["eval", "--model", "/nonexistent/run", "--dataset", "csv", "--data-root", "x", "--output-dir", "o"],
     "--model /nonexistent/run: no such file or folder"),
    (["eval", "--model", "{run}", "--dataset", "kadid", "--data-root", "x", "--output-dir", "o"],
     "unknown dataset 'kadid'"),
    (["eval", "--model", "{run}", "--dataset", "csv", "--data-root", "{toy}", "--split", "train", "--output-dir", "o"],
     "--split must be one of test, all, got 'train'"),
    (["eval", "--model", "{run}", "--dataset", "csv", "--data-root", "{dmos}", "--split", "test", "--output-dir", "o"],
     "--split test needs the dataset the run was trained on"),
    (["explain", "/nonexistent/a.png", "--model", "{run}", "--out", "o.png"], "image not found: /nonexistent/a.png"),
    (["explain", "{image}", "--model", "/nonexistent/m.keras", "--out", "o.png"], "/nonexistent/m.keras"),
    (["report", "/nonexistent/run"], "missing metrics.json"),
    (["protocol", "--dataset", "csv", "--data-root", "{toy}", "--repeats", "0"], "repeats must be a positive integer"),
    (["ablate", "--dataset", "csv", "--data-root", "{toy}", "--variants", "no-sal"], "unknown ablation 'no-sal'"),
    (["crossdata", "--runs", "A={run}", "--datasets", "csv:{toy},bad", "--output-dir", "o"], "is not KEY=VALUE"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, run_dir, toy_dataset, dmos_twin, tmp_path, capsys,
                                         monkeypatch):
    image = os.path.join(os.path.dirname(toy_dataset), "ref0_blur0.png")
    args = [a.format(run=run_dir, toy=toy_dataset, dmos=dmos_twin, image=image) for a in args]
    monkeypatch.chdir(tmp_path)  # nothing may be written anywhere else
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lmiqa {args[0]}: error:") and message in err[0], err
