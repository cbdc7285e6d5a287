"""`Scorer`: paths, bytes or arrays in, NumPy outputs out, by a model's scoring graph.

The graph comes as two callables (encoded images, pixels): an `ImageQualityModel`'s
traced functions (`ImageQualityModel.scorer`) or a SavedModel's signatures
(`keras_lmiqa.scorer.load_scorer`); either runs `scoring.score_each_image`.

    scorer.score(["a.jpg", open("b.png", "rb").read(), pixels])  # float32 [3], higher = better
    scorer.score_mos(["a.jpg"])                                   # on the dataset's scale
    scorer.explain("a.jpg")                                       # crop windows, scores, weights
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_lmiqa import artifacts
from keras_lmiqa.constants import DEFAULT_MAX_FILE_BYTES, OUTPUT_KEYS, SCORING_BATCH_SIZE
from keras_lmiqa.crops import window_mask
from keras_lmiqa.errors import ImageError, ModelError
from keras_lmiqa.image_io import error_reason, gif_pixels
from keras_lmiqa.models.scoring import SCORE_ERROR, SCORE_RANGE, sane_scores

DEFAULT_BATCH_SIZE = SCORING_BATCH_SIZE  # as `scoring.predict_quality`, so file scores match it exactly


class Scorer:
    """Scores images with an LML-IQA model.

    Args:
        score_bytes: callable, encoded images tf.string [batch] -> dict of `OUTPUT_KEYS`.
        score_pixels: callable, uint8 [batch, H, W, 3] -> the same dict.
        metadata: the export metadata (dataset, score scale, crops).
        source: where the model came from (for messages).
        batch_size: images per call (encoded images of a call are padded to the largest).
        owner: an object to keep alive with the callables (the loaded SavedModel).
        max_file_bytes: image files larger than this are refused before reading; only
            regular files are read (never a FIFO or a device such as /dev/zero).

    Scores are normalised quality in [0, 1], higher = better; `score_mos` maps them to the
    training dataset's scale and direction (`metadata["dataset"]["scale"]`). A score that
    is not finite or far outside [0, 1] (`scoring.SCORE_MARGIN`) raises ModelError: it
    comes from a broken model, not from the image.
    """

    def __init__(self, score_bytes, score_pixels, metadata: dict, source: str,
                 batch_size: int = DEFAULT_BATCH_SIZE, owner=None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        if max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1. Received: max_file_bytes={max_file_bytes}")
        self.max_file_bytes = int(max_file_bytes)
        self._score_bytes = score_bytes
        self._score_pixels = score_pixels
        self.metadata = metadata
        self.source = source
        self.batch_size = batch_size
        self._owner = owner

    def __repr__(self) -> str:
        return f"Scorer({self.source!r})"

    def score(self, images) -> np.ndarray:
        """Normalised quality (higher = better) of each image: float32 [N]."""
        return self.run(images)["score"]

    def score_mos(self, images) -> np.ndarray:
        """Quality on the training dataset's scale and direction: float32 [N]."""
        return self.run(images)["mos"]

    def explain(self, image) -> dict:
        """One image's score and its crops: windows [G, 4] ([y0, x0, y1, x1] pixels), crop
        scores, importance weights and saliency [G] (G: this image's window count), score
        and mos (floats)."""
        out = self.run([image])
        return {
            "score": float(out["score"][0]),
            "mos": float(out["mos"][0]),
            "windows": out["crop_windows"][0],
            "crop_scores": out["crop_scores"][0],
            "crop_weights": out["crop_weights"][0],
            "crop_saliency": out["crop_saliency"][0],
        }

    def run(self, images, labels=None) -> dict:
        """All outputs (`constants.OUTPUT_KEYS`) for a list of paths, bytes or uint8 HxWx3 arrays.
        `labels` (one per image) name the images in errors; default the path, or images[i]."""
        if isinstance(images, (str, bytes, os.PathLike, np.ndarray)):
            raise ImageError("images must be a list of paths, bytes or arrays (wrap a single image in a list)")
        items = [_normalise(item, index, self.max_file_bytes) for index, item in enumerate(images)]
        if labels is not None:
            if len(labels) != len(items):
                raise ValueError(f"labels: {len(labels)} for {len(items)} images")
            items = [(value, str(label)) for (value, _), label in zip(items, labels)]
        for contents, label in items:
            self._check_gif(contents, label)
        if not items:
            return _empty()
        results: list[dict | None] = [None] * len(items)
        encoded = [i for i, item in enumerate(items) if isinstance(item[0], bytes)]
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start:start + self.batch_size]
            self._call(self._score_bytes, [items[i] for i in chunk], chunk, results, encoded=True)
        by_shape: dict = {}
        for i, item in enumerate(items):
            if not isinstance(item[0], bytes):
                by_shape.setdefault(item[0].shape, []).append(i)
        for indices in by_shape.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                self._call(self._score_pixels, [items[i] for i in chunk], chunk, results, encoded=False)
        return _stack(results)

    def score_each(self, images, labels=None, extra_keys=()) -> list[dict]:
        """{score, mos, error} of each image, errors as rows: the images are scored together
        and, if one is rejected (ImageError), one at a time, so a bad image gets its own
        message (NaN score and mos) and the others their scores. A broken model
        (ModelError) still raises: no image would score. `extra_keys`: more outputs of
        `run` each scored image's row keeps (e.g. its crop windows)."""
        try:
            out = self.run(images, labels)
        except ImageError as error:
            if len(images) == 1:
                return [{"score": float("nan"), "mos": float("nan"), "error": str(error)}]
            return [self.score_each([image], None if labels is None else [labels[index]], extra_keys)[0]
                    for index, image in enumerate(images)]
        return [{"score": float(out["score"][i]), "mos": float(out["mos"][i]), "error": None,
                 **{key: out[key][i] for key in extra_keys}} for i in range(len(out["score"]))]

    def _call(self, fn, chunk, indices, results, encoded: bool) -> None:
        values = [value for value, _ in chunk]
        batch = tf.constant(values, tf.string) if encoded else tf.constant(np.stack(values))
        try:
            out = fn(batch)
        except tf.errors.InvalidArgumentError as error:
            if SCORE_ERROR in error.message:  # the model is broken, not the image
                raise ModelError(f"{self.source}: {error_message(error).replace('] [', ': ')}") from None
            if len(chunk) > 1:  # find and name the image that failed
                for item, index in zip(chunk, indices):
                    self._call(fn, [item], [index], results, encoded)
            labels = ", ".join(label for _, label in chunk)
            raise ImageError(f"cannot score {labels}: {error_message(error)}") from None
        out = {key: np.asarray(out[key]) for key in OUTPUT_KEYS}
        self._check_scores(out["score"], [label for _, label in chunk])
        counts = window_mask(out["crop_windows"]).sum(-1)
        for row, index in enumerate(indices):  # each image's own windows, without the request's padding
            results[index] = {key: value[row] if value.ndim == 1 else value[row, :counts[row]]
                              for key, value in out.items()}


    def _check_gif(self, contents, label: str) -> None:
        """Refuse a GIF whose frames (not only its screen, the header's size) are above the
        model's pixel limit before TensorFlow's decoder allocates them, as the server does."""
        if not isinstance(contents, bytes) or not contents.startswith(b"GIF8"):
            return
        limit = self.metadata.get("crops", {}).get("max_pixels")
        pixels = gif_pixels(contents)
        if limit is not None and pixels > limit:
            raise ImageError(f"cannot score {label}: image exceeds the pixel limit: its GIF screen and frames hold "
                             f"{pixels} pixels, above max_pixels={limit}")

    def _check_scores(self, scores: np.ndarray, labels: list[str]) -> None:
        """The graph's `bounded_score` rule, for SavedModels whose graph lacks it."""
        low, high = SCORE_RANGE
        bad = ~sane_scores(scores)
        if bad.any():
            row = int(np.argmax(bad))
            raise ModelError(f"{self.source}: {SCORE_ERROR} [{low:g}, {high:g}]: the model is broken "
                             f"(corrupt weights?): {labels[row]} scored {scores[row]:.6g}")


def error_message(error) -> str:
    """The readable part of a TensorFlow op error's message."""
    return error_reason(error.message) or type(error).__name__


def _normalise(item, index: int, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES):
    """(bytes or uint8 [H, W, 3] array, label for messages)."""
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        return artifacts.read_regular_file(path, max_file_bytes, "image"), path
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item), f"images[{index}] (bytes)"
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[-1] != 3:
            raise ImageError(f"images[{index}]: arrays must be uint8 [H, W, 3], got {item.dtype} {list(item.shape)}")
        return np.ascontiguousarray(item), f"images[{index}] (array)"
    raise ImageError(f"images[{index}]: expected a path, bytes or a uint8 array, got {type(item).__name__}")


def _stack(results: list[dict]) -> dict:
    """Per-image results -> arrays; crop arrays padded to the longest window list with
    empty windows [0, 0, 0, 0] of weight, score and saliency 0 (as the export pads)."""
    longest = max(len(r["crop_windows"]) for r in results)

    def padded(value):
        return np.pad(value, [(0, longest - len(value))] + [(0, 0)] * (value.ndim - 1))

    return {key: np.stack([r[key] if key in ("score", "mos") else padded(r[key]) for r in results])
            for key in OUTPUT_KEYS}


def _empty() -> dict:
    shapes = {"score": [0], "mos": [0], "crop_scores": [0, 0], "crop_weights": [0, 0],
              "crop_windows": [0, 0, 4], "crop_saliency": [0, 0]}
    return {key: np.zeros(shapes[key], np.float32) for key in OUTPUT_KEYS}
