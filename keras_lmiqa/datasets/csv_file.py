"""A user's own labelled images, listed in a CSV file (registry name `csv`).

`root` is the CSV file. Options: `path_column` ("path"), `score_column` ("mos"),
`group_column` (None: each image is its own group), `higher_better` (True),
`image_root` (None: the CSV's folder; image paths are relative to it and may not leave
it). A `split` column, when present, gives an official split (train / val / test on
every row).
"""

from __future__ import annotations

import os

from keras_lmiqa.datasets.records import (
    make_dataset,
    parse_score,
    parse_split,
    read_csv_table,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "csv"
LAYOUT = ("a CSV file with a header row: an image path column (default 'path', relative to the CSV's folder), "
          "a score column (default 'mos'), optional 'split'")
DEFAULTS = {"path_column": "path", "score_column": "mos", "group_column": None, "higher_better": True,
            "image_root": None}


def read(root: str, **options):
    opts = take_options(NAME, options, DEFAULTS)
    if not isinstance(opts["higher_better"], bool):
        raise DatasetError(f"{NAME}: higher_better must be True or False, got {opts['higher_better']!r}")
    csv_path = require_file(os.path.dirname(os.path.abspath(root)), os.path.basename(root), NAME, LAYOUT)
    image_root = opts["image_root"] or os.path.dirname(os.path.abspath(csv_path))
    if not os.path.isdir(image_root):
        raise DatasetError(f"{NAME}: missing image folder {image_root}; expected layout: {LAYOUT}")
    required = [opts["path_column"], opts["score_column"]] + ([opts["group_column"]] if opts["group_column"] else [])
    rows = read_csv_table(csv_path, NAME, required)
    has_split = bool(rows) and "split" in rows[0][1]
    entries = []
    for line, row in rows:
        name = row[opts["path_column"]]
        if not name:
            raise DatasetError(f"{NAME}: {csv_path} line {line}: empty {opts['path_column']!r}")
        score = parse_score(row[opts["score_column"]], NAME, csv_path, line, name)
        group = row[opts["group_column"]] if opts["group_column"] else name
        split = parse_split(row["split"], NAME, csv_path, line) if has_split else None
        entries.append((resolve_inside(image_root, name, NAME), score, group, split))
    require_images_exist(NAME, [e[0] for e in entries])
    kind = "MOS" if opts["higher_better"] else "DMOS"
    return make_dataset(
        NAME, image_root, entries, higher_better=opts["higher_better"], synthetic=bool(opts["group_column"]), kind=kind
    )
