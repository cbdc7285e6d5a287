"""Scoring images with a branch model and measuring it against subjective scores."""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from keras_lmiqa import metrics as iqa_metrics
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.datasets.records import ScoreScale
from keras_lmiqa.pipeline import inference_dataset, raise_for_bad_image


# One traced scoring function per model: validation runs every epoch on the same model.
_SCORE_FUNCTIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _score_function(model):
    if model not in _SCORE_FUNCTIONS:
        held = weakref.ref(model)  # the cached function must not keep its model alive
        _SCORE_FUNCTIONS[model] = tf.function(lambda crops: held()(crops, training=False)["score"],
                                              reduce_retracing=True)
    return _SCORE_FUNCTIONS[model]


def predict_quality(model, paths, config: TrainConfig, batch_size: int = 32) -> np.ndarray:
    """Normalised quality (higher = better) of each image, on the inference crop grid."""
    if not len(paths):
        return np.zeros([0], np.float32)
    score_fn = _score_function(model)
    scores = []
    try:
        for batch in inference_dataset(paths, config, batch_size):
            scores.append(score_fn(batch["crops"]).numpy())
    except tf.errors.InvalidArgumentError as error:
        raise_for_bad_image(paths, config.max_pixels, error)
    return np.concatenate(scores).astype(np.float32)


def evaluate_records(model, records, scale: ScoreScale, config: TrainConfig) -> tuple[dict, np.ndarray]:
    """Metrics on the dataset's own scale, and the predicted scores on that scale."""
    quality = predict_quality(model, [r.path for r in records], config)
    predicted_mos = np.asarray(scale.to_mos(quality), np.float64)
    return iqa_metrics.evaluate(predicted_mos, np.array([r.mos for r in records], np.float64)), predicted_mos
