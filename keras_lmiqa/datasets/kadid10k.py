"""KADID-10k (Lin et al., 2019): 10,125 synthetic distortions of 81 references.

The `dmos` column of `dmos.csv` is, despite its name, a mean opinion score in [1, 5]
(higher = better). Split unit: the reference image (`ref_img`).
"""

from __future__ import annotations

from keras_lmiqa.datasets.records import (
    make_dataset,
    parse_score,
    read_csv_table,
    require_dir,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)

NAME = "kadid10k"
LAYOUT = "ROOT/images/ (references and distorted images) + ROOT/dmos.csv (header dist_img,ref_img,dmos,var)"


def read(root: str, **options):
    take_options(NAME, options, {})
    images = require_dir(root, "images", NAME, LAYOUT)
    labels = require_file(root, "dmos.csv", NAME, LAYOUT)
    entries = []
    for line, row in read_csv_table(labels, NAME, ("dist_img", "ref_img", "dmos")):
        path = resolve_inside(images, row["dist_img"], NAME)
        resolve_inside(images, row["ref_img"], NAME)
        score = parse_score(row["dmos"], NAME, labels, line, row["dist_img"])
        entries.append((path, score, row["ref_img"], None))
    require_images_exist(NAME, [e[0] for e in entries])
    return make_dataset(NAME, root, entries, higher_better=True, synthetic=True, kind="MOS")
