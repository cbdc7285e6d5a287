"""LIVE IQA database release 2 (Sheikh et al., 2006): 779 distorted images, 29 references.

The .mat files hold 982 entries (distorted images and, flagged by `orgs == 1`, copies of
the references) in the order used by every public loader (e.g. hyperIQA's LIVEFolder):
jp2k img1..img227, jpeg img1..img233, wn img1..img174, gblur img1..img174, fastfading
img1..img174. Reference entries are dropped. Scores are DMOS (lower = better); the
realigned DMOS (`dmos_realigned.mat`, variable `dmos_new`) is used when present unless
`realigned=False`. Split unit: the reference name from `refnames_all.mat`.
"""

from __future__ import annotations

import os

import numpy as np

from keras_lmiqa.datasets.records import (
    load_mat,
    make_dataset,
    mat_strings,
    require_dir,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "live"
LAYOUT = (
    "ROOT/{jp2k,jpeg,wn,gblur,fastfading,refimgs}/ + ROOT/dmos_realigned.mat (dmos_new, orgs) or "
    "ROOT/dmos.mat (dmos, orgs) + ROOT/refnames_all.mat (refnames_all)"
)
ORDER = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
TOTAL = sum(n for _, n in ORDER)  # 982


def _scores(root: str, realigned):
    """(dmos, orgs, path of the .mat) honouring the `realigned` option."""
    has_realigned = os.path.isfile(os.path.join(root, "dmos_realigned.mat"))
    if realigned is None:
        realigned = has_realigned
    if realigned:
        path = require_file(root, "dmos_realigned.mat", NAME, LAYOUT)
        data = load_mat(path, NAME, ("dmos_new", "orgs"))
        return data["dmos_new"], data["orgs"], path
    path = require_file(root, "dmos.mat", NAME, LAYOUT)
    data = load_mat(path, NAME, ("dmos", "orgs"))
    return data["dmos"], data["orgs"], path


def read(root: str, **options):
    realigned = take_options(NAME, options, {"realigned": None})["realigned"]
    for folder, _ in ORDER:
        require_dir(root, folder, NAME, LAYOUT)
    require_dir(root, "refimgs", NAME, LAYOUT)
    dmos, orgs, score_file = _scores(root, realigned)
    names_file = require_file(root, "refnames_all.mat", NAME, LAYOUT)
    refnames = mat_strings(load_mat(names_file, NAME, ("refnames_all",))["refnames_all"])
    dmos = np.asarray(dmos, dtype=np.float64).ravel()
    orgs = np.asarray(orgs).ravel()
    for label, values, path in (("DMOS", dmos, score_file), ("orgs", orgs, score_file),
                                ("refnames_all", refnames, names_file)):
        if len(values) != TOTAL:
            raise DatasetError(f"{NAME}: {path}: {label} has {len(values)} entries, expected {TOTAL}")
    images = [os.path.join(folder, f"img{i}.bmp") for folder, count in ORDER for i in range(1, count + 1)]
    entries = []
    for index, relative in enumerate(images):
        if orgs[index] == 1:
            continue  # a reference image, not a distorted one
        if not np.isfinite(dmos[index]):
            raise DatasetError(f"{NAME}: {score_file} entry {index + 1}: DMOS of {relative} is not a finite number")
        entries.append((resolve_inside(root, relative, NAME), float(dmos[index]), refnames[index], None))
    require_images_exist(NAME, [e[0] for e in entries])
    return make_dataset(NAME, root, entries, higher_better=False, synthetic=True, kind="DMOS")
