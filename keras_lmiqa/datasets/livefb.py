"""LIVE-FB / FLIVE (Ying et al., PaQ-2-PiQ, CVPR 2020): ~39,800 authentic images, MOS
higher = better. Split unit: the image.

`labels_image.csv` has one row per image (`name`, `mos`, ...), `name` being the image
path relative to ROOT (e.g. `voc_emotic_ava/xxx.jpg`).

Official split, as defined by the PaQ-2-PiQ code (baidut/paq2piq, `paq2piq/dataset.py`,
and IQA-PyTorch's FLIVE preparation script): the test set is the images listed (column
`name_image`) in `labels640.csv` (`labels>640.csv` in the original release: images larger
than 640 px); the validation set is the rows of `labels=640_padded.csv`
(`labels<=640_padded.csv`) whose `is_valid` is True; every other image is training. It
is applied when `labels640.csv` is present, and the padded file is then required too.
"""

from __future__ import annotations

import os

from keras_lmiqa.datasets.records import (
    make_dataset,
    parse_score,
    read_csv_table,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "livefb"
LAYOUT = (
    "ROOT/labels_image.csv (name, mos, ...) + the image folders its names point into "
    "[+ ROOT/labels640.csv and ROOT/labels=640_padded.csv (name_image, is_valid) for the official split]"
)
TEST_FILES = ("labels640.csv", "labels>640.csv")
TRAIN_FILES = ("labels=640_padded.csv", "labels<=640_padded.csv")


def _key(name: str) -> str:
    return name.strip().replace("\\", "/")


def _flag(value: str, path: str, line: int) -> bool:
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise DatasetError(f"{NAME}: {path} line {line}: is_valid must be True or False, got {value!r}")


def _official_split(root: str) -> dict | None:
    test_file = next((f for f in TEST_FILES if os.path.isfile(os.path.join(root, f))), None)
    if test_file is None:
        return None
    train_name = next((f for f in TRAIN_FILES if os.path.isfile(os.path.join(root, f))), TRAIN_FILES[0])
    train_file = require_file(root, train_name, NAME, LAYOUT)
    split = {}
    for line, row in read_csv_table(train_file, NAME, ("name_image", "is_valid")):
        split[_key(row["name_image"])] = "val" if _flag(row["is_valid"], train_file, line) else "train"
    for _, row in read_csv_table(os.path.join(root, test_file), NAME, ("name_image",)):
        split[_key(row["name_image"])] = "test"
    return split


def read(root: str, **options):
    take_options(NAME, options, {})
    labels = require_file(root, "labels_image.csv", NAME, LAYOUT)
    split = _official_split(root)
    entries = []
    for line, row in read_csv_table(labels, NAME, ("name", "mos")):
        name = _key(row["name"])
        official = None if split is None else split.get(name, "train")
        score = parse_score(row["mos"], NAME, labels, line, name)
        entries.append((resolve_inside(root, name, NAME), score, name, official))
    require_images_exist(NAME, [e[0] for e in entries])
    return make_dataset(NAME, root, entries, higher_better=True, synthetic=False, kind="MOS")
