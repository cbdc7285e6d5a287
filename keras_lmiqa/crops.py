"""Multi-scale crop windows and cutting them (TensorFlow ops, graph-safe).

A window is `[y0, x0, y1, x1]` in continuous pixel coordinates of the image it comes
from (the window covers `[y0, y1) x [x0, x1)`). Windows are square with side
`crop_size / r` for each scale `r`, clamped to the image's short side, so an image
smaller than a window is upscaled when the window is resized to `crop_size`.

Training (`training_windows`): K random windows cycling through the scales; the
anchor is the most salient (or a random one when saliency is off); P extra views of
the anchor's centre at the other scales are its positives. Inference
(`grid_windows`): a fixed grid of `grid_size x grid_size` windows at every scale.
`cut_crops` cuts every window of a batch with one `tf.image.crop_and_resize` call.
"""

from __future__ import annotations

import tensorflow as tf

ROLE_ANCHOR, ROLE_NON_SALIENT, ROLE_POSITIVE = 0, 1, 2
EDGE = 1e-3  # pixels


def window_sides(height, width, crop_size: int, scales) -> tf.Tensor:
    """Side of the window at each scale, clamped to the image's short side: [len(scales)]."""
    short = tf.cast(tf.minimum(height, width), tf.float32)
    wanted = float(crop_size) / tf.constant(scales, tf.float32)
    return tf.minimum(wanted, short)


def _square(cy, cx, side, height, width):
    """Square windows of `side` centred at (cy, cx), shifted to lie inside the image."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    y0 = tf.clip_by_value(cy - side / 2.0, 0.0, h - side)
    x0 = tf.clip_by_value(cx - side / 2.0, 0.0, w - side)
    return tf.stack([y0, x0, y0 + side, x0 + side], axis=-1)


def random_windows(height, width, crop_size: int, scales, num_crops: int, seed) -> tf.Tensor:
    """K random windows, scales cycling so each scale appears: [K, 4].

    `seed` is a stateless seed (shape [2] int), making the draw deterministic.
    """
    sides = window_sides(height, width, crop_size, scales)
    side = tf.gather(sides, tf.range(num_crops) % len(scales))
    u = tf.random.stateless_uniform([num_crops, 2], seed=seed)
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    y0 = u[:, 0] * (h - side)
    x0 = u[:, 1] * (w - side)
    return tf.stack([y0, x0, y0 + side, x0 + side], axis=-1)


def positive_windows(anchor, anchor_scale_index, height, width, crop_size: int, scales, num_positives: int):
    """P views of the anchor's centre at the other scales (cycling): [P, 4].

    With a single scale the views repeat the anchor's window (they differ by flip).
    Batched too: anchors [..., 4] with scale indices [...] give [..., P, 4], each row
    exactly what the single call gives (the pipeline scores every candidate's views
    in one saliency look-up before it knows which window is the anchor).
    """
    anchor = tf.convert_to_tensor(anchor)
    if num_positives == 0:
        return tf.zeros(tf.concat([tf.shape(anchor)[:-1], [0, 4]], 0), tf.float32)
    n = len(scales)
    # Scale indices other than the anchor's, in order, cycling to fill P views.
    offsets = 1 + tf.range(num_positives) % max(n - 1, 1)
    index = tf.convert_to_tensor(anchor_scale_index, tf.int32)[..., tf.newaxis]
    other = (index + offsets) % n if n > 1 else tf.zeros_like(index + offsets)
    side = tf.gather(window_sides(height, width, crop_size, scales), other)  # [..., P]
    cy = (anchor[..., 0] + anchor[..., 2]) / 2.0
    cx = (anchor[..., 1] + anchor[..., 3]) / 2.0
    centre_y = cy[..., tf.newaxis] + tf.zeros_like(side)
    centre_x = cx[..., tf.newaxis] + tf.zeros_like(side)
    return _square(centre_y, centre_x, side, height, width)


def grid_windows(height, width, crop_size: int, scales, grid_size: int) -> tf.Tensor:
    """The deterministic inference grid: `grid_size^2` windows per scale: [S * g * g, 4]."""
    sides = window_sides(height, width, crop_size, scales)  # [S]
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    steps = tf.linspace(0.0, 1.0, grid_size) if grid_size > 1 else tf.constant([0.5])
    ys = steps[None, :] * (h - sides[:, None])  # [S, g]
    xs = steps[None, :] * (w - sides[:, None])
    y0 = tf.repeat(ys, grid_size, axis=1)  # [S, g*g], row-major over (y, x)
    x0 = tf.tile(xs, [1, grid_size])
    side = tf.repeat(sides[:, None], grid_size * grid_size, axis=1)
    windows = tf.stack([y0, x0, y0 + side, x0 + side], axis=-1)
    return tf.reshape(windows, [-1, 4])


def normalised(windows, height, width) -> tf.Tensor:
    """Windows as fractions of the image size, for saliency look-ups: [N, 4]."""
    scale = tf.cast(tf.stack([height, width, height, width]), tf.float32)
    return windows / scale


def crop_boxes(windows, padded_height, padded_width, crop_size: int, flip=None) -> tf.Tensor:
    """`tf.image.crop_and_resize` boxes that sample each window at pixel centres.

    crop_and_resize maps box coordinate b to pixel index b * (size - 1); sample i of a
    window [a0, a1) sits at a0 + (i + 0.5) * (a1 - a0) / crop_size - 0.5. `flip` ([N]
    bool) mirrors a crop horizontally by swapping its x coordinates, at no cost.
    Windows are assumed to hold at least one pixel (side >= 1).
    """
    y0, x0, y1, x1 = tf.unstack(windows, axis=-1)
    half_y = 0.5 * (y1 - y0) / crop_size
    half_x = 0.5 * (x1 - x0) / crop_size
    hp = tf.cast(tf.maximum(padded_height - 1, 1), tf.float32)
    wp = tf.cast(tf.maximum(padded_width - 1, 1), tf.float32)
    # Upscaled windows (side < crop_size) would sample up to half a pixel outside the
    # window, i.e. into padding: clamp the first/last samples to the window's pixels.
    # EDGE keeps float rounding from landing a sample a hair outside the image, where
    # crop_and_resize would write a row of zeros (and the result would depend on padding).
    # A one-pixel side makes the two EDGE clamps cross: its centre bounds them both.
    cy = 0.5 * (y0 + y1 - 1.0)
    cx = 0.5 * (x0 + x1 - 1.0)
    top = tf.minimum(tf.maximum(y0 + half_y - 0.5, y0 + EDGE), cy) / hp
    bottom = tf.maximum(tf.minimum(y1 - half_y - 0.5, y1 - 1.0 - EDGE), cy) / hp
    left = tf.minimum(tf.maximum(x0 + half_x - 0.5, x0 + EDGE), cx) / wp
    right = tf.maximum(tf.minimum(x1 - half_x - 0.5, x1 - 1.0 - EDGE), cx) / wp
    if flip is not None:
        left, right = tf.where(flip, right, left), tf.where(flip, left, right)
    return tf.stack([top, left, bottom, right], axis=-1)


def cut_crops(images, windows, crop_size: int, flip=None) -> tf.Tensor:
    """Cut every window of a batch with one crop_and_resize call.

    Args:
        images: [B, H, W, 3] uint8 (a padded batch: windows refer to each image's own
            top-left-aligned pixels).
        windows: [B, N, 4] windows in pixel coordinates.
        flip: optional [B, N] bool, mirror those crops.

    Returns:
        [B, N, crop_size, crop_size, 3] uint8 crops.
    """
    shape = tf.shape(images)
    batch, count = tf.shape(windows)[0], tf.shape(windows)[1]
    flat_flip = None if flip is None else tf.reshape(flip, [-1])
    boxes = crop_boxes(tf.reshape(windows, [-1, 4]), shape[1], shape[2], crop_size, flat_flip)
    box_indices = tf.repeat(tf.range(batch), count)
    crops = tf.image.crop_and_resize(images, boxes, box_indices, [crop_size, crop_size], method="bilinear")
    crops = tf.cast(tf.clip_by_value(tf.round(crops), 0.0, 255.0), tf.uint8)
    return tf.reshape(crops, [batch, count, crop_size, crop_size, 3])
