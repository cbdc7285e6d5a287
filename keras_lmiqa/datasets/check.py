"""Sanity check of a loaded dataset: counts, score range, splits, unreadable files."""

from __future__ import annotations

import os

from keras_lmiqa.config import TrainConfig
from keras_lmiqa.datasets.records import SPLIT_NAMES, Dataset


def check(dataset: Dataset, max_pixels: int = TrainConfig.max_pixels) -> dict:
    """Summarise `dataset`, decoding every image with the training pipeline's decoder.

    Returns a dict with `name`, `root`, `count`, `groups`, `synthetic`, `score`
    (`low`, `high`, `kind`, `higher_better`), `official_split` (counts per split, or
    None), `missing` and `unreadable` (lists of paths) and `reasons` (path -> why).
    """
    from keras_lmiqa.pipeline import find_all_undecodable  # TensorFlow only when checking

    missing = [r.path for r in dataset if not os.path.isfile(r.path)]
    present = [r.path for r in dataset if os.path.isfile(r.path)]
    reasons = dict(find_all_undecodable(present, max_pixels))
    unreadable = [path for path in present if path in reasons]
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
        "reasons": reasons,
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
        reasons = summary.get("reasons", {})
        lines.extend(f"  {p}: {reasons[p]}" if p in reasons else f"  {p}" for p in paths[:limit])
        if len(paths) > limit:
            lines.append(f"  ... and {len(paths) - limit} more")
    lines.append("status:   " + ("OK" if not summary["missing"] and not summary["unreadable"] else "PROBLEMS FOUND"))
    return "\n".join(lines)
