"""Multi-scale crop windows and cutting them (TensorFlow ops, graph-safe).

A window is `[y0, x0, y1, x1]` in pixel coordinates of the image it comes from: it
covers rows `y0 .. y1 - 1` and columns `x0 .. x1 - 1`. Every window made here lies on
the pixel grid (integer coordinates, held as float32) and is square, with side
`round(crop_size / r)` pixels for scale `r`, clamped to the image's short side (an
image smaller than a window is upscaled when the window is brought to `crop_size`).

Training: `random_windows` draws K windows cycling through the scales (integer origins,
uniform over every position where the window fits); `positive_windows` gives P views
of a window's centre at the other scales (centred on it, rounded to the pixel grid,
then shifted inside the image). Inference: `grid_windows`, the deterministic window
set: at native scale (r = 1) windows tile the whole image, at the coarser scales a
`grid_size x grid_size` grid; duplicates removed, so its length depends on the image
size (see `grid_window_count`; batches of grids are padded with empty windows, which
`window_mask` tells apart).

`cut_crops` brings every window of a batch to `crop_size x crop_size` uint8 (see there):
exact pixel slices at native scale, area-averaged reductions of larger windows (no
aliasing), bilinear upscaling of windows smaller than the crop (small images only).
"""

from __future__ import annotations

import math

import tensorflow as tf

ROLE_ANCHOR, ROLE_NON_SALIENT, ROLE_POSITIVE = 0, 1, 2
ROLE_NEUTRAL = 3  # a non-salient window overlapping the anchor or a positive: neither positive nor negative
EDGE = 1e-3  # pixels


def _round(x):
    """Round half up (tf.round rounds half to even): snaps a coordinate to the pixel grid."""
    return tf.floor(x + 0.5)


def nominal_sides(crop_size: int, scales) -> list[int]:
    """Window side at each scale before clamping: `round(crop_size / r)` pixels."""
    return [int(math.floor(crop_size / float(r) + 0.5)) for r in scales]


def window_sides(height, width, crop_size: int, scales) -> tf.Tensor:
    """Side of the window at each scale, whole pixels, clamped to the image's short side: [len(scales)]."""
    short = tf.cast(tf.minimum(height, width), tf.float32)
    return tf.minimum(tf.constant(nominal_sides(crop_size, scales), tf.float32), short)


def _square(cy, cx, side, height, width):
    """Square windows of `side` centred at (cy, cx) rounded to the pixel grid, shifted to lie inside the image."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    y0 = tf.clip_by_value(_round(cy - side / 2.0), 0.0, h - side)
    x0 = tf.clip_by_value(_round(cx - side / 2.0), 0.0, w - side)
    return tf.stack([y0, x0, y0 + side, x0 + side], axis=-1)


def random_windows(height, width, crop_size: int, scales, num_crops: int, seed) -> tf.Tensor:
    """K random windows, scales cycling so each scale appears: [K, 4], integer coordinates.

    Each origin is uniform over the `length - side + 1` positions where the window fits.
    `seed` is a stateless seed (shape [2] int), making the draw deterministic.
    """
    sides = window_sides(height, width, crop_size, scales)
    side = tf.gather(sides, tf.range(num_crops) % len(scales))
    u = tf.random.stateless_uniform([num_crops, 2], seed=seed)
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    y0 = tf.minimum(tf.floor(u[:, 0] * (h - side + 1.0)), h - side)
    x0 = tf.minimum(tf.floor(u[:, 1] * (w - side + 1.0)), w - side)
    return tf.stack([y0, x0, y0 + side, x0 + side], axis=-1)


def positive_windows(anchor, anchor_scale_index, height, width, crop_size: int, scales, num_positives: int):
    """P views of the anchor's centre at the other scales (cycling): [P, 4], integer coordinates.

    A view is centred on the anchor's centre, its origin rounded half up to the pixel
    grid (a half-pixel offset when the two sides differ by an odd count), then shifted
    inside the image. With a single scale the views repeat the anchor's window (they
    differ by flip). Batched too: anchors [..., 4] with scale indices [...] give
    [..., P, 4], each row exactly what the single call gives (the pipeline scores every
    candidate's views in one saliency look-up before it knows which window is the anchor).
    """
    anchor = tf.convert_to_tensor(anchor, tf.float32)
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


def _spaced(span, count):
    """`count` integer origins evenly spaced from 0 to `span`, rounded half up (int64 [count]).

    A count of one gives the centred origin `round(span / 2)`.
    """
    i = tf.range(count, dtype=tf.int64)
    denominator = tf.maximum(count - 1, 1)
    spread = (2 * i * span + denominator) // (2 * denominator)
    return tf.where(count > 1, spread, (span + 1) // 2)


def _unique_windows(windows):
    """Rows of `windows` [G, 4] without repeats, each kept at its first occurrence, in order."""
    _, index = tf.raw_ops.UniqueV2(x=windows, axis=tf.constant([0], tf.int64), out_idx=tf.int32)
    positions = tf.range(tf.shape(windows)[0])
    first = tf.math.unsorted_segment_min(positions, index, tf.reduce_max(index) + 1)
    return tf.gather(windows, tf.sort(first))


def grid_windows(height, width, crop_size: int, scales, grid_size: int) -> tf.Tensor:
    """The deterministic inference windows: [G, 4], integer coordinates, G depends on the image size.

    Per scale, in the order of `scales`:
    - native scale (r = 1, side S = crop_size clamped to the short side): the windows
      tile the image, ceil(H/S) x ceil(W/S) of them, every pixel seen at native scale
      at least once; origins evenly spaced (rounded to whole pixels), the first at 0
      and the last flush with the bottom/right edge;
    - coarser scales: `grid_size x grid_size` evenly spaced windows (the corners when
      `grid_size` > 1, the centre when 1).
    Row-major within a scale. A window equal to an earlier one (small images, where
    windows of several scales are clamped to the same side) is dropped: G is at most
    ceil(H/S) * ceil(W/S) + (len(scales) - 1) * grid_size^2 (see `grid_window_count`).
    Without r = 1 in `scales`, every scale is a `grid_size` grid.
    """
    h = tf.cast(height, tf.int64)
    w = tf.cast(width, tf.int64)
    sides = tf.maximum(tf.cast(window_sides(height, width, crop_size, scales), tf.int64), 1)
    parts = []
    for index, scale in enumerate(scales):
        side = sides[index]
        if float(scale) >= 1.0:
            rows, cols = native_tiles(h, w, side)
        else:
            rows = cols = tf.constant(grid_size, tf.int64)
        ys, xs = _spaced(h - side, rows), _spaced(w - side, cols)
        y0 = tf.repeat(ys, tf.size(xs))  # row-major over (y, x)
        x0 = tf.tile(xs, [tf.size(ys)])
        parts.append(tf.stack([y0, x0, y0 + side, x0 + side], axis=-1))
    windows = _unique_windows(tf.concat(parts, axis=0))
    return tf.ensure_shape(tf.cast(windows, tf.float32), [None, 4])


def native_tiles(height, width, side):
    """(rows, columns) of windows of `side` tiling a `height x width` image at native
    scale: ceil(H/S) x ceil(W/S) (int64 tensors)."""
    return (height + side - 1) // side, (width + side - 1) // side


def native_window_count(height, width, crop_size: int) -> tf.Tensor:
    """int64: native-scale windows of an image, the side clamped to its short side."""
    h, w = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    side = tf.maximum(tf.minimum(tf.constant(crop_size, tf.int64), tf.minimum(h, w)), 1)
    rows, cols = native_tiles(h, w, side)
    return rows * cols


def grid_window_count(height: int, width: int, crop_size: int, scales, grid_size: int) -> int:
    """Number of `grid_windows` for an image of `height x width` (Python int)."""
    return int(tf.shape(grid_windows(int(height), int(width), crop_size, tuple(scales), grid_size))[0])


def window_mask(windows):
    """bool [...]: which windows [..., 4] hold pixels; False for the all-zero windows that
    pad batches of window lists of different lengths (their crops are black). Takes a
    tensor or a NumPy array and returns the same kind."""
    return (windows[..., 2] > windows[..., 0]) & (windows[..., 3] > windows[..., 1])


def normalised(windows, height, width) -> tf.Tensor:
    """Windows as fractions of the image size, for saliency look-ups: [N, 4]."""
    scale = tf.cast(tf.stack([height, width, height, width]), tf.float32)
    return windows / scale


def crop_boxes(windows, padded_height, padded_width, crop_size, flip=None) -> tf.Tensor:
    """`tf.image.crop_and_resize` boxes that sample each window at pixel centres.

    crop_and_resize maps box coordinate b to pixel index b * (size - 1); sample i of a
    window [a0, a1) sits at a0 + (i + 0.5) * (a1 - a0) / crop_size - 0.5. `flip` ([N]
    bool) mirrors a crop horizontally by swapping its x coordinates, at no cost.
    Windows are assumed to hold at least one pixel (side >= 1). `cut_crops` uses these
    boxes for windows smaller than the crop (upscaling) only.
    """
    y0, x0, y1, x1 = tf.unstack(windows, axis=-1)
    crop_size = tf.cast(crop_size, tf.float32)
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


def _to_uint8(values):
    if values.dtype == tf.uint8:
        return values
    return tf.cast(tf.clip_by_value(tf.round(tf.cast(values, tf.float32)), 0.0, 255.0), tf.uint8)


def cut_crops(images, windows, crop_size: int, flip=None) -> tf.Tensor:
    """Cut every window of a batch and bring it to `crop_size x crop_size`, vectorised.

    Long: one graph-mode routine whose three size cases share the snapped windows,
    their indices and the output scatter; split up, each piece would take and return
    most of those tensors, and the case analysis below would be spread over them.

    Windows are first snapped to the pixel grid (coordinates rounded half up; the
    windows made in this module are on it already), then, by their size:
    - side == crop_size (native scale): the exact pixel slice, bit for bit;
    - larger (coarser scales): the exact pixel slice reduced by area averaging
      (`tf.image.resize(method="area")`: each crop pixel is the mean of the window area
      it covers, with fractional weights at its edges, like cv2's INTER_AREA; a 2x
      reduction is the mean of each 2x2 block). The filter is matched to each window's
      own reduction factor side / crop_size, so a window clamped to a small image's
      short side gets the weaker filter of its smaller factor, never more blur than
      its own reduction needs;
    - smaller (images smaller than the window): bilinear upscaling of the window's
      pixels (`tf.image.crop_and_resize` with `crop_boxes`);
    - empty (zero side, the padding windows of a padded batch): a black crop.
    A window reads only its own pixels (padding of a padded batch never leaks in).
    The pixel slices are one gather for all windows of the same size; the reductions
    one `resize` per distinct window size (a `tf.while_loop` over the few sizes a batch
    holds, not over windows); the upscaled windows one `crop_and_resize`.

    Args:
        images: [B, H, W, 3] uint8 (a padded batch: windows refer to each image's own
            top-left-aligned pixels).
        windows: [B, N, 4] windows in pixel coordinates, inside their image.
        flip: optional [B, N] bool, mirror those crops left-right.

    Returns:
        [B, N, crop_size, crop_size, 3] uint8 crops.
    """
    size = int(crop_size)
    images = tf.convert_to_tensor(images)
    windows = tf.cast(tf.convert_to_tensor(windows), tf.float32)
    shape = tf.shape(images, out_type=tf.int64)
    padded_height, padded_width = shape[1], shape[2]
    batch, count = tf.shape(windows)[0], tf.shape(windows)[1]
    flat = tf.reshape(windows, [-1, 4])
    total = tf.shape(flat)[0]
    flat_flip = tf.zeros([total], tf.bool) if flip is None else tf.reshape(tf.cast(flip, tf.bool), [-1])
    owner = tf.repeat(tf.range(batch), count)
    y0, x0, y1, x1 = tf.unstack(flat, axis=-1)
    top, left = _round(y0), _round(x0)
    rows, cols = _round(y1) - top, _round(x1) - left
    filled = (y1 > y0) & (x1 > x0)
    sliced = filled & (rows >= size) & (cols >= size)

    def positions(mask):
        return tf.cast(tf.where(mask)[:, 0], tf.int32)

    # Windows smaller than the crop: bilinear upscaling.
    small = positions(filled & ~sliced)
    boxes = crop_boxes(tf.gather(flat, small), padded_height, padded_width, size, tf.gather(flat_flip, small))
    upscaled = tf.image.crop_and_resize(images, boxes, tf.gather(owner, small), [size, size], method="bilinear")
    # Empty windows: black.
    empty = positions(~filled)
    parts = [_to_uint8(upscaled), tf.zeros([tf.size(empty), size, size, 3], tf.uint8)]
    order = [small, empty]

    # Pixel slices, reduced by area averaging when larger than the crop: one group per size.
    big = positions(sliced)
    big_rows = tf.cast(tf.gather(rows, big), tf.int64)
    big_cols = tf.cast(tf.gather(cols, big), tf.int64)
    sizes, group = tf.unique(big_rows * (2 ** 32) + big_cols, out_idx=tf.int32)
    pixels = tf.reshape(images, [-1, tf.shape(images)[-1]])

    def cut_group(index):
        chosen = tf.where(tf.equal(group, index))[:, 0]
        members = tf.gather(big, chosen)
        height, width = big_rows[chosen[0]], big_cols[chosen[0]]
        ys = tf.cast(tf.gather(top, members), tf.int64)[:, tf.newaxis] + tf.range(height)  # [m, height]
        xs = tf.cast(tf.gather(left, members), tf.int64)[:, tf.newaxis] + tf.range(width)  # [m, width]
        ys = tf.clip_by_value(ys, 0, padded_height - 1)  # a no-op for windows inside their image
        xs = tf.clip_by_value(xs, 0, padded_width - 1)
        xs = tf.where(tf.gather(flat_flip, members)[:, tf.newaxis], tf.reverse(xs, [1]), xs)
        image_rows = (tf.cast(tf.gather(owner, members), tf.int64) * padded_height)[:, tf.newaxis] + ys
        linear = (image_rows * padded_width)[:, :, tf.newaxis] + xs[:, tf.newaxis, :]  # [m, height, width]
        cut = tf.gather(pixels, linear)  # [m, height, width, 3]
        native = tf.equal(height, size) & tf.equal(width, size)
        crops = tf.cond(native, lambda: _to_uint8(cut),
                        lambda: _to_uint8(tf.image.resize(cut, [size, size], method="area")))
        return tf.ensure_shape(crops, [None, size, size, 3]), members

    def body(index, crops, where):
        more, members = cut_group(index)
        return index + 1, tf.concat([crops, more], 0), tf.concat([where, members], 0)

    _, reduced, reduced_order = tf.while_loop(
        lambda index, crops, where: index < tf.size(sizes), body,
        (tf.constant(0, tf.int32), tf.zeros([0, size, size, 3], tf.uint8), tf.zeros([0], tf.int32)),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, size, size, 3]), tf.TensorShape([None])))
    # Each group's crops are in the order of its window positions: put them back in place.
    position = tf.math.invert_permutation(tf.concat(order + [reduced_order], 0))
    crops = tf.gather(tf.concat(parts + [reduced], 0), position)
    return tf.reshape(crops, [batch, count, size, size, 3])
