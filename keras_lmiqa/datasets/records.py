"""The record and dataset types every reader returns, and path helpers shared by readers."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Iterator, Sequence

from keras_lmiqa.errors import DatasetError
from keras_lmiqa.inference_spec import MAX_ABS_SCORE, ScoreScale  # noqa: F401  part of a dataset's API

SPLIT_NAMES = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Record:
    """One labelled image.

    Attributes:
        path: absolute path of the image file.
        mos: subjective score on the dataset's own scale and direction (MOS or DMOS as
            distributed).
        quality: `mos` normalised to [0, 1], higher = better.
        group: split unit: the reference image for synthetic datasets, the image itself
            for authentic ones. No group ever spans two split parts.
        official_split: "train", "val" or "test" where the dataset ships an official
            split, else None.
    """

    path: str
    mos: float
    quality: float
    group: str
    official_split: str | None = None


@dataclasses.dataclass(frozen=True)
class Dataset(Sequence):
    """The records of one dataset, with its score scale.

    Behaves as a read-only sequence of :class:`Record`.

    Attributes:
        name: registry name (`kadid10k`, `demo`, ...).
        root: the folder the dataset was read from.
        records: the records, in the order of the dataset's label file.
        scale: the score scale and direction of `Record.mos`.
        synthetic: True when images are distortions of shared references (split by
            reference), False for authentic datasets (split by image).
    """

    name: str
    root: str
    records: tuple[Record, ...]
    scale: ScoreScale
    synthetic: bool

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    @property
    def groups(self) -> list[str]:
        """Distinct groups, in first-seen order."""
        return list(dict.fromkeys(r.group for r in self.records))

    @property
    def has_official_split(self) -> bool:
        return any(r.official_split is not None for r in self.records)


def make_dataset(
    name: str,
    root: str,
    entries: Sequence[tuple[str, float, str, str | None]],
    higher_better: bool,
    synthetic: bool,
    kind: str | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from `(path, mos, group, official_split)` tuples.

    Validates scores (finite, within MAX_ABS_SCORE) and duplicate paths, and normalises `quality` by
    the observed score range so it always lies in [0, 1].
    """
    if not entries:
        raise DatasetError(f"{name}: no images listed under {root}")
    seen: set[str] = set()
    for path, mos, _, _ in entries:
        if not isinstance(mos, (int, float)) or not math.isfinite(mos):
            raise DatasetError(f"{name}: score of {path} is not a finite number: {mos!r}")
        if abs(mos) > MAX_ABS_SCORE:
            raise DatasetError(f"{name}: score of {path} is {mos!r}, outside [-{MAX_ABS_SCORE:g}, {MAX_ABS_SCORE:g}], "
                               "the scores a model can record")
        if path in seen:
            raise DatasetError(f"{name}: image listed twice: {path}")
        seen.add(path)
    scores = [float(e[1]) for e in entries]
    scale = ScoreScale(
        low=min(scores),
        high=max(scores),
        higher_better=higher_better,
        kind=kind or ("MOS" if higher_better else "DMOS"),
    )
    records = tuple(
        Record(path=p, mos=float(m), quality=scale.to_quality(float(m)), group=g, official_split=s)
        for p, m, g, s in entries
    )
    return Dataset(name=name, root=os.path.abspath(root), records=records, scale=scale, synthetic=synthetic)


def resolve_inside(root: str, relative: str, dataset: str) -> str:
    """Join `relative` to `root`, refusing paths that escape the root (`..`, absolute)."""
    root_abs = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(root_abs, relative))
    if os.path.commonpath([root_abs, candidate]) != root_abs:
        raise DatasetError(f"{dataset}: path {relative!r} escapes the dataset root {root}")
    return candidate


def require_dir(root: str, relative: str, dataset: str, layout: str) -> str:
    """Return `root/relative`, or raise a DatasetError naming the expected layout."""
    path = os.path.join(root, relative)
    if not os.path.isdir(path):
        raise DatasetError(f"{dataset}: missing folder {path}; expected layout: {layout}")
    return path


def require_file(root: str, relative: str, dataset: str, layout: str) -> str:
    """Return `root/relative`, or raise a DatasetError naming the expected layout."""
    path = os.path.join(root, relative)
    if not os.path.isfile(path):
        raise DatasetError(f"{dataset}: missing file {path}; expected layout: {layout}")
    return path


def require_images_exist(dataset: str, paths: Sequence[str]) -> None:
    """Raise a DatasetError naming the first listed image that is absent."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"{dataset}: listed image not found: {missing[0]}{more}")


# ---------------------------------------------------------------------------------------
# Label-file parsing helpers shared by the readers.
# ---------------------------------------------------------------------------------------

_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}


def _missing_column(dataset: str, path: str, column: str, found) -> DatasetError:
    shown = ", ".join(repr(c) for c in found if c not in (None, "")) or "none"
    return DatasetError(f"{dataset}: {path} has no column {column!r} (columns found: {shown})")


def read_csv_table(path: str, dataset: str, required: Sequence[str]) -> list[tuple[int, dict]]:
    """Rows of a CSV file with a header line, as `(line number, {column: text})`.

    Blank lines are ignored; a missing required column or a row too short to hold every
    required column raises a DatasetError naming the file.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [cell.strip() for cell in next(reader, [])]
        for column in required:
            if column not in header:
                raise _missing_column(dataset, path, column, header)
        width = max(header.index(c) for c in required) + 1 if required else 0
        rows = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < width:
                raise DatasetError(f"{dataset}: {path} line {reader.line_num} has {len(row)} fields, "
                                   f"expected {len(header)}")
            rows.append((reader.line_num, {h: v.strip() for h, v in zip(header, row)}))
    return rows


def read_xlsx_table(path: str, dataset: str, required: Sequence[str],
                    sheet: str | None = None) -> list[tuple[int, dict]]:
    """Rows of an Excel sheet as `(row number, {column: value})`.

    The header is the first row (of the first 20) holding every required column, so
    sheets with title rows or leading empty columns are read too; with `sheet=None` the
    first sheet holding such a row is used. Empty rows are ignored.
    """
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types for corrupt files
        raise DatasetError(f"{dataset}: cannot read spreadsheet {path}: {error}") from error
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise DatasetError(f"{dataset}: {path} has no sheet {sheet!r} (sheets found: {', '.join(book.sheetnames)})")
        sheets = [list(book[name].iter_rows(values_only=True)) for name in ([sheet] if sheet else book.sheetnames)]
    finally:
        book.close()
    for rows in sheets:
        names = [[str(c).strip() if c is not None else None for c in row] for row in rows]
        start = next((i for i, row in enumerate(names[:20]) if all(c in row for c in required)), None)
        if start is not None:
            break
    else:
        candidates = [[str(c).strip() if c is not None else None for c in row] for rows in sheets for row in rows[:20]]
        best = max(candidates, key=lambda row: sum(c in row for c in required), default=[])
        missing = next(c for c in required if c not in best)
        raise _missing_column(dataset, path, missing, best)
    header = names[start]
    table = []
    for number, row in enumerate(rows[start + 1:], start=start + 2):
        if all(c is None or str(c).strip() == "" for c in row):
            continue
        table.append((number, {h: v for h, v in zip(header, row) if h is not None}))
    return table


def parse_score(value, dataset: str, source: str, line: int, image: str, unit: str = "line") -> float:
    """`value` as a finite float, else a DatasetError naming the file, line (or `unit`) and image."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = math.nan
    if not math.isfinite(score):
        raise DatasetError(f"{dataset}: {source} {unit} {line}: score {value!r} of {image} is not a finite number")
    return score


def parse_split(value, dataset: str, source: str, line: int) -> str:
    """Map a split label (train/training, val/validation, test) to a name in SPLIT_NAMES."""
    split = _SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        raise DatasetError(f"{dataset}: {source} line {line}: unknown split {value!r} (expected train, val or test)")
    return split


def case_insensitive_index(directory: str) -> dict[str, str]:
    """`{lower-case name: name on disk}` for the entries of `directory`."""
    return {name.lower(): name for name in sorted(os.listdir(directory))}


def load_mat(path: str, dataset: str, variables: Sequence[str]) -> dict:
    """The named variables of a MATLAB .mat file (DatasetError if unreadable or absent)."""
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises ValueError/MatReadError/OSError
        raise DatasetError(f"{dataset}: cannot read MATLAB file {path}: {error}") from error
    found = [k for k in data if not k.startswith("__")]
    for name in variables:
        if name not in data:
            raise DatasetError(f"{dataset}: {path} has no variable {name!r} (variables found: {', '.join(found)})")
    return {name: data[name] for name in variables}


def mat_strings(array) -> list[str]:
    """Flatten a MATLAB cell array (or char matrix) of strings into a list of str."""
    import numpy as np

    def one(item) -> str:
        while isinstance(item, np.ndarray):
            if item.size == 0:
                return ""
            if item.dtype.kind == "U" and item.ndim > 0 and item.size > 1:
                return "".join(item.ravel().tolist()).strip()
            item = item.ravel()[0]
        return str(item).strip()

    array = np.asarray(array)
    if array.dtype.kind == "U":
        return [str(s).strip() for s in array.ravel()]
    return [one(item) for item in array.ravel()]


def take_options(dataset: str, options: dict, defaults: dict) -> dict:
    """`defaults` updated with `options`; an unknown option, or a value not of its
    default's kind (text, number, true/false; any of them where the default is None, never
    a list or a mapping), raises a DatasetError naming the option."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise DatasetError(f"{dataset}: unknown option {unknown[0]!r} (valid options: {valid})")
    for key, value in options.items():
        default = defaults[key]
        expected = _OPTION_KINDS.get(type(default), _OPTION_KINDS[type(None)])
        fits = (isinstance(value, (str, bool, int, float)) if default is None
                else isinstance(value, type(default)) and isinstance(value, bool) == isinstance(default, bool)
                or isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool))
        if not fits:
            from keras_lmiqa.errors import shown

            raise DatasetError(f"{dataset}: option {key} expects {expected}, got {shown(value)}")
    return {**defaults, **options}


_OPTION_KINDS = {str: "text", bool: "true or false", int: "an integer", float: "a number",
                 type(None): "text, a number or true/false"}


def read_pairs(path: str, dataset: str, expected: str) -> Iterator[tuple[int, str, str]]:
    """Yield `(line, first, second)` from a whitespace-separated two-column text file.

    Blank lines are skipped; any other line without exactly two fields is an error
    naming the file, the line and the `expected` form (e.g. "'MOS name'").
    """
    with open(path, encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            fields = text.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DatasetError(f"{dataset}: {path} line {line}: expected {expected}, got {text.strip()!r}")
            yield line, fields[0], fields[1]
