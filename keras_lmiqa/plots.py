"""Matplotlib figures of the research workflow (Agg backend: files, never a window).

Each function returns a `Figure`; `png_bytes` renders one to PNG and closes it.
"""

from __future__ import annotations

import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patches  # noqa: E402

WEIGHT_COLORMAP = "viridis"


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def scatter_with_logistic(predicted, subjective, fit, kind: str = "MOS", title: str = ""):
    """Predicted vs subjective scores and the fitted 4-parameter logistic curve."""
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    axis.scatter(predicted, subjective, s=14, alpha=0.7, label="test images")
    if fit.converged and len(predicted):
        grid = np.linspace(np.min(predicted), np.max(predicted), 200)
        axis.plot(grid, fit(grid), color="tab:red", label="4-parameter logistic fit")
    axis.set_xlabel(f"predicted {kind}")
    axis.set_ylabel(f"subjective {kind}")
    axis.set_title(title)
    axis.legend(loc="best", fontsize=8)
    return figure


def training_curves(epochs: list[dict]):
    """Loss terms per epoch (left) and validation SRCC/PLCC per epoch (right)."""
    figure, (losses, validation) = plt.subplots(1, 2, figsize=(10, 4))
    numbers = [e["epoch"] + 1 for e in epochs]
    for name in (epochs[0].get("train", {}) if epochs else {}):
        losses.plot(numbers, [e["train"][name] for e in epochs], marker="o", label=name)
    for axis in (losses, validation):
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    losses.set_xlabel("epoch")
    losses.set_ylabel("mean training loss")
    losses.set_title("loss terms")
    losses.legend(fontsize=8)
    scored = [e for e in epochs if "val" in e]
    for key in ("srcc", "plcc"):
        validation.plot([e["epoch"] + 1 for e in scored], [e["val"][key] for e in scored], marker="o",
                        label=f"val {key.upper()}")
    validation.set_xlabel("epoch")
    validation.set_title("validation")
    validation.legend(fontsize=8)
    return figure


def draw_crops(axis, image, explanation: dict, title: str = "") -> None:
    """The image with its inference windows, coloured by weight and labelled with crop scores."""
    axis.imshow(image)
    weights = np.asarray(explanation["crop_weights"], np.float64)
    colors = plt.get_cmap(WEIGHT_COLORMAP)(weights / max(float(weights.max()), 1e-12))
    # Draw the largest windows first so the small ones stay visible on top.
    order = np.argsort([-(w[2] - w[0]) * (w[3] - w[1]) for w in explanation["windows"]], kind="stable")
    for index in order:
        y0, x0, y1, x1 = (float(v) for v in explanation["windows"][index])
        axis.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linewidth=1.5,
                                         edgecolor=colors[index]))
        axis.text((x0 + x1) / 2, (y0 + y1) / 2, f"{explanation['crop_scores'][index]:.2f}", fontsize=6,
                  ha="center", va="center",
                  color="white", bbox={"facecolor": colors[index], "alpha": 0.8, "pad": 1, "linewidth": 0})
    axis.set_title(title, fontsize=9)
    axis.axis("off")


def weight_colorbar(figure, axes) -> None:
    mappable = plt.cm.ScalarMappable(cmap=WEIGHT_COLORMAP, norm=matplotlib.colors.Normalize(0, 1))
    figure.colorbar(mappable, ax=axes, fraction=0.03, label="crop weight / max weight")


def gallery(items: list[tuple[np.ndarray, dict, str]]):
    """A row of images with their crop windows; each item is (image, explanation, title)."""
    figure, axes = plt.subplots(1, len(items), figsize=(3.6 * len(items), 3.8), squeeze=False)
    for axis, (image, explanation, title) in zip(axes[0], items):
        draw_crops(axis, image, explanation, title)
    weight_colorbar(figure, list(axes[0]))
    return figure


def explanation_figure(image: np.ndarray, saliency: np.ndarray, explanation: dict, title: str):
    """Crop grid with weights and scores (left), spectral-residual saliency (right)."""
    figure, (crops, salient) = plt.subplots(1, 2, figsize=(11, 4.8))
    draw_crops(crops, image, explanation, "crop windows: colour = weight, label = crop score")
    weight_colorbar(figure, crops)
    salient.imshow(image)
    shown = salient.imshow(saliency, cmap="inferno", alpha=0.6, vmin=0.0, vmax=1.0)
    salient.set_title("spectral-residual saliency", fontsize=9)
    salient.axis("off")
    figure.colorbar(shown, ax=salient, fraction=0.03, label="saliency")
    figure.suptitle(title)
    return figure


def score_by_level(mean_scores: dict[str, list[float]], title: str = ""):
    """Mean score against distortion level (0 = the undistorted photo), one line per family."""
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for family, values in mean_scores.items():
        axis.plot(range(len(values)), values, marker="o", label=family.replace("_", " "))
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.set_xlabel("distortion level (0 = original, 5 = strongest)")
    axis.set_ylabel("mean score")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize=8)
    return figure
