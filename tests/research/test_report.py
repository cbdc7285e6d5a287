"""report.html (built after training by `lmiqa train` and the protocol) and `lmiqa explain`:
every figure embedded and decodable."""

import base64
import csv
import html.parser
import io
import json
import os

import matplotlib.image
import numpy as np
import pytest

from keras_lmiqa.cli import main

DATA_URI = "data:image/png;base64,"


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.cells = [], [], []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag in ("link", "script", "a") or "href" in attrs:
            self.links.append(tag)
        self._in_cell = tag == "td"

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)


def _decode_png(data: bytes) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(data), format="png")


@pytest.fixture(scope="module")
def run_dir(protocol_run):
    return os.path.join(protocol_run["dir"], "split-1")


def test_training_writes_a_self_contained_report(run_dir):
    page = _Page()
    page.feed(open(os.path.join(run_dir, "report.html"), encoding="utf-8").read())
    page.close()
    assert [image["alt"] for image in page.images] == ["scatter", "curves", "gallery"]
    assert not page.links  # nothing outside the file
    for image in page.images:
        assert image["src"].startswith(DATA_URI)
        png = base64.b64decode(image["src"][len(DATA_URI):], validate=True)
        pixels = _decode_png(png)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.shape[2] in (3, 4)
        assert pixels[..., :3].std() > 0.01  # something is drawn
        with open(os.path.join(run_dir, "report", f"{image['alt']}.png"), "rb") as handle:
            assert handle.read() == png  # the PNG saved beside the page is the one embedded
    test = json.load(open(os.path.join(run_dir, "metrics.json")))["test"]
    assert f"{test['srcc']:.4f}" in page.cells and f"{test['rmse']:.4f}" in page.cells


def test_report_command_rebuilds_it(run_dir, tmp_path, capsys):
    import shutil

    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    shutil.rmtree(os.path.join(copy, "report"))
    os.remove(os.path.join(copy, "report.html"))
    assert main(["report", copy]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(copy, "report.html")
    assert sorted(os.listdir(os.path.join(copy, "report"))) == ["curves.png", "gallery.png", "scatter.png"]


def test_explain_writes_the_figure_and_prints_the_score(run_dir, tmp_path, capsys):
    with open(os.path.join(run_dir, "test_predictions.csv"), newline="") as handle:
        row = next(csv.DictReader(handle))  # scored by training's own evaluation
    out = str(tmp_path / "explain.png")
    assert main(["explain", row["path"], "--model", os.path.join(run_dir, "model.keras"), "--out", out]) == 0
    pixels = _decode_png(open(out, "rb").read())
    assert pixels.ndim == 3 and pixels.shape[1] > 600 and pixels[..., :3].std() > 0.01
    printed = capsys.readouterr().out
    assert float(printed.split("(mos ")[1].split(")")[0]) == pytest.approx(float(row["predicted_mos"]), abs=2e-4)


def test_a_report_failure_names_its_cause_and_leaves_the_results(run_dir, tmp_path, capsys):
    import shutil

    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    metrics = open(os.path.join(copy, "metrics.json")).read()
    with open(os.path.join(copy, "model.keras"), "wb") as handle:
        handle.write(b"not a model")
    assert main(["report", copy]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot build the report of {copy}" in err[0] and "model.keras" in err[0], err
    assert open(os.path.join(copy, "metrics.json")).read() == metrics
