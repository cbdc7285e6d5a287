"""LIVE In the Wild Image Quality Challenge (Ghadiyaram & Bovik, 2016): 1,162 authentic
images, MOS in [0, 100] (higher = better).

`Data/AllImages_release.mat` (`AllImages_release`, a cell array of file names) and
`Data/AllMOS_release.mat` (`AllMOS_release`) list 1,169 images; the first 7 are the
training images of the study (in `Images/trainingImages/`) and are dropped, as in the
original protocol. Split unit: the image file name.
"""

from __future__ import annotations

import os

import numpy as np

from keras_lmiqa.datasets.records import (
    load_mat,
    make_dataset,
    mat_strings,
    parse_score,
    require_dir,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "livec"
LAYOUT = ("ROOT/Images/ + ROOT/Data/AllImages_release.mat (AllImages_release) "
          "+ ROOT/Data/AllMOS_release.mat (AllMOS_release)")
TRAINING_IMAGES = 7


def read(root: str, **options):
    take_options(NAME, options, {})
    images = require_dir(root, "Images", NAME, LAYOUT)
    names_file = require_file(root, os.path.join("Data", "AllImages_release.mat"), NAME, LAYOUT)
    mos_file = require_file(root, os.path.join("Data", "AllMOS_release.mat"), NAME, LAYOUT)
    names = mat_strings(load_mat(names_file, NAME, ("AllImages_release",))["AllImages_release"])
    scores = np.asarray(load_mat(mos_file, NAME, ("AllMOS_release",))["AllMOS_release"], dtype=np.float64).ravel()
    if len(names) != len(scores):
        raise DatasetError(f"{NAME}: {names_file} lists {len(names)} images but {mos_file} has {len(scores)} scores")
    if len(names) <= TRAINING_IMAGES:
        raise DatasetError(f"{NAME}: {names_file} lists only {len(names)} images "
                           f"(the first {TRAINING_IMAGES} are training images)")
    entries = []
    for index in range(TRAINING_IMAGES, len(names)):
        name = names[index]
        score = parse_score(scores[index], NAME, mos_file, index + 1, name, "entry")
        entries.append((resolve_inside(images, name, NAME), score, name, None))
    require_images_exist(NAME, [e[0] for e in entries])
    return make_dataset(NAME, root, entries, higher_better=True, synthetic=False, kind="MOS")
