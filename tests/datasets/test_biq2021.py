"""The BIQ2021 reader on a miniature copy of its layout, with both quirks of the release:
trailing empty columns in the train CSV and a name whose case differs from the file."""

from __future__ import annotations

import argparse
import csv
import os
import shutil

import cv2
import numpy as np
import pytest

from keras_lmiqa import datasets
from keras_lmiqa.cli import datasets_cmd
from keras_lmiqa.datasets.records import ScoreScale
from keras_lmiqa.datasets.splits import split_dataset
from keras_lmiqa.errors import DatasetError

TRAIN_CSV = "Train (Images and MOS).csv"
TEST_CSV = "Test (Images and MOS).csv"
# (name in the CSV, MOS); the release's MOS spans exactly 0..1.
TRAIN = (("ss01 (1).jpg", 0.2874), ("ss01 (2).jpg", 0.0), ("ss01 (3).jpg", 0.5), ("ss02 (1014).jpg", 0.4357),
         ("ss02 (7).jpg", 0.61), ("ss03 (1).jpg", 1.0), ("ss03 (2).jpg", 0.8471), ("ss03 (3).jpg", 0.73),
         ("ss03 (4).jpg", 0.12))
TEST = (("ss03 (7805).jpg", 0.7321), ("ss03 (954).jpg", 0.6337), ("ss01 (9).jpg", 0.05))
ON_DISK_UPPER = "ss02 (1014).JPG"  # listed as ss02 (1014).jpg in the train CSV


def write_image(path, seed: int) -> str:
    """A tiny random JPEG (as conftest.write_image)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels), path
    return str(path)


def write_rows(path, header, rows, trailing=0):
    """A CSV like the release's: LF line ends, `trailing` empty columns on every line."""
    pad = [""] * trailing
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerows([[*header, *pad], *([*row, *pad] for row in rows)])


@pytest.fixture
def biq_root(tmp_path):
    root = tmp_path / "biq2021"
    for i, (name, _) in enumerate(TRAIN + TEST):
        write_image(root / "Images" / name, i)
    os.rename(root / "Images" / "ss02 (1014).jpg", root / "Images" / ON_DISK_UPPER)
    write_rows(root / TRAIN_CSV, ["Image Name", "MOS"], [[n, f"{m:.4f}"] for n, m in TRAIN], trailing=2)
    write_rows(root / TEST_CSV, ["Image Name", "MOS"], [[n, f"{m:.4f}"] for n, m in TEST])
    return str(root)


def edit_csv(path, line, column, value):
    """Set field `column` of 1-based `line` of the CSV at `path`."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    rows[line - 1][column] = value
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def test_records_and_mos(biq_root):
    data = datasets.load("biq2021", biq_root)
    assert data.name == "biq2021" and len(data) == 12 and not data.synthetic
    assert data.scale == ScoreScale(low=0.0, high=1.0, higher_better=True, kind="MOS")
    listed = [os.path.basename(r.path).lower() for r in data]
    assert listed == [n.lower() for n, _ in TRAIN + TEST]  # train rows, then test rows, in file order
    for record, (_, mos) in zip(data, TRAIN + TEST):
        assert record.mos == pytest.approx(mos) and record.quality == pytest.approx(mos)
        assert os.path.isabs(record.path) and os.path.isfile(record.path)
        assert record.group == os.path.basename(record.path)
    assert len(data.groups) == 12


def test_official_split(biq_root):
    data = datasets.load("biq2021", biq_root)
    assert [r.official_split for r in data] == ["train"] * 9 + ["test"] * 3
    split = split_dataset(data, seed=0, test_fraction=0.2, val_fraction=0.25)
    assert split.official and split.sizes() == {"train": 7, "val": 2, "test": 3}
    assert split.test == (9, 10, 11)  # the test CSV, whatever test_fraction says
    assert set(split.train + split.val) == set(range(9))
    other = split_dataset(data, seed=1, test_fraction=0.2, val_fraction=0.25)
    assert other.test == split.test and other.val != split.val  # only the val carve follows the seed


def test_release_quirks_are_present_and_accepted(biq_root):
    with open(os.path.join(biq_root, TRAIN_CSV)) as handle:
        header, first = handle.readline(), handle.readline()
    assert header == "Image Name,MOS,,\n" and first.endswith(",,\n")
    assert not os.path.exists(os.path.join(biq_root, "Images", "ss02 (1014).jpg"))
    record = datasets.load("biq2021", biq_root)[3]
    assert record.path == os.path.join(os.path.realpath(biq_root), "Images", ON_DISK_UPPER)
    assert record.mos == pytest.approx(0.4357) and record.official_split == "train"


def test_exact_name_wins_over_a_case_insensitive_match(biq_root):
    exact = write_image(os.path.join(biq_root, "Images", "ss02 (1014).jpg"), 99)
    assert datasets.load("biq2021", biq_root)[3].path == os.path.realpath(exact)


def test_ambiguous_case_insensitive_match_names_both_files(biq_root):
    write_image(os.path.join(biq_root, "Images", "ss02 (1014).Jpg"), 99)
    with pytest.raises(DatasetError) as error:
        datasets.load("biq2021", biq_root)
    message = str(error.value)
    assert message.startswith("biq2021: ") and os.path.join(biq_root, TRAIN_CSV) + " line 5" in message
    assert "'ss02 (1014).JPG'" in message and "'ss02 (1014).Jpg'" in message


def test_missing_image_names_csv_line_and_image(biq_root):
    os.remove(os.path.join(biq_root, "Images", "ss03 (954).jpg"))
    with pytest.raises(DatasetError) as error:
        datasets.load("biq2021", biq_root)
    assert str(error.value) == (f"biq2021: {os.path.join(biq_root, TEST_CSV)} line 3: listed image not found: "
                                f"{os.path.join(os.path.realpath(biq_root), 'Images', 'ss03 (954).jpg')}")


@pytest.mark.parametrize("value, reason", [("n/a", "not a finite number"), ("", "not a finite number"),
                                           ("nan", "not a finite number"), ("3.5", "outside [0, 1]")])
def test_bad_mos_names_csv_and_line(biq_root, value, reason):
    edit_csv(os.path.join(biq_root, TRAIN_CSV), 4, 1, value)
    with pytest.raises(DatasetError) as error:
        datasets.load("biq2021", biq_root)
    message = str(error.value)
    assert message.startswith(f"biq2021: {os.path.join(biq_root, TRAIN_CSV)} line 4: ")
    assert reason in message and "ss01 (3).jpg" in message


@pytest.mark.parametrize("label", [TRAIN_CSV, TEST_CSV])
def test_missing_csv_names_it(biq_root, label):
    os.remove(os.path.join(biq_root, label))
    with pytest.raises(DatasetError) as error:
        datasets.load("biq2021", biq_root)
    message = str(error.value)
    assert message.startswith("biq2021: missing file " + os.path.join(biq_root, label))
    assert datasets.layout("biq2021") in message


def test_missing_images_folder(biq_root):
    shutil.rmtree(os.path.join(biq_root, "Images"))
    with pytest.raises(DatasetError, match="biq2021: missing folder .*Images; expected layout"):
        datasets.load("biq2021", biq_root)


def test_name_in_both_csvs_is_refused(biq_root):
    edit_csv(os.path.join(biq_root, TEST_CSV), 2, 0, "ss03 (2).jpg")
    with pytest.raises(DatasetError) as error:
        datasets.load("biq2021", biq_root)
    assert str(error.value) == (f"biq2021: {os.path.join(biq_root, TEST_CSV)} line 2: 'ss03 (2).jpg' is also "
                                f"listed in {os.path.join(biq_root, TRAIN_CSV)} line 8")


@pytest.mark.parametrize("column, value, message", [
    (0, "", "line 6 has no image name"),
    (0, "../../x.jpg", "escapes the dataset root"),
])
def test_bad_names(biq_root, column, value, message):
    edit_csv(os.path.join(biq_root, TRAIN_CSV), 6, column, value)
    with pytest.raises(DatasetError, match=message):
        datasets.load("biq2021", biq_root)


def test_wrong_header_and_unknown_option(biq_root):
    with pytest.raises(DatasetError, match="unknown option 'resolution'"):
        datasets.load("biq2021", biq_root, resolution="512x384")
    edit_csv(os.path.join(biq_root, TEST_CSV), 1, 1, "Score")
    with pytest.raises(DatasetError, match=r"Test \(Images and MOS\)\.csv has no column 'MOS'"):
        datasets.load("biq2021", biq_root)


def parse(argv):
    parser = argparse.ArgumentParser(prog="lmiqa")
    datasets_cmd.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_list_and_check(biq_root, capsys):
    args = parse(["datasets", "list"])
    assert args.func(args) == 0
    assert any(line.startswith("biq2021 ") and datasets.layout("biq2021") in line
               for line in capsys.readouterr().out.splitlines())
    args = parse(["datasets", "check", "biq2021", "--data-root", biq_root])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "images:   12" in out and "groups:   12 (split by image)" in out and "MOS 0 .. 1 (higher = better)" in out
    assert "official split: train 9, val 0, test 3" in out and out.rstrip().endswith("status:   OK")
