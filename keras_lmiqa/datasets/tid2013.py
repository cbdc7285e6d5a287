"""TID2013 (Ponomarenko et al., 2015): 3,000 distortions of 25 references.

`mos_with_names.txt` holds `MOS name` per line (MOS in [0, 9], higher = better). File
names differ in case between the label file and the archive (`I01_01_1.bmp` vs
`i01_01_1.bmp`), so images are looked up case-insensitively. Split unit: the reference,
taken from the name prefix (`i01` ... `i25`, lower-cased).
"""

from __future__ import annotations

import re

from keras_lmiqa.datasets.records import (
    case_insensitive_index,
    make_dataset,
    parse_score,
    read_pairs,
    require_dir,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "tid2013"
LAYOUT = "ROOT/mos_with_names.txt ('MOS name' per line) + ROOT/distorted_images/ + ROOT/reference_images/"
_PREFIX = re.compile(r"^(i\d+)_", re.IGNORECASE)


def read(root: str, **options):
    take_options(NAME, options, {})
    distorted = require_dir(root, "distorted_images", NAME, LAYOUT)
    require_dir(root, "reference_images", NAME, LAYOUT)
    labels = require_file(root, "mos_with_names.txt", NAME, LAYOUT)
    on_disk = case_insensitive_index(distorted)
    entries = []
    for line, mos, name in read_pairs(labels, NAME, "'MOS name'"):
        resolve_inside(distorted, name, NAME)
        prefix = _PREFIX.match(name)
        if prefix is None:
            raise DatasetError(f"{NAME}: {labels} line {line}: {name!r} does not start with a reference id like i01_")
        path = resolve_inside(distorted, on_disk.get(name.lower(), name), NAME)
        entries.append((path, parse_score(mos, NAME, labels, line, name), prefix.group(1).lower(), None))
    require_images_exist(NAME, [e[0] for e in entries])
    return make_dataset(NAME, root, entries, higher_better=True, synthetic=True, kind="MOS")
