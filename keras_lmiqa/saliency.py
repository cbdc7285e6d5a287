"""Spectral-residual saliency maps and window scoring, in TensorFlow ops.

Reference: X. Hou and L. Zhang, "Saliency Detection: A Spectral Residual
Approach", CVPR 2007. This is preprocessing code (`tf.*`, not `keras.ops`): every
function here runs eagerly, inside `tf.data` graph-mode maps and inside an exported
SavedModel graph, and works with unknown (dynamic) image sizes.

Saliency maps are float32 in [0, 1], higher = more salient.

Window (box) convention used by :func:`window_saliency`: a box is
`(y1, x1, y2, x2)` in normalised units, the same layout as the `boxes` argument of
`tf.image.crop_and_resize`, where 0 is the top/left edge of the image and 1 the
bottom/right edge. On a map of `h` rows, row `i` covers the interval
`[i / h, (i + 1) / h)`; a box covers each pixel with weight equal to the fraction of
the pixel's area inside the box, so a box whose edges lie on pixel boundaries
(`y1 = a / h`, `y2 = b / h`, ...) is exactly the mean of `map[a:b, c:d]`. This
"pixel-area" convention is resolution independent (it matches the half-pixel
centres `tf.image.resize` uses), which is what lets windows chosen on the full image
be scored on the 64-px map. A crop of pixel rows `[top, top + size)` on an `H`-row
image is `y1 = top / H`, `y2 = (top + size) / H`; `crop_and_resize` itself maps
`[0, 1]` to pixel centres `0 .. H - 1`, which differs from this by under one
full-resolution pixel.
"""

import math

import numpy as np
import tensorflow as tf

_LOG_EPS = 1e-6  # added to the FFT amplitude before the log (pixels in [0, 1]).
_NORM_EPS = 1e-12
_FLAT_TOLERANCE = 1e-4  # grey-level range below which an image is "flat".


def _check_positive(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")


def _check_image(image):
    image = tf.convert_to_tensor(image)
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(
            f"`image` must have shape [H, W, 3]. Received: image.shape={image.shape}"
        )
    if image.shape[-1] is not None and image.shape[-1] not in (1, 3):
        raise ValueError(
            f"`image` must have 1 or 3 channels. Received: image.shape={image.shape}"
        )
    if not (image.dtype.is_integer or image.dtype.is_floating):
        raise ValueError(
            f"`image` must be an integer or float tensor. Received: image.dtype={image.dtype}"
        )
    return image


SUBSAMPLE_ABOVE = 16  # images more than 16x the map's long side are subsampled first


def _small_gray(image, long_side):
    """[H, W, C] image -> [h, w] float32 grey levels in [0, 1], long side `long_side`.

    Resizing (antialiased, bilinear) and the grey conversion are both linear, so the
    colour image is resized first: it is ~2x faster than converting the full-size image.
    """
    shape = tf.shape(image)
    small_h, small_w = _small_size(shape[0], shape[1], long_side)
    # An antialiased resize reads every pixel: ~80 ms for a 4096 px photo. Far above
    # the map's size, a nearest-neighbour subsample to 8x the map first keeps 64 samples
    # per map pixel for the antialiasing (the map is blurred anyway) and costs ~7 ms.
    image = tf.cond(
        tf.reduce_max(shape[:2]) > SUBSAMPLE_ABOVE * long_side,
        lambda: tf.image.resize(image[tf.newaxis], 8 * tf.stack([small_h, small_w]), method="nearest")[0],
        lambda: image,
    )
    small = tf.image.resize(
        tf.cast(image, tf.float32)[tf.newaxis], tf.stack([small_h, small_w]),
        method="bilinear", antialias=True,
    )[0]
    if image.dtype.is_integer:
        small = small * (1.0 / image.dtype.max)
    if image.shape[-1] == 1:
        return small[..., 0]
    return tf.image.rgb_to_grayscale(small)[..., 0]


def _small_size(height, width, long_side):
    """Dynamic (h, w) with the long side equal to `long_side`, aspect ratio kept."""
    height_f = tf.cast(height, tf.float32)
    width_f = tf.cast(width, tf.float32)
    scale = tf.cast(long_side, tf.float32) / tf.maximum(tf.maximum(height_f, width_f), 1.0)
    small_h = tf.maximum(tf.cast(tf.round(height_f * scale), tf.int32), 1)
    small_w = tf.maximum(tf.cast(tf.round(width_f * scale), tf.int32), 1)
    return small_h, small_w


def _normalised_filter(x, kernel_1d, max_side):
    """Separable filter of a [h, w] map with zero padding, renormalised at borders.

    Dividing by the filtered all-ones map makes border pixels a weighted mean over the
    neighbours that exist, so it works for any map size (even 1 x w) without the
    size limits of reflect padding. Written as two small matrix products with banded
    matrices cut from one constant (h, w <= `max_side`): a handful of ops instead of
    two single-channel conv2d calls, and the renormalisation folds into the matrices.
    """
    band = tf.constant(_band(max_side, kernel_1d))
    shape = tf.shape(x)
    rows = band[:shape[0], :shape[0]]
    cols = band[:shape[1], :shape[1]]
    rows = rows / tf.reduce_sum(rows, axis=1, keepdims=True)
    cols = cols / tf.reduce_sum(cols, axis=1, keepdims=True)
    return tf.matmul(tf.matmul(rows, x), cols, transpose_b=True)


def _band(size, kernel_1d):
    """[size, size] float32 numpy matrix: row i holds kernel[j - i + radius] at column j
    (a cross-correlation, as conv2d with SAME zero padding). Its top-left n x n block is
    the matrix for a signal of length n; dividing each row by its sum renormalises."""
    taps = len(kernel_1d)
    offset = np.arange(size)[None, :] - np.arange(size)[:, None] + taps // 2
    inside = (offset >= 0) & (offset < taps)
    return np.where(inside, np.asarray(kernel_1d, np.float64)[np.clip(offset, 0, taps - 1)], 0.0).astype(np.float32)


def _gaussian_kernel(sigma):
    radius = max(1, int(math.ceil(3.0 * sigma)))
    weights = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def spectral_residual_small(image, long_side=64, blur_sigma=2.5):
    """Spectral-residual saliency at low resolution (Hou & Zhang, CVPR 2007).

    Steps: resize (antialiased bilinear) so the long side is `long_side` px;
    grayscale (ITU-R 601 weights); 2-D FFT; log amplitude minus its 3x3 mean (box
    filter, mean over the existing neighbours at the border); inverse FFT with the
    original phase; squared magnitude; Gaussian blur (`blur_sigma` px at the small
    resolution, kernel radius `ceil(3 * sigma)`, border-renormalised); min-max
    normalisation to [0, 1]. Images whose small grayscale version varies by less than
    1e-4 (in [0, 1] grey units) are flat and get an all-zero map (the spectral
    residual of a flat image is numerical noise).

    Args:
        image: `[H, W, 3]` (or `[H, W, 1]`) tensor, uint8 or float in [0, 1]; H and W
            may be unknown statically.
        long_side: int, long side of the saliency map in pixels. Defaults to 64.
        blur_sigma: float, standard deviation of the Gaussian blur in small-map
            pixels; 0 disables the blur. Defaults to 2.5 (Hou & Zhang's code).

    Returns:
        `[h, w]` float32 map in [0, 1] (higher = more salient), with
        `max(h, w) == long_side` and the aspect ratio of the image.
    """
    if not isinstance(long_side, int) or isinstance(long_side, bool) or long_side < 1:
        raise ValueError(
            f"`long_side` must be a positive integer. Received: long_side={long_side!r}"
        )
    if blur_sigma != 0:
        _check_positive("blur_sigma", blur_sigma)
    small = _small_gray(_check_image(image), long_side)

    spectrum = tf.signal.fft2d(tf.complex(small, tf.zeros_like(small)))
    log_amplitude = tf.math.log(tf.abs(spectrum) + _LOG_EPS)
    phase = tf.math.angle(spectrum)
    residual = log_amplitude - _normalised_filter(log_amplitude, [1.0 / 3.0] * 3, long_side)
    magnitude = tf.exp(residual)
    reconstructed = tf.signal.ifft2d(
        tf.complex(magnitude * tf.cos(phase), magnitude * tf.sin(phase))
    )
    saliency = tf.square(tf.math.real(reconstructed)) + tf.square(tf.math.imag(reconstructed))
    if blur_sigma:
        saliency = _normalised_filter(saliency, _gaussian_kernel(float(blur_sigma)), long_side)

    low = tf.reduce_min(saliency)
    high = tf.reduce_max(saliency)
    span = high - low
    normalised = (saliency - low) / tf.maximum(span, _NORM_EPS * tf.abs(high) + _NORM_EPS)
    normalised = tf.clip_by_value(normalised, 0.0, 1.0)
    is_flat = tf.reduce_max(small) - tf.reduce_min(small) < _FLAT_TOLERANCE
    return tf.where(is_flat, tf.zeros_like(normalised), normalised)


def spectral_residual(image, long_side=64, blur_sigma=2.5):
    """Spectral-residual saliency map at the image's own resolution.

    Computes :func:`spectral_residual_small` and resizes it back (bilinear) to the
    image size.

    Args:
        image: `[H, W, 3]` (or `[H, W, 1]`) tensor, uint8 or float in [0, 1]; H and W
            may be unknown statically.
        long_side: int, long side of the working resolution. Defaults to 64.
        blur_sigma: float, Gaussian blur sigma in working-resolution pixels.
            Defaults to 2.5.

    Returns:
        `[H, W]` float32 saliency map in [0, 1], higher = more salient.
    """
    image = tf.convert_to_tensor(image)
    small = spectral_residual_small(image, long_side=long_side, blur_sigma=blur_sigma)
    size = tf.shape(image)[:2]
    full = tf.image.resize(small[tf.newaxis, ..., tf.newaxis], size, method="bilinear")
    return tf.clip_by_value(full[0, ..., 0], 0.0, 1.0)


def _interp_axis(coords, length):
    """Pixel-unit coordinates in [0, length] -> (lower SAT index, fraction)."""
    base = tf.clip_by_value(tf.floor(coords), 0.0, tf.cast(length - 1, coords.dtype))
    return tf.cast(base, tf.int32), coords - base


def window_saliency_batch(saliency_maps, boxes):
    """Mean saliency inside each box, for a batch of same-size maps.

    Long: the shape checks, the summed-area table and its 16-gather bilinear lookup
    are one graph-mode computation on shared index tensors; kept together so the
    exactness argument below reads in one place.

    Uses a summed-area table (two cumulative sums, in float64) whose bilinear
    interpolation is the exact integral of the piecewise-constant map, so the cost per
    box is constant (16 gathers) whatever its area. See the module docstring for the
    box convention (pixel-area, `(y1, x1, y2, x2)` in [0, 1]). Coordinates are clipped
    to [0, 1] and each pair is sorted; a box with (almost) zero area gets the value of
    the pixel containing its centre.

    Args:
        saliency_maps: `[batch, h, w]` float maps.
        boxes: `[batch, n, 4]` float boxes `(y1, x1, y2, x2)`, normalised.

    Returns:
        `[batch, n]` float32 mean saliency of each box.
    """
    maps = tf.cast(tf.convert_to_tensor(saliency_maps), tf.float64)
    boxes = tf.cast(tf.convert_to_tensor(boxes), tf.float64)
    if maps.shape.rank is not None and maps.shape.rank != 3:
        raise ValueError(
            "`saliency_maps` must have shape [batch, h, w]. "
            f"Received: saliency_maps.shape={maps.shape}"
        )
    if boxes.shape.rank is not None and (
        boxes.shape.rank != 3 or boxes.shape[-1] not in (None, 4)
    ):
        raise ValueError(
            f"`boxes` must have shape [batch, n, 4]. Received: boxes.shape={boxes.shape}"
        )
    shape = tf.shape(maps)
    batch, height, width = shape[0], shape[1], shape[2]
    height_f = tf.cast(height, tf.float64)
    width_f = tf.cast(width, tf.float64)

    # Summed-area table with a zero first row and column: sat[a, b] = sum(map[:a, :b]).
    sat = tf.cumsum(tf.cumsum(maps, axis=1), axis=2)
    sat = tf.pad(sat, [[0, 0], [1, 0], [1, 0]])
    sat_flat = tf.reshape(sat, [batch, -1])
    row_stride = width + 1

    boxes = tf.clip_by_value(boxes, 0.0, 1.0)
    y_lo = tf.minimum(boxes[..., 0], boxes[..., 2]) * height_f
    y_hi = tf.maximum(boxes[..., 0], boxes[..., 2]) * height_f
    x_lo = tf.minimum(boxes[..., 1], boxes[..., 3]) * width_f
    x_hi = tf.maximum(boxes[..., 1], boxes[..., 3]) * width_f

    # Corners (y, x) in the order (hi, hi), (lo, hi), (hi, lo), (lo, lo): [b, n, 4].
    ys = tf.stack([y_hi, y_lo, y_hi, y_lo], axis=-1)
    xs = tf.stack([x_hi, x_hi, x_lo, x_lo], axis=-1)
    y0, ty = _interp_axis(ys, height)
    x0, tx = _interp_axis(xs, width)
    # Bilinear neighbours of each corner: [b, n, 4, 4].
    idx = tf.stack(
        [y0 * row_stride + x0, (y0 + 1) * row_stride + x0,
         y0 * row_stride + x0 + 1, (y0 + 1) * row_stride + x0 + 1],
        axis=-1,
    )
    weights = tf.stack(
        [(1 - ty) * (1 - tx), ty * (1 - tx), (1 - ty) * tx, ty * tx], axis=-1
    )
    n_boxes = tf.shape(boxes)[1]
    values = tf.gather(sat_flat, tf.reshape(idx, [batch, -1]), batch_dims=1)
    values = tf.reshape(values, [batch, n_boxes, 4, 4])
    corner = tf.reduce_sum(values * weights, axis=-1)  # [b, n, 4]
    total = corner[..., 0] - corner[..., 1] - corner[..., 2] + corner[..., 3]
    area = (y_hi - y_lo) * (x_hi - x_lo)

    # Degenerate boxes: value of the pixel containing the centre.
    cy = tf.clip_by_value(tf.cast(tf.floor((y_lo + y_hi) / 2), tf.int32), 0, height - 1)
    cx = tf.clip_by_value(tf.cast(tf.floor((x_lo + x_hi) / 2), tf.int32), 0, width - 1)
    centre = tf.gather(tf.reshape(maps, [batch, -1]), cy * width + cx, batch_dims=1)

    degenerate = area < 1e-9
    mean = total / tf.where(degenerate, tf.ones_like(area), area)
    return tf.cast(tf.where(degenerate, centre, mean), tf.float32)


def window_saliency(saliency_map, boxes):
    """Mean saliency inside each box of one map.

    Args:
        saliency_map: `[h, w]` float map (e.g. from :func:`spectral_residual_small`).
        boxes: `[n, 4]` float boxes `(y1, x1, y2, x2)` in normalised pixel-area units
            (see the module docstring).

    Returns:
        `[n]` float32 mean saliency of each box.
    """
    saliency_map = tf.convert_to_tensor(saliency_map)
    boxes = tf.convert_to_tensor(boxes)
    if saliency_map.shape.rank is not None and saliency_map.shape.rank != 2:
        raise ValueError(
            "`saliency_map` must have shape [h, w]. "
            f"Received: saliency_map.shape={saliency_map.shape}"
        )
    if boxes.shape.rank is not None and boxes.shape.rank != 2:
        raise ValueError(
            f"`boxes` must have shape [n, 4]. Received: boxes.shape={boxes.shape}"
        )
    return window_saliency_batch(saliency_map[tf.newaxis], boxes[tf.newaxis])[0]
