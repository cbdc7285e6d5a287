"""KonIQ-10k (Hosu et al., 2020): 10,073 authentic images, MOS in [1, 5] (higher = better).

Scores come from `koniq10k_scores_and_distributions.csv` (`score="MOS"`, default, or
`score="MOS_zscore"`); images from `512x384/` (default) or `1024x768/` (`resolution`).
When `koniq10k_distributions_sets.csv` is present, its `set` column (training /
validation / test) gives the official split. Split unit: the image.
"""

from __future__ import annotations

import os

from keras_lmiqa.datasets.records import (
    make_dataset,
    parse_score,
    parse_split,
    read_csv_table,
    require_dir,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "koniq10k"
LAYOUT = (
    "ROOT/koniq10k_scores_and_distributions.csv (image_name, MOS, MOS_zscore, ...) + ROOT/512x384/ or "
    "ROOT/1024x768/ [+ ROOT/koniq10k_distributions_sets.csv (image_name, set) for the official split]"
)
RESOLUTIONS = ("512x384", "1024x768")
SCORES = ("MOS", "MOS_zscore")


def _official_split(root: str) -> dict | None:
    path = os.path.join(root, "koniq10k_distributions_sets.csv")
    if not os.path.isfile(path):
        return None
    rows = read_csv_table(path, NAME, ("image_name", "set"))
    return {row["image_name"]: parse_split(row["set"], NAME, path, line) for line, row in rows}


def read(root: str, **options):
    opts = take_options(NAME, options, {"resolution": "512x384", "score": "MOS"})
    if opts["resolution"] not in RESOLUTIONS:
        raise DatasetError(f"{NAME}: resolution must be one of {', '.join(RESOLUTIONS)}, got {opts['resolution']!r}")
    if opts["score"] not in SCORES:
        raise DatasetError(f"{NAME}: score must be one of {', '.join(SCORES)}, got {opts['score']!r}")
    images = require_dir(root, opts["resolution"], NAME, LAYOUT)
    labels = require_file(root, "koniq10k_scores_and_distributions.csv", NAME, LAYOUT)
    splits = _official_split(root)
    entries = []
    for line, row in read_csv_table(labels, NAME, ("image_name", opts["score"])):
        name = row["image_name"]
        split = None
        if splits is not None:
            if name not in splits:
                raise DatasetError(f"{NAME}: {name} (line {line} of {labels}) is missing from "
                                   "koniq10k_distributions_sets.csv")
            split = splits[name]
        score = parse_score(row[opts["score"]], NAME, labels, line, name)
        entries.append((resolve_inside(images, name, NAME), score, name, split))
    require_images_exist(NAME, [e[0] for e in entries])
    return make_dataset(NAME, root, entries, higher_better=True, synthetic=False, kind=opts["score"])
