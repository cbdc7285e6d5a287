"""Benchmark IQA datasets, read from their official layouts.

`load(name, root)` returns a :class:`Dataset`: a sequence of :class:`Record` with the
fields `path`, `mos`, `quality` (in [0, 1], higher = better), `group` and
`official_split`. Each reader lives in its own module with a `read(root, **options)`
function and a `LAYOUT` string describing the files it expects.
"""

from __future__ import annotations

import difflib
import importlib

from keras_lmiqa.datasets.records import Dataset, Record, ScoreScale
from keras_lmiqa.errors import DatasetError

# name -> module implementing `read(root, **options)` and `LAYOUT`.
READERS = {
    "kadid10k": "keras_lmiqa.datasets.kadid10k",
    "tid2013": "keras_lmiqa.datasets.tid2013",
    "live": "keras_lmiqa.datasets.live",
    "csiq": "keras_lmiqa.datasets.csiq",
    "livec": "keras_lmiqa.datasets.livec",
    "koniq10k": "keras_lmiqa.datasets.koniq10k",
    "spaq": "keras_lmiqa.datasets.spaq",
    "livefb": "keras_lmiqa.datasets.livefb",
    "biq2021": "keras_lmiqa.datasets.biq2021",
    "csv": "keras_lmiqa.datasets.csv_file",
    "demo": "keras_lmiqa.datasets.demo",
}

NAMES = tuple(READERS)


def _reader(name: str):
    if name not in READERS:
        close = difflib.get_close_matches(name, NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(NAMES)}.{hint}")
    return importlib.import_module(READERS[name])


def load(name: str, root: str | None = None, **options) -> Dataset:
    """Read dataset `name` from `root` (its folder as downloaded).

    Args:
        name: one of `NAMES`.
        root: the dataset folder. Optional only for `demo`, which builds itself into a
            cache folder.
        **options: reader options (e.g. `resolution="1024x768"` for `koniq10k`,
            `path_column`/`score_column`/`higher_better` for `csv`).

    Raises:
        DatasetError: unknown name, missing files, malformed labels.
    """
    reader = _reader(name)
    if root is None and name != "demo":
        raise DatasetError(f"{name}: --data-root is required (expected layout: {reader.LAYOUT})")
    return reader.read(root, **options)


def layout(name: str) -> str:
    """The official file layout that dataset `name` is read from."""
    return _reader(name).LAYOUT


__all__ = ["Dataset", "Record", "ScoreScale", "load", "layout", "NAMES", "READERS"]
