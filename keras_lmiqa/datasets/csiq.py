"""CSIQ (Larson & Chandler, 2010): 866 distorted images of 30 references, DMOS in [0, 1]
(lower = better). Split unit: the reference (file name prefix before the first dot).

Two layouts are accepted (the official one wins when both are present):

* official: `src_imgs/`, `dst_imgs/<type>/<ref>.<TYPE>.<level>.png` and `csiq.DMOS.xlsx`,
  sheet `all_by_image` with columns `image`, `dst_type`, `dst_lev`, `dmos`. The sheet
  names distortions `noise`, `jpeg`, `jpeg 2000`, `fnoise`, `blur`, `contrast`; their
  files are labelled AWGN, JPEG, jpeg2000, fnoise, BLUR, contrast (folder names in lower
  case). Folders and files are looked up case-insensitively.
* flattened (hyperIQA and derived code): `dst_imgs_all/` + `csiq_label.txt` with one
  `name dmos` per line, e.g. `1600.AWGN.1.png 0.062` (`.png` is added when omitted).
"""

from __future__ import annotations

import os

from keras_lmiqa.datasets.records import (
    case_insensitive_index,
    make_dataset,
    parse_score,
    read_pairs,
    read_xlsx_table,
    require_dir,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "csiq"
LAYOUT = (
    "ROOT/src_imgs/ + ROOT/dst_imgs/<type>/<ref>.<TYPE>.<level>.png + ROOT/csiq.DMOS.xlsx (sheet all_by_image), "
    "or ROOT/dst_imgs_all/ + ROOT/csiq_label.txt ('name dmos' per line)"
)
# Distortion name in the spreadsheet (lower case, spaces removed) -> file label.
TYPES = {"noise": "AWGN", "awgn": "AWGN", "jpeg": "JPEG", "jpeg2000": "jpeg2000", "fnoise": "fnoise",
         "blur": "BLUR", "contrast": "contrast"}


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() if value is not None else ""


def _official(root: str, sheet_path: str) -> list:
    require_dir(root, "src_imgs", NAME, LAYOUT)
    dst = require_dir(root, "dst_imgs", NAME, LAYOUT)
    folders = case_insensitive_index(dst)
    listings: dict[str, dict] = {}
    entries = []
    for line, row in read_xlsx_table(sheet_path, NAME, ("image", "dst_type", "dst_lev", "dmos"), "all_by_image"):
        ref, kind, level = _text(row["image"]), _text(row["dst_type"]), _text(row["dst_lev"])
        label = TYPES.get(kind.lower().replace(" ", ""))
        if label is None:
            raise DatasetError(f"{NAME}: {sheet_path} row {line}: unknown distortion type {kind!r} "
                               f"(expected one of {', '.join(sorted(TYPES))})")
        folder = folders.get(label.lower(), label.lower())
        name = f"{ref}.{label}.{level}.png"
        relative = os.path.join(folder, name)
        resolve_inside(dst, relative, NAME)
        if folder not in listings:
            where = os.path.join(dst, folder)
            listings[folder] = case_insensitive_index(where) if os.path.isdir(where) else {}
        files = listings[folder]
        path = resolve_inside(dst, os.path.join(folder, files.get(name.lower(), name)), NAME)
        entries.append((path, parse_score(row["dmos"], NAME, sheet_path, line, name, "row"), ref, None))
    return entries


def _flattened(root: str, labels: str) -> list:
    folder = require_dir(root, "dst_imgs_all", NAME, LAYOUT)
    on_disk = case_insensitive_index(folder)
    entries = []
    for line, name, score in read_pairs(labels, NAME, "'name dmos'"):
        if not name.lower().endswith(".png"):
            name += ".png"
        resolve_inside(folder, name, NAME)
        path = resolve_inside(folder, on_disk.get(name.lower(), name), NAME)
        group = os.path.basename(name).split(".")[0]
        entries.append((path, parse_score(score, NAME, labels, line, name), group, None))
    return entries


def read(root: str, **options):
    take_options(NAME, options, {})
    sheet = os.path.join(root, "csiq.DMOS.xlsx")
    flat = os.path.join(root, "csiq_label.txt")
    if os.path.isfile(sheet) or not os.path.isfile(flat):
        entries = _official(root, require_file(root, "csiq.DMOS.xlsx", NAME, LAYOUT))
    else:
        entries = _flattened(root, flat)
    require_images_exist(NAME, [e[0] for e in entries])
    return make_dataset(NAME, root, entries, higher_better=False, synthetic=True, kind="DMOS")
