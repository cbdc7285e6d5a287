"""Scoring images with a branch model and measuring it against subjective scores."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_lmiqa import metrics as iqa_metrics
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.datasets.records import ScoreScale
from keras_lmiqa.pipeline import inference_dataset, raise_for_bad_image


def predict_quality(model, paths, config: TrainConfig, batch_size: int = 32) -> np.ndarray:
    """Normalised quality (higher = better) of each image, on the inference crop grid."""
    if not len(paths):
        return np.zeros([0], np.float32)
    score_fn = tf.function(lambda crops: model(crops, training=False)["score"], reduce_retracing=True)
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
