"""Custom layers of the LML-IQA branch model (keras.ops, serialisable)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class MergeCropAxis(keras.layers.Layer):
    """Folds the crop axis into the batch: `(batch, crops, ...)` -> `(batch * crops, ...)`."""

    def call(self, inputs):
        shape = ops.shape(inputs)
        return ops.reshape(inputs, (-1,) + tuple(shape[2:]))

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class SplitCropAxis(keras.layers.Layer):
    """Restores the crop axis: `[(batch * crops, ...), reference (batch, crops, ...)]` -> `(batch, crops, ...)`."""

    def call(self, inputs):
        values, reference = inputs
        ref_shape = ops.shape(reference)
        return ops.reshape(values, (ref_shape[0], ref_shape[1]) + tuple(ops.shape(values)[1:]))

    def compute_output_shape(self, input_shape):
        values_shape, reference_shape = input_shape
        return tuple(reference_shape[:2]) + tuple(values_shape[1:])


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class ImportancePooling(keras.layers.Layer):
    """Image score = sum_k softmax_k(logit) * crop_score.

    Inputs `[crop_scores (batch, crops), logits (batch, crops)]`; returns
    `[score (batch,), weights (batch, crops)]`. Scores are normalised quality,
    higher = better.
    """

    def call(self, inputs):
        scores, logits = inputs
        return importance_pool(scores, logits)

    def compute_output_shape(self, input_shape):
        scores_shape = input_shape[0]
        return (scores_shape[0],), tuple(scores_shape)


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class Squeeze(keras.layers.Layer):
    """Drops a trailing axis of size 1: `(..., 1)` -> `(...)`."""

    def call(self, inputs):
        return ops.squeeze(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class ClassTokenOutput(keras.layers.Layer):
    """ViT output: the class token's features (token 0), `(batch, tokens, dim)` -> `(batch, dim)`.

    A named layer rather than a `Lambda`, so models load in Keras safe mode.
    """

    def call(self, inputs):
        return inputs[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class ReverseChannels(keras.layers.Layer):
    """RGB <-> BGR: reverses the last axis (caffe-style backbones expect BGR)."""

    def call(self, inputs):
        return ops.flip(inputs, axis=-1)


def importance_pool(scores, logits, mask=None):
    """sum_k softmax_k(logits) * scores over the last axis; returns (score, weights).

    `mask` (bool, the shape of `scores`): only those crops count, the others (padding
    crops of a padded batch of inference grids) get weight 0 and change nothing.
    """
    if mask is None:
        weights = ops.softmax(logits, axis=-1)
    else:
        weights = ops.softmax(ops.where(mask, logits, ops.full_like(logits, -1e9)), axis=-1)
        weights = ops.where(mask, weights, ops.zeros_like(weights))
        scores = ops.where(mask, scores, ops.zeros_like(scores))
    return ops.sum(weights * scores, axis=-1), weights


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class LocalContrastNormalization(keras.layers.Layer):
    """(x - local mean) / (local std + c) per channel, with a Gaussian window.

    The classic NR-IQA input normalisation (Kang et al., CVPR 2014): it removes
    content brightness and contrast and keeps the local structure where blur, noise
    and compression show. Input `(n, H, W, C)` float pixels in [0, 255].

    It computes in float32 unless given another `dtype`, also under a mixed-precision
    policy: E[x^2] - E[x]^2 of 0-255 values in float16 (steps of 32 near 255^2) is
    mostly rounding error.
    """

    def __init__(self, sigma: float = 7.0 / 6.0, radius: int = 3, epsilon: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if sigma <= 0 or radius < 1:
            raise ValueError(f"sigma must be > 0 and radius >= 1. Received: sigma={sigma}, radius={radius}")
        self.sigma, self.radius, self.epsilon = float(sigma), int(radius), float(epsilon)

    def build(self, input_shape):
        import numpy as np

        axis = np.arange(-self.radius, self.radius + 1, dtype="float32")
        g = np.exp(-0.5 * (axis / self.sigma) ** 2)
        kernel = np.outer(g, g) / np.outer(g, g).sum()
        self._kernel = np.tile(kernel[:, :, None, None], (1, 1, input_shape[-1], 1)).astype("float32")

    def _blur(self, x):
        return ops.depthwise_conv(x, ops.cast(self._kernel, x.dtype), strides=1, padding="same")

    def call(self, inputs):
        mean = self._blur(inputs)
        variance = ops.maximum(self._blur(ops.square(inputs)) - ops.square(mean), 0.0)
        return (inputs - mean) / (ops.sqrt(variance) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "radius": self.radius, "epsilon": self.epsilon}
