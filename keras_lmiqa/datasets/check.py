"""Sanity check of a loaded dataset: counts, score range, splits, unreadable files."""

from __future__ import annotations

import os

import cv2
import numpy as np

from keras_lmiqa.datasets.records import SPLIT_NAMES, Dataset


def _readable(path: str) -> bool:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return False
    return data.size > 0 and cv2.imdecode(data, cv2.IMREAD_UNCHANGED) is not None


def check(dataset: Dataset) -> dict:
    """Summarise `dataset`, decoding every image (cv2.imdecode on the file bytes).

    Returns a dict with `name`, `root`, `count`, `groups`, `synthetic`, `score`
    (`low`, `high`, `kind`, `higher_better`), `official_split` (counts per split, or
    None), `missing` and `unreadable` (lists of paths).
    """
    missing, unreadable = [], []
    for record in dataset:
        if not os.path.isfile(record.path):
            missing.append(record.path)
        elif not _readable(record.path):
            unreadable.append(record.path)
    split = None
    if dataset.has_official_split:
        split = {name: sum(r.official_split == name for r in dataset) for name in SPLIT_NAMES}
        split["none"] = sum(r.official_split is None for r in dataset)
    return {
        "name": dataset.name,
        "root": dataset.root,
        "count": len(dataset),
        "groups": len(dataset.groups),
        "synthetic": dataset.synthetic,
        "score": {
            "low": dataset.scale.low,
            "high": dataset.scale.high,
            "kind": dataset.scale.kind,
            "higher_better": dataset.scale.higher_better,
        },
        "official_split": split,
        "missing": missing,
        "unreadable": unreadable,
    }


def format_summary(summary: dict, limit: int = 10) -> str:
    """Human-readable multi-line text of a :func:`check` summary (lists `limit` bad files)."""
    score = summary["score"]
    direction = "higher = better" if score["higher_better"] else "lower = better"
    unit = "reference" if summary["synthetic"] else "image"
    lines = [
        f"dataset:  {summary['name']}",
        f"root:     {summary['root']}",
        f"images:   {summary['count']}",
        f"groups:   {summary['groups']} (split by {unit})",
        f"scores:   {score['kind']} {score['low']:g} .. {score['high']:g} ({direction})",
    ]
    split = summary["official_split"]
    if split:
        parts = ", ".join(f"{k} {v}" for k, v in split.items() if v or k != "none")
        lines.append(f"official split: {parts}")
    else:
        lines.append("official split: none")
    for label in ("missing", "unreadable"):
        paths = summary[label]
        lines.append(f"{label}: {len(paths)}")
        lines.extend(f"  {p}" for p in paths[:limit])
        if len(paths) > limit:
            lines.append(f"  ... and {len(paths) - limit} more")
    lines.append("status:   " + ("OK" if not summary["missing"] and not summary["unreadable"] else "PROBLEMS FOUND"))
    return "\n".join(lines)
