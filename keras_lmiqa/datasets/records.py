"""The record and dataset types every reader returns, and path helpers shared by readers."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Iterator, Sequence

from keras_lmiqa.errors import DatasetError

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
class ScoreScale:
    """The score range of a dataset and its direction.

    `low`/`high` are the lowest and highest score in the dataset; `higher_better` is
    False for DMOS datasets (LIVE, CSIQ).
    """

    low: float
    high: float
    higher_better: bool
    kind: str = "MOS"  # "MOS" or "DMOS" (or a free label for custom CSVs)

    def to_quality(self, mos: float) -> float:
        """Map a score on this scale to [0, 1], higher = better."""
        span = self.high - self.low
        unit = (mos - self.low) / span if span > 0 else 0.5
        return unit if self.higher_better else 1.0 - unit

    def to_mos(self, quality):
        """Inverse of :meth:`to_quality`; works on floats and NumPy arrays."""
        unit = quality if self.higher_better else 1.0 - quality
        return self.low + unit * (self.high - self.low)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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

    Validates scores (finite numbers) and duplicate paths, and normalises `quality` by
    the observed score range so it always lies in [0, 1].
    """
    if not entries:
        raise DatasetError(f"{name}: no images listed under {root}")
    seen: set[str] = set()
    for path, mos, _, _ in entries:
        if not isinstance(mos, (int, float)) or not math.isfinite(mos):
            raise DatasetError(f"{name}: score of {path} is not a finite number: {mos!r}")
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
