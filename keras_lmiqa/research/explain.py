"""`explain_image`: one image's score, its crop grid (weights, crop scores) and saliency, as a PNG."""

from __future__ import annotations

import os

import numpy as np

from keras_lmiqa import artifacts
from keras_lmiqa.errors import ImageError
from keras_lmiqa.research.evaluate import resolve_model


def explain_image(image_path: str, model_path: str, out_path: str) -> dict:
    """Score `image_path` with the model and draw the explanation figure to `out_path`.

    Returns the scorer's explanation (score, mos, windows, crop scores/weights/saliency).

    Raises:
        ImageError: the image is missing or cannot be decoded.
        ModelError: the model is missing or unreadable.
    """
    if not os.path.isfile(image_path):
        raise ImageError(f"image not found: {image_path}")
    from keras_lmiqa import plots  # matplotlib loads only to draw
    from keras_lmiqa.research.report import read_image
    from keras_lmiqa.saliency import spectral_residual
    from keras_lmiqa.scorer import load_scorer

    scorer = load_scorer(resolve_model(model_path))
    explanation = scorer.explain(image_path)
    image = read_image(image_path)
    saliency = np.asarray(spectral_residual(image, long_side=scorer.metadata["crops"]["saliency_long_side"]))
    scale = scorer.metadata["dataset"]["scale"]
    title = (f"{os.path.basename(image_path)}: quality {explanation['score']:.3f} (0-1, higher = better), "
             f"{scale.get('kind', 'MOS')} {explanation['mos']:.3g} on the "
             f"{scorer.metadata['dataset']['name']} scale")
    png = plots.png_bytes(plots.explanation_figure(image, saliency, explanation, title))
    with artifacts.atomic_path(out_path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(png)
    return explanation
