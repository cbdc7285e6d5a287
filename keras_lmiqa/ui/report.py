"""`write_report`: the `lmiqa score --html` page, one self-contained HTML file.

Every scored photo with its score, its MOS and its crop windows (coloured by crop score),
worst first; a score-range filter, a histogram and the photos that could not be scored
with their error. Thumbnails are embedded as small JPEG data: URIs (`thumbnails`) in one
JSON block; the page builds a card's picture only when it scrolls near the viewport, so
5,000 photos open as fast as 50. Written atomically.
"""

from __future__ import annotations

import math
import os
import time
import urllib.parse
from datetime import datetime, timezone

import numpy as np

from keras_lmiqa import artifacts
from keras_lmiqa.crops import window_mask
from keras_lmiqa.ui import bundle
from keras_lmiqa.ui.thumbnails import thumbnails


def _crops(row: dict) -> list[list[float]]:
    """[[y0, x0, y1, x1, crop score, weight], ...] of the row's real windows (not the padding)."""
    windows = np.asarray(row.get("crop_windows", np.zeros((0, 4))), np.float64).reshape(-1, 4)
    scores = np.asarray(row.get("crop_scores", np.zeros(0)), np.float64).reshape(-1)
    weights = np.asarray(row.get("crop_weights", np.zeros(0)), np.float64).reshape(-1)
    real = window_mask(windows)
    return [[round(float(v), 1) for v in window] + [round(float(s), 4), round(float(w), 4)]
            for window, s, w, keep in zip(windows, scores, weights, real) if keep]


def _link(path: str, folder: str) -> str:
    """`path` as a URL relative to the page's folder: the detail view shows the photo itself
    when the page is opened where the photos are, the thumbnail elsewhere."""
    return urllib.parse.quote(os.path.relpath(os.path.abspath(path), folder).replace(os.sep, "/"))


def page_data(rows: list[dict], folder: str, mos_label: str = "MOS") -> dict:
    """The page's JSON: scored photos (with thumbnails) and errors. `rows`: {path, score,
    mos, error} plus crop_windows / crop_scores / crop_weights of the scored ones; `folder`:
    where the page is written."""
    def is_scored(row: dict) -> bool:
        return not row["error"] and math.isfinite(row["score"])

    scored = [row for row in rows if is_scored(row)]
    previews = thumbnails([row["path"] for row in scored])
    photos = []
    for row, preview in zip(scored, previews):
        photo = {"p": row["path"], "s": round(float(row["score"]), 6), "m": round(float(row["mos"]), 6),
                 "t": preview.uri, "w": preview.width, "h": preview.height, "tw": preview.thumb_width,
                 "th": preview.thumb_height, "o": _link(row["path"], folder), "c": _crops(row)}
        if preview.problem:
            photo["why"] = preview.problem
        photos.append(photo)
    errors = [{"p": row["path"], "e": row["error"] or "no score"} for row in rows if not is_scored(row)]
    return {"mos_label": mos_label, "photos": photos, "errors": errors}


def write_report(rows: list[dict], path: str, *, source: str, mos_label: str = "MOS",
                 title: str = "Photo quality") -> dict:
    """Write the page for `rows` (`lmiqa score` rows) to `path` atomically.

    Returns {"photos", "errors", "bytes", "seconds", "cpu_seconds", "path"} (seconds:
    thumbnails and writing, wall clock; cpu_seconds: the CPU time they took, all threads).
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    data = page_data(rows, os.path.dirname(os.path.abspath(path)), mos_label)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = (f"Scored by {source} on {when}. Quality is 0 to 1, higher is better; "
                f"{mos_label} is on the training set's scale.")
    document = bundle.page(title, subtitle, body_data={"mode": "report", "mos-label": mos_label}, inline=True,
                           data=bundle.json_script(data))
    encoded = document.encode("utf-8")
    with artifacts.atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(encoded)
    return {"photos": len(data["photos"]), "errors": len(data["errors"]), "bytes": len(encoded),
            "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
            "path": os.path.abspath(path)}
