"""The built-in `demo` dataset: real builds from bundled photographs into tmp_path."""

from __future__ import annotations

import csv
import glob
import json
import os

import cv2
import numpy as np
import pytest

from keras_lmiqa import datasets
from keras_lmiqa.datasets import demo, distortions
from keras_lmiqa.errors import DatasetError

N_TYPES = len(distortions.DISTORTIONS)
N_LEVELS = len(distortions.LEVELS)


def _build_dir(root) -> str:
    found = [p for p in glob.glob(os.path.join(str(root), "v1-*")) if os.path.isdir(p)]
    assert len(found) == 1, found
    return found[0]


def _labels(folder) -> list[dict]:
    with open(os.path.join(folder, "labels.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, datasets.load("demo", str(root), max_references=3)


def test_counts_groups_and_scale(built):
    root, ds = built
    assert len(ds) == 3 * N_TYPES * N_LEVELS
    assert len(ds.groups) == 3
    assert ds.synthetic and ds.name == "demo"
    assert ds.scale.kind == "MOS" and ds.scale.higher_better
    assert 1.0 <= ds.scale.low < ds.scale.high <= 5.0
    assert all(0.0 <= r.quality <= 1.0 for r in ds)
    assert all(r.official_split is None for r in ds)
    folder = _build_dir(root)
    assert ds.root == folder
    info = json.load(open(os.path.join(folder, "build.json")))
    assert [r["name"] for r in info["references"]] == ds.groups
    assert len({r["photo"] for r in info["references"]}) == 3  # spread over 3 photographs
    for group in ds.groups:
        assert sum(r.group == group for r in ds) == N_TYPES * N_LEVELS


def test_files_and_manifest(built):
    root, ds = built
    folder = _build_dir(root)
    rows = _labels(folder)
    assert list(rows[0]) == ["path", "mos", "group", "distortion", "level"]
    assert len(rows) == len(ds)
    assert {row["distortion"] for row in rows} == set(distortions.DISTORTIONS)
    assert {int(row["level"]) for row in rows} == set(distortions.LEVELS)
    for record, row in zip(ds, rows):
        assert record.path == os.path.join(folder, row["path"]) and os.path.isfile(record.path)
        assert record.mos == pytest.approx(float(row["mos"])) and record.group == row["group"]
    image = cv2.imread(ds[0].path, cv2.IMREAD_UNCHANGED)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    references = sorted(os.listdir(os.path.join(folder, "references")))
    assert references == sorted(f"{g}.png" for g in ds.groups)
    assert not any("/references/" in r.path for r in ds)  # pristine references are not records
    assert not [p for p in os.listdir(root) if ".tmp-" in p]  # no temporary build left


def test_quality_decreases_with_level(built):
    root, ds = built
    rows = _labels(_build_dir(root))
    for name in distortions.DISTORTIONS:
        means = [
            np.mean([r.quality for r, row in zip(ds, rows) if row["distortion"] == name and int(row["level"]) == level])
            for level in distortions.LEVELS
        ]
        assert all(a > b for a, b in zip(means, means[1:])), (name, means)
    # Mild level 1 scores well, severe level 5 badly, over all types.
    level1 = [float(row["mos"]) for row in rows if row["level"] == "1"]
    level5 = [float(row["mos"]) for row in rows if row["level"] == "5"]
    assert np.mean(level1) > 4.0 and np.mean(level5) < 2.8


def test_second_read_reuses_the_build(built):
    root, ds = built
    folder = _build_dir(root)
    stamps = {p: os.stat(p).st_mtime_ns for p in [os.path.join(folder, "labels.csv"), ds[0].path, ds[-1].path]}
    again = datasets.load("demo", str(root), max_references=3)
    assert again.records == ds.records
    assert {p: os.stat(p).st_mtime_ns for p in stamps} == stamps
    assert _build_dir(root) == folder


def test_deterministic_across_folders(tmp_path):
    first = demo.read(str(tmp_path / "a"), image_size=128, max_references=2, seed=5)
    second = demo.read(str(tmp_path / "b"), image_size=128, max_references=2, seed=5)
    a, b = _build_dir(tmp_path / "a"), _build_dir(tmp_path / "b")
    assert os.path.basename(a) == os.path.basename(b)
    assert open(os.path.join(a, "labels.csv"), "rb").read() == open(os.path.join(b, "labels.csv"), "rb").read()
    assert [r.mos for r in first] == [r.mos for r in second]
    for x, y in zip(first, second):
        assert open(x.path, "rb").read() == open(y.path, "rb").read()
    assert cv2.imread(first[0].path).shape == (128, 128, 3)


def test_options_select_versioned_folders():
    names = {demo.version_name(256, 20, 0, "abc"), demo.version_name(128, 20, 0, "abc"),
             demo.version_name(256, 10, 0, "abc"), demo.version_name(256, 20, 1, "abc")}
    assert len(names) == 4
    assert demo.version_name(256, 20, 0, "abc").startswith("v1-s256-")


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("LMIQA_HOME", str(tmp_path))
    assert demo.default_root() == os.path.join(str(tmp_path), "demo")
    monkeypatch.delenv("LMIQA_HOME")
    assert demo.default_root() == os.path.join(os.path.expanduser("~"), ".cache", "keras_lmiqa", "demo")


def test_msssim_filter_size():
    assert demo.filter_size(256) == 11 and demo.filter_size(176) == 11
    assert demo.filter_size(128) == 7 and demo.filter_size(64) == 3


def test_existing_target_is_kept(tmp_path):
    demo.read(str(tmp_path), image_size=64, max_references=1)
    folder = _build_dir(tmp_path)
    stamp = os.stat(os.path.join(folder, "labels.csv")).st_mtime_ns
    # A second builder that finishes after the first one: it must not fail or clobber.
    assert demo.build(folder, image_size=64, max_references=1) == folder
    assert os.stat(os.path.join(folder, "labels.csv")).st_mtime_ns == stamp
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_incomplete_folder_is_reported(tmp_path):
    demo.read(str(tmp_path), image_size=64, max_references=1)
    folder = _build_dir(tmp_path)
    os.remove(os.path.join(folder, "labels.csv"))
    with pytest.raises(DatasetError, match="complete build"):
        demo.read(str(tmp_path), image_size=64, max_references=1)


@pytest.mark.parametrize(
    "options, message",
    [({"colour": 1}, "unknown option"), ({"image_size": 16}, "image_size"), ({"image_size": "big"}, "integer"),
     ({"max_references": 0}, "max_references"), ({"seed": -1}, "seed")],
)
def test_bad_options(options, message, tmp_path):
    with pytest.raises(DatasetError, match=message):
        demo.read(str(tmp_path), **options)
    assert not os.listdir(tmp_path) if os.path.isdir(tmp_path) else True
