"""BIQ2021 (Ahmed et al., J. Electronic Imaging 31(5) 053010, 2022): 12,000 JPEG photos
with authentic distortions, MOS rescaled to [0, 1] (higher = better). Split unit: the image.

Labels: `Train (Images and MOS).csv` (10,000 rows) and `Test (Images and MOS).csv`
(2,000 rows), columns `Image Name, MOS`; their rows are the official train and test
parts (no official val part: it is carved from train by `splits.split_dataset`). Images:
`Images/`.

Quirks of the files as distributed: the train CSV's header and rows end in two empty
columns (`Image Name,MOS,,`), which are ignored; and one train row names
`ss02 (1014).jpg` while the file on disk is `ss02 (1014).JPG`. So a name missing from
`Images/` is looked up case-insensitively; two files on disk matching it that way is an
error naming both.
"""

from __future__ import annotations

import os

from keras_lmiqa.datasets.records import (
    make_dataset,
    parse_score,
    read_csv_table,
    require_dir,
    require_file,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "biq2021"
TRAIN_CSV = "Train (Images and MOS).csv"
TEST_CSV = "Test (Images and MOS).csv"
LAYOUT = f"ROOT/Images/*.jpg + ROOT/{TRAIN_CSV} and ROOT/{TEST_CSV} (Image Name, MOS)"
COLUMNS = ("Image Name", "MOS")


class _Folder:
    """The file names in `Images/`: exact lookup first, case-insensitive as a fallback."""

    def __init__(self, path: str):
        self.path = path
        self.names = set(os.listdir(path))
        self.folded: dict[str, list[str]] = {}
        for name in sorted(self.names):
            self.folded.setdefault(name.lower(), []).append(name)

    def find(self, name: str, source: str, line: int) -> str:
        """The path of image `name` (listed on `line` of `source`), or a DatasetError."""
        if name in self.names:
            return resolve_inside(self.path, name, NAME)
        matches = self.folded.get(name.lower(), [])
        if len(matches) > 1:
            raise DatasetError(f"{NAME}: {source} line {line}: {name!r} matches both {matches[0]!r} and "
                               f"{matches[1]!r} in {self.path} when case is ignored")
        if not matches:
            path = resolve_inside(self.path, name, NAME)  # refuses `..` before reporting it missing
            raise DatasetError(f"{NAME}: {source} line {line}: listed image not found: {path}")
        return resolve_inside(self.path, matches[0], NAME)


def _mos(value: str, source: str, line: int, name: str) -> float:
    score = parse_score(value, NAME, source, line, name)
    if not 0.0 <= score <= 1.0:  # the release rescales MOS to [0, 1]; anything else is another scale
        raise DatasetError(f"{NAME}: {source} line {line}: MOS {value!r} of {name} is outside [0, 1]")
    return score


def _rows(folder: _Folder, source: str, split: str, listed: dict) -> list[tuple]:
    """`(path, mos, group, split)` per row of `source`; `listed` maps path -> (file, line) seen so far."""
    entries = []
    for line, row in read_csv_table(source, NAME, COLUMNS):
        name = row["Image Name"]
        if not name:
            raise DatasetError(f"{NAME}: {source} line {line} has no image name")
        path = folder.find(name, source, line)
        if path in listed:
            first, first_line = listed[path]
            raise DatasetError(f"{NAME}: {source} line {line}: {name!r} is also listed in {first} line {first_line}")
        listed[path] = (source, line)
        entries.append((path, _mos(row["MOS"], source, line, name), os.path.basename(path), split))
    return entries


def read(root: str, **options):
    take_options(NAME, options, {})
    folder = _Folder(require_dir(root, "Images", NAME, LAYOUT))
    train = require_file(root, TRAIN_CSV, NAME, LAYOUT)
    test = require_file(root, TEST_CSV, NAME, LAYOUT)
    listed: dict[str, tuple[str, int]] = {}
    entries = _rows(folder, train, "train", listed) + _rows(folder, test, "test", listed)
    return make_dataset(NAME, root, entries, higher_better=True, synthetic=False, kind="MOS")
