"""Synthetic distortions made in graph (TensorFlow ops) for ordinal ranking supervision.

`distort(image, family, level, seed)` returns a distorted copy of an RGB uint8 image
[H, W, 3]: `family` indexes `FAMILIES`, `level` is 1 (mild) .. 5 (severe), `seed` a
stateless seed [2]. Everything is graph-safe with tensor arguments, so the training
pipeline makes copies inside `tf.data` maps (no `py_function`). A stronger level of one
family on one image is a worse picture: the training loss asks the model to score it
lower (`losses.ordinal_ranking_loss`).

Levels are given in pixels of the image as decoded (noise sigma on 0-255, blur sigma,
resampling factor) and span what a viewer sees at once at level 5 and barely at level 1.
The grading code (`keras_lmiqa.sensitivity`) uses its own NumPy/OpenCV implementation.
"""

from __future__ import annotations

import tensorflow as tf

from keras_lmiqa.config import SYNTHETIC_FAMILIES

# family -> parameter at levels 1..5
LEVELS: dict[str, tuple[float, ...]] = {
    "noise_luma": (5.0, 12.0, 20.0, 30.0, 45.0),  # Gaussian sigma, the same on R, G and B
    "noise_color": (5.0, 12.0, 20.0, 30.0, 45.0),  # Gaussian sigma, independent per channel
    "jpeg": (70.0, 43.0, 25.0, 12.0, 5.0),  # JPEG quality
    "blur_gaussian": (0.7, 1.3, 2.0, 3.0, 4.5),  # Gaussian sigma, pixels
    "blur_motion": (3.0, 5.0, 8.0, 11.0, 15.0),  # line length, pixels, random direction
    "over_exposure": (1.3, 1.7, 2.1, 2.6, 3.2),  # gain, clipped at 255
    "under_exposure": (0.75, 0.6, 0.45, 0.32, 0.2),  # gain
    "contrast": (0.75, 0.6, 0.45, 0.3, 0.18),  # blend factor toward the mean grey
    "downscale": (1.5, 2.0, 3.0, 4.0, 6.0),  # area down by this factor, bicubic back up
    "saturation": (0.6, 0.4, 0.25, 0.12, 0.0),  # saturation factor (0: grey)
}
FAMILIES: tuple[str, ...] = SYNTHETIC_FAMILIES  # the order of LEVELS (a test checks it)
NUM_LEVELS = 5
_GAUSSIAN_RADIUS = 14  # >= 3 sigma at the largest sigma
_MOTION_RADIUS = 8  # half the longest line, rounded up


def family_indices(names) -> list[int]:
    """Indices into FAMILIES of `names` (validated by the config)."""
    return [FAMILIES.index(name) for name in names]


def _parameter(family: str, level):
    return tf.gather(tf.constant(LEVELS[family], tf.float32), level - 1)


def _to_uint8(x):
    return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)


def _depthwise(x, kernel):
    """Convolve each channel of [H, W, 3] float with `kernel` [kh, kw], reflected borders."""
    kh, kw = kernel.shape[0], kernel.shape[1]
    padded = tf.pad(x[tf.newaxis], [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2], [0, 0]], mode="REFLECT")
    filters = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(padded, filters, [1, 1, 1, 1], "VALID")[0]


def _fits_reflection(x, radius):
    """Whether REFLECT padding by `radius` works: each side must be larger than it."""
    return tf.minimum(tf.shape(x)[0], tf.shape(x)[1]) > radius


def gaussian_noise(x, sigma, seed, per_channel: bool):
    shape = tf.shape(x) if per_channel else tf.concat([tf.shape(x)[:2], [1]], 0)
    return x + sigma * tf.random.stateless_normal(shape, seed)


def gaussian_blur(x, sigma):
    taps = tf.range(-_GAUSSIAN_RADIUS, _GAUSSIAN_RADIUS + 1, dtype=tf.float32)
    weights = tf.exp(-0.5 * tf.square(taps / sigma))
    weights = weights / tf.reduce_sum(weights)
    x = _depthwise(x, tf.reshape(weights, [-1, 1]))
    return _depthwise(x, tf.reshape(weights, [1, -1]))


def motion_blur(x, length, seed):
    """A straight line of `length` pixels at a random angle, anti-aliased across its width."""
    angle = tf.random.stateless_uniform([], seed, 0.0, 3.14159265)
    taps = tf.range(-_MOTION_RADIUS, _MOTION_RADIUS + 1, dtype=tf.float32)
    dy, dx = tf.meshgrid(taps, taps, indexing="ij")
    along = dx * tf.cos(angle) + dy * tf.sin(angle)
    across = tf.abs(-dx * tf.sin(angle) + dy * tf.cos(angle))
    kernel = tf.maximum(0.0, 1.0 - across) * tf.cast(tf.abs(along) <= length / 2.0, tf.float32)
    return _depthwise(x, kernel / tf.reduce_sum(kernel))


def jpeg(image_uint8, quality):
    return tf.cast(tf.image.adjust_jpeg_quality(image_uint8, tf.cast(quality, tf.int32)), tf.float32)


def downscale(x, factor):
    size = tf.shape(x)[:2]
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) / factor), tf.int32), 1)
    reduced = tf.image.resize(x, small, method="area")
    return tf.image.resize(reduced, size, method="bicubic")


def contrast(x, alpha):
    mean = tf.reduce_mean(x)
    return mean + alpha * (x - mean)


def saturation(x, factor):
    grey = tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
    return grey + factor * (x - grey)


def distort(image, family, level, seed) -> tf.Tensor:
    """A copy of `image` [H, W, 3] uint8 with family `family` (index into FAMILIES) at
    `level` (1..5), deterministic in `seed` [2]: [H, W, 3] uint8."""
    image = tf.convert_to_tensor(image, tf.uint8)
    level = tf.clip_by_value(tf.cast(level, tf.int32), 1, NUM_LEVELS)
    x = tf.cast(image, tf.float32)
    # Reflected borders need an image larger than the kernel radius; below that the
    # spatial families fall back to the copy itself (images that small are refused by
    # the crop rule anyway).
    blur_ok = _fits_reflection(x, _GAUSSIAN_RADIUS)
    motion_ok = _fits_reflection(x, _MOTION_RADIUS)
    branches = {
        "noise_luma": lambda: gaussian_noise(x, _parameter("noise_luma", level), seed, per_channel=False),
        "noise_color": lambda: gaussian_noise(x, _parameter("noise_color", level), seed, per_channel=True),
        "jpeg": lambda: jpeg(image, _parameter("jpeg", level)),
        "blur_gaussian": lambda: tf.cond(
            blur_ok, lambda: gaussian_blur(x, _parameter("blur_gaussian", level)), lambda: x),
        "blur_motion": lambda: tf.cond(
            motion_ok, lambda: motion_blur(x, _parameter("blur_motion", level), seed), lambda: x),
        "over_exposure": lambda: x * _parameter("over_exposure", level),
        "under_exposure": lambda: x * _parameter("under_exposure", level),
        "contrast": lambda: contrast(x, _parameter("contrast", level)),
        "downscale": lambda: downscale(x, _parameter("downscale", level)),
        "saturation": lambda: saturation(x, _parameter("saturation", level)),
    }
    out = tf.switch_case(tf.cast(family, tf.int32), [branches[name] for name in FAMILIES])
    return tf.ensure_shape(_to_uint8(out), image.shape)


def sample_group(families, num_copies: int, seed):
    """One family (uniform over the index list `families`) and `num_copies` distinct
    levels in 1..5, ascending, for one synthetic group: (family [], levels [C] int32)."""
    families = tf.constant(families, tf.int32)
    pick = tf.random.stateless_uniform([], seed, 0, tf.size(families), dtype=tf.int32)
    order = tf.argsort(tf.random.stateless_uniform([NUM_LEVELS], seed + 1))
    levels = tf.sort(order[:num_copies] + 1)
    return families[pick], tf.cast(levels, tf.int32)
