"""The working size: a photo is judged at the scale the model was trained on, whatever its megapixels.

A model with a working long side L (`InferenceSpec.working_long_side`, 0 = none) scores
an image whose long side exceeds L downscaled to long side L, aspect ratio kept, before
any window or saliency map is made; smaller images are left exactly as they are. A 12 MP
phone photo and the same picture at screen size then show the model the same pixels,
and the window count is bounded (`InferenceSpec.max_windows`).

- `working_shape`: the (height, width) an image of a given size is scored at;
- `decode_working`: encoded bytes -> the working image and the full displayed size. A
  JPEG above the working size is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (DCT-domain
  downscaling, `tf.io.decode_jpeg(ratio=...)`), the largest reduction that keeps its long
  side >= L, so a 12 MP JPEG is never decoded whole for L = 512; other formats decode
  fully (within `max_pixels`);
- `to_working_size`: the antialiased resize (Lanczos-3 with `antialias=True`: a sharp
  filter that does not alias, where bilinear would and area would blur an upscaled
  photo's edges more than its downscale restores).
Graph ops only: the same functions run in tf.data maps, the Keras model and the export.
"""

from __future__ import annotations

import tensorflow as tf

from keras_lmiqa import image_io

JPEG_RATIOS = (8, 4, 2)  # the reductions libjpeg's scaled IDCT gives, largest first


def working_shape(height, width, long_side: int) -> tf.Tensor:
    """int32 [2]: the (height, width) an image of `height x width` is scored at.

    Unchanged when its long side is <= `long_side` (or `long_side` is 0); otherwise the
    long side becomes `long_side` and the short side its rounded proportion (>= 1).
    """
    size = tf.cast(tf.stack([height, width]), tf.int64)
    if not long_side:
        return tf.cast(size, tf.int32)
    longest = tf.maximum(tf.reduce_max(size), 1)
    # Integer arithmetic, rounded half up: the same shape from the header's size and the pixels'.
    scaled = tf.maximum((2 * size * long_side + longest) // (2 * longest), 1)
    return tf.cast(tf.where(longest > long_side, scaled, size), tf.int32)


def jpeg_ratio(height, width, long_side: int) -> tf.Tensor:
    """int32: the largest libjpeg reduction (8, 4, 2, else 1) whose output long side
    (ceil(long / ratio)) stays >= `long_side`; 1 when `long_side` is 0."""
    longest = tf.cast(tf.maximum(height, width), tf.int64)
    ratio = tf.constant(1, tf.int32)
    if not long_side:
        return ratio
    for candidate in reversed(JPEG_RATIOS):  # 2, then 4, then 8: the last that fits wins
        fits = (longest + candidate - 1) // candidate >= long_side
        ratio = tf.where(fits, tf.constant(candidate, tf.int32), ratio)
    return ratio


def to_working_size(image, long_side: int, full_size=None) -> tf.Tensor:
    """uint8 [H, W, 3] -> the image at `working_shape` of `full_size` (default its own size).

    `full_size` is the displayed size of the photo `image` was decoded from (a JPEG decoded
    at reduced scale is smaller than it): the result has the shape the full-size pixels
    would give. An image already at that shape is returned untouched (bit for bit).
    """
    image = tf.convert_to_tensor(image)
    if not long_side:
        return image
    shape = tf.shape(image)[:2]
    full_size = shape if full_size is None else full_size
    target = working_shape(full_size[0], full_size[1], long_side)

    def resize():
        small = tf.image.resize(tf.cast(image, tf.float32), target, method="lanczos3", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(small), 0.0, 255.0), tf.uint8)

    same = tf.reduce_all(tf.equal(shape, target))
    return tf.ensure_shape(tf.cond(same, lambda: image, resize), [None, None, 3])


def in_full_pixels(windows, working_size, full_size) -> tf.Tensor:
    """Windows [G, 4] on the working image (`working_size` [2]) -> the same windows in the full
    image's pixels (`full_size` [2]); unchanged (times 1.0) when the two sizes are equal."""
    factor = tf.cast(full_size, tf.float32) / tf.cast(tf.maximum(working_size, 1), tf.float32)
    return windows * tf.tile(factor, [2])


def decode_working(contents, max_pixels: int, long_side: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Encoded JPEG/PNG/GIF/BMP bytes -> (working image uint8 [h, w, 3], full displayed size int32 [2]).

    `image_io.decode_image` (checks, EXIF orientation, pixel limit on the declared size)
    with a JPEG decoded at `jpeg_ratio` of its header size, then `to_working_size`.
    With `long_side` 0 the image is `decode_image`'s, untouched.
    """
    if not long_side:
        image = image_io.decode_image(contents, max_pixels)
        return image, tf.shape(image)[:2]
    contents = tf.convert_to_tensor(contents, tf.string)
    image, full_size = image_io.decode_image_reduced(
        contents, max_pixels, lambda height, width: jpeg_ratio(height, width, long_side))
    return to_working_size(image, long_side, full_size), full_size


__all__ = ["JPEG_RATIOS", "decode_working", "in_full_pixels", "jpeg_ratio", "to_working_size", "working_shape"]
