"""Result tables written three ways: `<stem>.json` (the data), `<stem>.csv`, `<stem>.md`.

A table is a list of column names and a list of rows (dicts). Floats are printed with
4 decimals in the CSV and Markdown forms and kept exact in the JSON.
"""

from __future__ import annotations

import csv
import os

from keras_lmiqa import artifacts


def format_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown(columns: list[str], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(format_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(output_dir: str, stem: str, columns: list[str], rows: list[dict], data: dict,
                title: str = "") -> list[str]:
    """Write `data` as `<stem>.json` and the table as `<stem>.csv` and `<stem>.md` (each
    atomically); returns the three paths."""
    paths = [os.path.join(output_dir, f"{stem}.{ext}") for ext in ("json", "csv", "md")]
    artifacts.write_json(paths[0], data)
    with artifacts.atomic_path(paths[1]) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([[format_cell(row.get(c)) for c in columns] for row in rows])
    with artifacts.atomic_path(paths[2]) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write((f"{title}\n\n" if title else "") + markdown(columns, rows))
    return paths
