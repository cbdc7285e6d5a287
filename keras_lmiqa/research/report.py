"""`write_report(run_dir)`: RUN_DIR/report.html, one self-contained page per training run.

The page holds the metrics table, predicted vs subjective scores with the fitted
4-parameter logistic, the training curves (loss terms, validation SRCC/PLCC per epoch)
and a gallery of test images with their inference crop windows (coloured by weight,
labelled with the crop's score). Figures are embedded as base64 PNG data URIs, so the
file opens from disk anywhere, and saved beside it as RUN_DIR/report/*.png.

It is built only from files the run has already written (metrics.json, config.json,
history.json, test_predictions.csv, model.keras), so it can be rebuilt at any time
(`lmiqa report RUN_DIR`). A failure raises :class:`ReportError` naming the cause; the
run's results are untouched by it.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import os

import numpy as np

from keras_lmiqa import artifacts
from keras_lmiqa.config import SWITCHES
from keras_lmiqa.errors import LmiqaError
from keras_lmiqa.metrics import METRIC_KEYS, fit_logistic

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
FIGURES_DIR = "report"
GALLERY_SIZE = 4
REQUIRED_FILES = ("metrics.json", "config.json", "test_predictions.csv", "model.keras")


class ReportError(LmiqaError):
    """A run report could not be built."""


def read_predictions(path: str) -> list[dict]:
    """test_predictions.csv -> rows with float `mos` and `predicted_mos`."""
    with open(path, encoding="utf-8", newline="") as handle:
        return [{**row, "mos": float(row["mos"]), "predicted_mos": float(row["predicted_mos"])}
                for row in csv.DictReader(handle)]


def gallery_rows(rows: list[dict], count: int = GALLERY_SIZE) -> list[dict]:
    """`count` test images spread evenly over the subjective score range."""
    ordered = sorted(rows, key=lambda row: row["mos"])
    picks = sorted(set(np.linspace(0, len(ordered) - 1, min(count, len(ordered))).round().astype(int).tolist()))
    return [ordered[i] for i in picks] if ordered else []


def read_image(path: str) -> np.ndarray:
    import tensorflow as tf

    with open(path, "rb") as handle:
        return tf.io.decode_image(handle.read(), channels=3, expand_animations=False).numpy()


def scatter_png(rows: list[dict], kind: str, title: str) -> bytes | None:
    """Predicted vs subjective scores of `rows` ({"mos", "predicted_mos"}) with the fitted
    4-parameter logistic, as PNG; None below 3 rows (no fit). The run report's and
    `lmiqa eval`'s figure."""
    from keras_lmiqa import plots  # matplotlib loads only to draw

    if len(rows) < 3:
        return None
    predicted = np.array([r["predicted_mos"] for r in rows], np.float64)
    subjective = np.array([r["mos"] for r in rows], np.float64)
    fit = fit_logistic(predicted, subjective)
    return plots.png_bytes(plots.scatter_with_logistic(predicted, subjective, fit, kind, title))


def write_png(path: str, png: bytes) -> None:
    with artifacts.atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(png)


def _figures(run_dir: str, record: dict, rows: list[dict]) -> dict[str, tuple[bytes, str]]:
    """name -> (PNG bytes, caption)."""
    from keras_lmiqa import plots  # matplotlib loads only to draw
    from keras_lmiqa.scorer import load_scorer

    scale = record["dataset"]["scale"]
    out = {}
    scatter = scatter_png(rows, scale.get("kind", "MOS"), f"test split, n={len(rows)}")
    if scatter is not None:
        out["scatter"] = (scatter, "Predicted vs subjective score on the test split, "
                                   "with the fitted 4-parameter logistic.")
    history_path = os.path.join(run_dir, "history.json")
    if os.path.isfile(history_path):
        epochs = artifacts.read_json(history_path)["epochs"]
        out["curves"] = (plots.png_bytes(plots.training_curves(epochs)),
                         "Training loss terms and validation SRCC/PLCC per epoch.")
    chosen = gallery_rows(rows)
    if chosen:
        outputs = load_scorer(os.path.join(run_dir, "model.keras")).run([row["path"] for row in chosen])
        items = []
        for index, row in enumerate(chosen):
            explanation = {"windows": outputs["crop_windows"][index], "crop_scores": outputs["crop_scores"][index],
                           "crop_weights": outputs["crop_weights"][index]}
            items.append((read_image(row["path"]), explanation,
                          f"{os.path.basename(row['path'])}\n{scale.get('kind', 'MOS')} {row['mos']:.3g}, "
                          f"predicted {row['predicted_mos']:.3g}"))
        out["gallery"] = (plots.png_bytes(plots.gallery(items)),
                          "Test images with their inference crop windows: colour = importance weight, "
                          "label = the crop's quality score (0-1, higher = better).")
    return out


def _metrics_table(metrics: dict) -> str:
    header = "".join(f"<th>{key}</th>" for key in (*METRIC_KEYS, "n"))
    body = ""
    for part in ("val", "test"):
        values = metrics.get(part) or {}
        if values:
            cells = "".join(f"<td>{values[k]:.4f}</td>" if isinstance(values.get(k), float)
                            else f"<td>{html.escape(str(values.get(k, '')))}</td>" for k in (*METRIC_KEYS, "n"))
            body += f"<tr><th>{part}</th>{cells}</tr>"
    return f"<table><tr><th></th>{header}</tr>{body}</table>"


def _page(record: dict, metrics: dict, figures: dict[str, tuple[bytes, str]]) -> str:
    config = record.get("config", {})
    dataset = record.get("dataset", {})
    facts = {"dataset": f"{dataset.get('name')} ({dataset.get('size')} images, {dataset.get('scale', {}).get('kind')})",
             "split": f"seed {record.get('split', {}).get('seed')}; images "
                      + ", ".join(f"{part} {count}" for part, count in (metrics.get("images") or {}).items()),
             "backbone": f"{config.get('backbone')}, crops {config.get('crop_size')} px",
             "epochs": f"{config.get('epochs')} (best validation epoch {metrics.get('val', {}).get('epoch')})",
             "switches": ", ".join(f"{k}={config.get(k)}" for k in sorted(SWITCHES)),
             "synthetic ranking": (f"{config.get('synthetic_groups')} groups of a photo and "
                                   f"{config.get('synthetic_copies')} copies a batch, weight "
                                   f"{config.get('lambda_synthetic')}" if config.get("synthetic_groups") else "off"),
             "training time": f"{metrics.get('train_seconds')} s", "commit": str(record.get("commit"))}
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    sections = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>" for name, (png, caption) in figures.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LML-IQA run report: {html.escape(str(dataset.get('name')))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}figure{{margin:2em 0}}</style>
</head><body>
<h1>LML-IQA run report</h1>
<table>{fact_rows}</table>
<h2>Metrics</h2>
<p>On the dataset's own scale; plcc_logistic and rmse after the 4-parameter logistic mapping.</p>
{_metrics_table(metrics)}
<h2>Figures</h2>
{sections}
</body></html>
"""


def write_report(run_dir: str) -> str:
    """Build RUN_DIR/report.html and RUN_DIR/report/*.png; returns the HTML path.

    Raises:
        ReportError: a run file is missing or a figure cannot be drawn.
    """
    missing = [name for name in REQUIRED_FILES if not os.path.isfile(os.path.join(run_dir, name))]
    if missing:
        raise ReportError(f"cannot build the report of {run_dir}: missing {', '.join(missing)} "
                          "(is it a finished training run folder?)")
    try:
        record = artifacts.read_json(os.path.join(run_dir, "config.json"))
        metrics = artifacts.read_json(os.path.join(run_dir, "metrics.json"))
        figures = _figures(run_dir, record, read_predictions(os.path.join(run_dir, "test_predictions.csv")))
    except LmiqaError as error:
        raise ReportError(f"cannot build the report of {run_dir}: {error}") from None
    except Exception as error:  # matplotlib, TensorFlow and file errors alike: name the cause
        logger.debug("report failure", exc_info=True)
        raise ReportError(f"cannot build the report of {run_dir}: {type(error).__name__}: {error}") from None
    for name, (png, _) in figures.items():
        write_png(os.path.join(run_dir, FIGURES_DIR, f"{name}.png"), png)
    path = os.path.join(run_dir, REPORT_FILE)
    with artifacts.atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(_page(record, metrics, figures))
    logger.info("report: %s", path)
    return path
