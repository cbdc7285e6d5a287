"""`load_scorer(path)`: a `Scorer` of an export, a model file or the default shipped model.

`path` is a `model.keras` (a standalone `ImageQualityModel`), a SavedModel version
folder, or an export base folder (its latest version is used); no `path` scores with the
default shipped model (`keras_lmiqa.pretrained_models`). Either way the same graph
scores the images: a `.keras` runs `ImageQualityModel`'s traced functions, an export the
`serving_default` / `score_pixels` signatures built from those functions.

    scorer = load_scorer("exports/lmiqa")
    scorer.score(["a.jpg", open("b.png", "rb").read(), pixels])  # float32 [3], higher = better
"""

from __future__ import annotations

import os

import tensorflow as tf

from keras_lmiqa import pretrained_models
from keras_lmiqa.constants import BYTES_SIGNATURE, DEFAULT_MAX_FILE_BYTES, PIXELS_SIGNATURE, version_dirs
from keras_lmiqa.errors import ModelError
from keras_lmiqa.loading import load_image_model, read_metadata
from keras_lmiqa.models.scorer import DEFAULT_BATCH_SIZE, Scorer, error_message

__all__ = ["DEFAULT_BATCH_SIZE", "Scorer", "load_scorer"]


def load_scorer(path=None, batch_size: int = DEFAULT_BATCH_SIZE, config_path: str | None = None,
                max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Scorer:
    """A Scorer from a `model.keras`, a SavedModel version folder or an export base folder;
    with no `path`, the default shipped model (`keras_lmiqa.pretrained_models.default_model()`)."""
    if path is None:
        return pretrained_models.scorer(batch_size=batch_size, max_file_bytes=max_file_bytes)
    path = os.fspath(path)
    if os.path.isfile(path):
        model = load_image_model(path, config_path)
        return model.scorer(batch_size, source=path, max_file_bytes=max_file_bytes)
    if not os.path.isdir(path):
        raise ModelError(f"model not found: {path} (expected a model.keras, a SavedModel version folder "
                         "or an export folder)")
    version_dir = path
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        dirs = version_dirs(path)
        if not dirs:
            incomplete = sorted(n for n in os.listdir(path) if n.isascii() and n.isdigit())
            detail = (f"; {', '.join(n + '/' for n in incomplete)} without saved_model.pb (corrupt or partial "
                      "copy?)" if incomplete else "")
            raise ModelError(f"{path} holds no SavedModel and no numeric version folder with one{detail}")
        version_dir = dirs[max(dirs)]
    metadata = read_metadata(version_dir)
    try:
        loaded = tf.saved_model.load(version_dir)
    except Exception as error:  # OSError, protobuf DecodeError, TF's NotFound/DataLoss...: all "corrupt or partial"
        first_line = (str(error).strip().splitlines() or [""])[0]
        reason = error_message(error) if isinstance(error, tf.errors.OpError) else first_line
        raise ModelError(f"cannot load SavedModel {version_dir} (corrupt or partial export?): "
                         f"{reason or type(error).__name__}") from None
    missing = sorted({BYTES_SIGNATURE, PIXELS_SIGNATURE} - set(loaded.signatures))
    if missing:
        raise ModelError(f"{version_dir} is not an LML-IQA export: no {' or '.join(missing)} signature")
    by_bytes = loaded.signatures[BYTES_SIGNATURE]
    by_pixels = loaded.signatures[PIXELS_SIGNATURE]
    return Scorer(lambda images: by_bytes(images=images), lambda pixels: by_pixels(pixels=pixels),
                  metadata, version_dir, batch_size, owner=loaded, max_file_bytes=max_file_bytes)
