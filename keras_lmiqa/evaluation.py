"""Scoring images with a branch model and measuring it against subjective scores."""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from keras_lmiqa import metrics as iqa_metrics
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.constants import SCORING_BATCH_SIZE
from keras_lmiqa.datasets.records import ScoreScale
from keras_lmiqa.inference_spec import InferenceSpec, as_inference_spec
from keras_lmiqa.models.image_quality import ImageQualityModel
from keras_lmiqa.models.layers import importance_pool
from keras_lmiqa.pipeline import inference_dataset, raise_for_bad_image

# One traced scoring function per model: validation runs every epoch on the same model.
_SCORE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _score_function(model):
    """crops [B, G, S, S, 3], mask [B, G] -> image scores [B], padding crops left out."""
    if model not in _SCORE_FUNCTIONS:
        held = weakref.ref(model)  # the cached function must not keep its model alive

        def score(crops, mask):
            outputs = held()(crops, training=False)
            return importance_pool(outputs["crop_scores"], outputs["crop_logits"], mask)[0]

        _SCORE_FUNCTIONS[model] = tf.function(score, reduce_retracing=True)
    return _SCORE_FUNCTIONS[model]


def predict_quality(model, paths, settings: InferenceSpec | TrainConfig,
                    batch_size: int = SCORING_BATCH_SIZE) -> np.ndarray:
    """Normalised quality (higher = better) of each image, on the inference crop grid."""
    return predict_quality_many({"model": model}, paths, settings, batch_size)["model"]


def predict_quality_many(models: dict, paths, settings: InferenceSpec | TrainConfig,
                         batch_size: int = SCORING_BATCH_SIZE) -> dict[str, np.ndarray]:
    """`predict_quality` for several models of one spec, cutting each batch's crops once.

    `settings`: the models' `InferenceSpec`, or the run's TrainConfig (its spec is
    derived). A model is a branch (crops in) or a standalone `ImageQualityModel`,
    scored here by its branch.
    """
    if not len(paths):
        return {name: np.zeros([0], np.float32) for name in models}
    spec = as_inference_spec(settings)
    score_fns = {name: _score_function(model.branch if isinstance(model, ImageQualityModel) else model)
                 for name, model in models.items()}
    scores: dict[str, list] = {name: [] for name in models}
    try:
        for batch in inference_dataset(paths, spec, batch_size):
            for name, score_fn in score_fns.items():
                scores[name].append(score_fn(batch["crops"], batch["mask"]).numpy())
    except tf.errors.InvalidArgumentError as error:
        raise_for_bad_image(paths, spec.max_pixels, error)
    return {name: np.concatenate(values).astype(np.float32) for name, values in scores.items()}


def evaluate_records(model, records, scale: ScoreScale,
                     settings: InferenceSpec | TrainConfig) -> tuple[dict, np.ndarray]:
    """Metrics on the dataset's own scale, and the predicted scores on that scale."""
    return evaluate_many({"model": model}, records, scale, settings)["model"]


def evaluate_many(models: dict, records, scale: ScoreScale,
                  settings: InferenceSpec | TrainConfig) -> dict[str, tuple[dict, np.ndarray]]:
    """`evaluate_records` for each of several models (e.g. the two branches) in one pass."""
    qualities = predict_quality_many(models, [r.path for r in records], settings)
    target = np.array([r.mos for r in records], np.float64)
    results = {}
    for name, quality in qualities.items():
        predicted_mos = np.asarray(scale.to_mos(quality), np.float64)
        results[name] = (iqa_metrics.evaluate(predicted_mos, target), predicted_mos)
    return results
