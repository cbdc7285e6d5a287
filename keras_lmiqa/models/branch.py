"""The LML-IQA branch model: backbone, then per-crop embedding, score and importance.

One branch is a functional Keras model

    crops (batch, crops, S, S, 3) uint8
      -> embeddings (batch, crops, D)  L2-normalised projection (2-layer MLP)
         crop_scores (batch, crops)    normalised quality, higher = better
         crop_logits (batch, crops)    importance logits
         crop_weights (batch, crops)   softmax of the logits over the crops
         score (batch,)                sum_k weight_k * crop_score_k

The crop axis is dynamic: training feeds K + P crops, inference the G grid crops.
Training uses two branches of this architecture (student and teacher); see
`keras_lmiqa.training`. Reference: LML-IQA, arXiv 2406.19247.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_lmiqa.config import TrainConfig
from keras_lmiqa.models.backbones import build_backbone
from keras_lmiqa.models.layers import ImportancePooling, MergeCropAxis, SplitCropAxis, Squeeze

OUTPUTS = ("score", "crop_scores", "crop_weights", "crop_logits", "embeddings")


def build_branch(config: TrainConfig, name: str = "lmiqa", weights: str | None = None) -> keras.Model:
    """Build one branch for `config` (backbone weights from `weights`, default `config.weights`)."""
    size = config.crop_size
    crops = keras.Input((None, size, size, 3), dtype="uint8", name="crops")
    pixels = layers.Activation("linear", dtype="float32", name="to_float")(MergeCropAxis(name="merge_crops")(crops))
    backbone = build_backbone(config.backbone, size, config.weights if weights is None else weights,
                              freeze_batchnorm=config.freeze_pretrained_bn and config.weights != "none",
                              options=config.backbone_options)
    features = backbone(pixels)
    if config.dropout:
        features = layers.Dropout(config.dropout, name="feature_dropout")(features)

    hidden = layers.Dense(config.head_units, activation="relu", name="projection_hidden")(features)
    embedding = layers.Dense(config.embedding_dim, name="projection_out")(hidden)
    embedding = layers.UnitNormalization(axis=-1, dtype="float32", name="l2_normalize")(embedding)

    quality_hidden = layers.Dense(config.head_units, activation="relu", name="quality_hidden")(features)
    # Start every crop near the middle of the quality range with equal importance: a
    # random initial scale costs the first epochs on CPU-sized runs.
    quality_out = layers.Dense(1, dtype="float32", name="quality_out",
                               kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                               bias_initializer=keras.initializers.Constant(0.5))
    importance_out = layers.Dense(1, dtype="float32", name="importance_out", kernel_initializer="zeros")
    crop_score = Squeeze(name="squeeze_score")(quality_out(quality_hidden))
    crop_logit = Squeeze(name="squeeze_logit")(importance_out(quality_hidden))

    split = SplitCropAxis(name="split_crops")
    crop_scores = split([crop_score, crops])
    crop_logits = SplitCropAxis(name="split_logits")([crop_logit, crops])
    embeddings = SplitCropAxis(name="split_embeddings")([embedding, crops])
    score, weights_out = ImportancePooling(name="importance_pooling", dtype="float32")([crop_scores, crop_logits])
    outputs = {
        "score": score,
        "crop_scores": crop_scores,
        "crop_weights": weights_out,
        "crop_logits": crop_logits,
        "embeddings": embeddings,
    }
    return keras.Model(crops, outputs, name=name)
