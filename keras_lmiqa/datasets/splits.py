"""Train/validation/test splits of a dataset, by group.

Every split is made over :attr:`Record.group`: the reference image for synthetic
datasets (all distortions of one reference land in the same part) and the image itself
for authentic datasets. No group ever spans two parts.

A split depends only on the seed and on the *set* of group names: the names are sorted
before being shuffled with ``numpy.random.default_rng(seed)``, so reordering the label
file does not change which groups land in which part.

The standard evaluation protocol repeats training on ten random splits
(:func:`protocol_seeds`) and reports the median of the test metrics.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import numpy as np

from keras_lmiqa.datasets.records import SPLIT_NAMES, Dataset, Record
from keras_lmiqa.errors import ConfigError, DatasetError


@dataclasses.dataclass(frozen=True)
class Split:
    """One train/val/test split of a dataset.

    Attributes:
        train, val, test: ascending indices into the dataset's records.
        seed: the seed the split was drawn with (for an official split: the seed used
            to carve a validation part from the official train part, if any).
        official: True when the dataset's official split was used.
        train_groups, val_groups, test_groups: sorted group names of each part.
    """

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    seed: int
    official: bool
    train_groups: tuple[str, ...] = ()
    val_groups: tuple[str, ...] = ()
    test_groups: tuple[str, ...] = ()

    def indices(self, part: str) -> tuple[int, ...]:
        """The record indices of `part` ("train", "val" or "test")."""
        _check_part(part)
        return getattr(self, part)

    def groups(self, part: str) -> tuple[str, ...]:
        """The group names of `part` ("train", "val" or "test")."""
        _check_part(part)
        return getattr(self, f"{part}_groups")

    def records(self, dataset: Dataset, part: str) -> tuple[Record, ...]:
        """The records of `dataset` in `part` ("train", "val" or "test").

        Raises:
            ConfigError: unknown part, or the split does not fit the dataset (an index
                beyond its length).
        """
        indices = self.indices(part)
        if indices and max(indices) >= len(dataset):
            raise ConfigError(
                f"split does not match dataset {dataset.name!r}: index {max(indices)} "
                f"in the {part} part but the dataset has {len(dataset)} records"
            )
        return tuple(dataset.records[i] for i in indices)

    def sizes(self) -> dict[str, int]:
        """Number of records per part."""
        return {part: len(getattr(self, part)) for part in SPLIT_NAMES}

    def to_dict(self) -> dict:
        """JSON-serialisable form: seed, official flag, and per part its indices and groups."""
        out: dict = {"seed": int(self.seed), "official": bool(self.official)}
        for part in SPLIT_NAMES:
            out[part] = {
                "indices": [int(i) for i in getattr(self, part)],
                "groups": list(getattr(self, f"{part}_groups")),
            }
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Split:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                train=tuple(int(i) for i in data["train"]["indices"]),
                val=tuple(int(i) for i in data["val"]["indices"]),
                test=tuple(int(i) for i in data["test"]["indices"]),
                seed=int(data["seed"]),
                official=bool(data["official"]),
                train_groups=tuple(str(g) for g in data["train"]["groups"]),
                val_groups=tuple(str(g) for g in data["val"]["groups"]),
                test_groups=tuple(str(g) for g in data["test"]["groups"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed split description: {exc!r}. Received: {data!r}") from None


def _check_part(part: str) -> None:
    if part not in SPLIT_NAMES:
        raise ConfigError(f"unknown split part {part!r}; valid parts: {', '.join(SPLIT_NAMES)}")


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number in [0, 1). Received: {value!r}")
    value = float(value)
    if not (0.0 <= value < 1.0):
        raise ConfigError(f"{name} must be in [0, 1). Received: {value!r}")
    return value


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer. Received: {seed!r}")
    return int(seed)


def _round(x: float) -> int:
    """Round half up (Python's `round` rounds half to even)."""
    return int(math.floor(x + 0.5))


def _carve(groups: Sequence[str], fraction: float, reserve: int, rng: np.random.Generator):
    """Take `fraction` of `groups` (at least one when fraction > 0), leaving at least
    `reserve` groups behind. Returns (taken, rest). `groups` must be sorted."""
    if fraction <= 0.0:
        return [], list(groups)
    count = min(max(_round(fraction * len(groups)), 1), len(groups) - reserve)
    order = rng.permutation(len(groups))
    taken = sorted(groups[i] for i in order[:count])
    rest = sorted(groups[i] for i in order[count:])
    return taken, rest


def _build(dataset: Dataset, parts: dict[str, list[str]], seed: int, official: bool) -> Split:
    part_of = {g: part for part, names in parts.items() for g in names}
    indices: dict[str, list[int]] = {part: [] for part in SPLIT_NAMES}
    for i, record in enumerate(dataset.records):
        indices[part_of[record.group]].append(i)
    return Split(
        train=tuple(indices["train"]),
        val=tuple(indices["val"]),
        test=tuple(indices["test"]),
        seed=seed,
        official=official,
        train_groups=tuple(sorted(parts["train"])),
        val_groups=tuple(sorted(parts["val"])),
        test_groups=tuple(sorted(parts["test"])),
    )


def _official_parts(dataset: Dataset) -> dict[str, list[str]]:
    """Group names per official part; refuses unknown parts, unassigned records and
    groups that span two official parts."""
    part_of: dict[str, str] = {}
    for record in dataset.records:
        part = record.official_split
        if part is None:
            raise DatasetError(
                f"{dataset.name}: the official split does not assign {record.path}; "
                "pass use_official=False to draw a random split"
            )
        if part not in SPLIT_NAMES:
            raise DatasetError(
                f"{dataset.name}: unknown official split part {part!r} for {record.path}; "
                f"valid parts: {', '.join(SPLIT_NAMES)}"
            )
        previous = part_of.setdefault(record.group, part)
        if previous != part:
            raise DatasetError(
                f"{dataset.name}: group {record.group!r} is in both the official {previous} "
                f"and {part} parts"
            )
    parts: dict[str, list[str]] = {part: [] for part in SPLIT_NAMES}
    for group, part in part_of.items():
        parts[part].append(group)
    return {part: sorted(names) for part, names in parts.items()}


def _official_split_parts(dataset: Dataset, val_fraction: float, rng) -> dict[str, list[str]]:
    """The official parts' groups, with val carved from train when the split ships none."""
    parts = _official_parts(dataset)
    for required in ("train", "test"):
        if not parts[required]:
            raise DatasetError(
                f"{dataset.name}: the official split has no {required} part; "
                "pass use_official=False to draw a random split"
            )
    if not parts["val"] and val_fraction > 0.0:
        if len(parts["train"]) < 2:
            raise ConfigError(
                f"{dataset.name}: the official train part has {len(parts['train'])} "
                "group(s), too few to carve a validation part; pass val_fraction=0. "
                f"Received: val_fraction={val_fraction}"
            )
        parts["val"], parts["train"] = _carve(parts["train"], val_fraction, 1, rng)
    return parts


def split_dataset(
    dataset: Dataset,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    use_official: bool = True,
) -> Split:
    """Split `dataset` into train/val/test parts by group.

    Random split (no official split, or `use_official=False`): the sorted group names
    are shuffled with `numpy.random.default_rng(seed)`; `test_fraction` of the groups go
    to test, then `val_fraction` of the remaining groups go to val (carved from train,
    for model selection), the rest to train. Counts are rounded half up, and every
    requested part (test when `test_fraction > 0`, val when `val_fraction > 0`, and
    train always) gets at least one group; so with at least 3 groups and both
    fractions positive no part is empty. A fraction of 0 leaves that part empty.

    Official split (`use_official` and some record has an `official_split`): the
    official parts are used as distributed and `test_fraction` is ignored. If the
    official split has no val part and `val_fraction > 0`, val is carved from the
    official train groups with the seed as above. An official val part is kept as is.

    Args:
        dataset: the dataset to split.
        seed: non-negative integer; the split depends only on it and on the set of
            group names.
        test_fraction: fraction of groups in the test part, in [0, 1).
        val_fraction: fraction of the non-test groups in the val part, in [0, 1).
        use_official: use the dataset's official split when it has one.

    Returns:
        A :class:`Split`.

    Raises:
        ConfigError: fractions out of range (each in [0, 1), sum < 1), a bad seed, or
            too few groups for the requested parts.
        DatasetError: a malformed official split (unassigned records, unknown part
            names, a group in two parts, no train or test part).

    Long: two thirds of it is this docstring, the split rules users rely on.
    """
    seed = _check_seed(seed)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    val_fraction = _check_fraction("val_fraction", val_fraction)
    if test_fraction + val_fraction >= 1.0:
        raise ConfigError(
            "test_fraction + val_fraction must be < 1 to leave groups for training. "
            f"Received: test_fraction={test_fraction}, val_fraction={val_fraction}"
        )
    rng = np.random.default_rng(seed)

    if use_official and dataset.has_official_split:
        return _build(dataset, _official_split_parts(dataset, val_fraction, rng), seed, official=True)

    groups = sorted(set(r.group for r in dataset.records))
    needed = 1 + (test_fraction > 0.0) + (val_fraction > 0.0)
    if len(groups) < needed:
        requested = ["train"] + (["test"] if test_fraction > 0 else []) + (["val"] if val_fraction > 0 else [])
        raise ConfigError(
            f"{dataset.name}: {len(groups)} group(s) cannot fill the {needed} requested "
            f"parts ({', '.join(requested)}); a group never spans two parts. Received: "
            f"test_fraction={test_fraction}, val_fraction={val_fraction}"
        )
    reserve = 1 + (val_fraction > 0.0)  # groups to leave for train (and val)
    test, rest = _carve(groups, test_fraction, reserve, rng)
    val, train = _carve(rest, val_fraction, 1, rng)
    return _build(dataset, {"train": train, "val": val, "test": test}, seed, official=False)


def protocol_seeds(repeats: int = 10, base_seed: int = 0) -> list[int]:
    """Seeds of the standard repeated-split protocol: `base_seed, ..., base_seed + repeats - 1`.

    Raises:
        ConfigError: `repeats` < 1 or a negative/non-integer `base_seed`.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise ConfigError(f"repeats must be a positive integer. Received: {repeats!r}")
    base_seed = _check_seed(base_seed)
    return list(range(base_seed, base_seed + int(repeats)))


__all__ = ["Split", "split_dataset", "protocol_seeds"]
