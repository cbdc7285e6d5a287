"""A small SavedModel with the LML-IQA export's signatures, for fast serving tests.

`serving_default`: images tf.string [None] -> score, mos float32 [None], crop_scores,
crop_weights float32 [None, 4]; `score_pixels`: pixels uint8 [None, None, None, 3] ->
the same. score = scale * mean pixel / 255 (scale differs per version), crop_scores the
same over the 2x2 grid quadrants, crop_weights uniform, mos = 1 + 4 * score. Corrupt
bytes raise InvalidArgumentError inside the signature, as the real export does.
"""

from __future__ import annotations

import os

import tensorflow as tf

GRID = 4


class FakeLmiqa(tf.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = tf.Variable(scale, dtype=tf.float32, trainable=False)

    def _outputs(self, pixels: tf.Tensor) -> dict:
        pixels = tf.cast(pixels, tf.float32) / 255.0
        height, width = tf.shape(pixels)[1], tf.shape(pixels)[2]
        h2, w2 = tf.maximum(height // 2, 1), tf.maximum(width // 2, 1)
        quads = [pixels[:, :h2, :w2], pixels[:, :h2, w2:], pixels[:, h2:, :w2], pixels[:, h2:, w2:]]
        crop_scores = self.scale * tf.stack([tf.reduce_mean(q, axis=[1, 2, 3]) for q in quads], axis=1)
        score = self.scale * tf.reduce_mean(pixels, axis=[1, 2, 3])
        weights = tf.fill(tf.shape(crop_scores), 1.0 / GRID)
        return {"score": score, "mos": 1.0 + 4.0 * score, "crop_scores": crop_scores, "crop_weights": weights}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_bytes(self, images):
        def one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            outputs = self._outputs(image[tf.newaxis])
            return {key: value[0] for key, value in outputs.items()}

        spec = {"score": tf.TensorSpec([], tf.float32), "mos": tf.TensorSpec([], tf.float32),
                "crop_scores": tf.TensorSpec([GRID], tf.float32), "crop_weights": tf.TensorSpec([GRID], tf.float32)}
        return tf.map_fn(one, images, fn_output_signature=spec)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")])
    def serve_pixels(self, pixels):
        return self._outputs(pixels)


def write_fake_export(export_dir: str, version: int, scale: float = 1.0) -> str:
    """Save version `version` (via a `.tmp-` folder renamed into place, like the exporter)."""
    module = FakeLmiqa(scale)
    final = os.path.join(export_dir, str(version))
    temporary = os.path.join(export_dir, f".tmp-{version}")
    tf.saved_model.save(module, temporary, signatures={
        "serving_default": module.serve_bytes.get_concrete_function(),
        "score_pixels": module.serve_pixels.get_concrete_function()})
    os.rename(temporary, final)
    return final
