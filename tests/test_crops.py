"""Crop geometry and cutting: window bounds, scales, positives, grid, exact pixels, antialiasing."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa import crops

SCALES = (1.0, 0.75, 0.5)


def _inside(windows, height, width):
    w = windows.numpy()
    return (w[:, 0] >= -1e-4).all() and (w[:, 1] >= -1e-4).all() and (w[:, 2] <= height + 1e-4).all() and (
        w[:, 3] <= width + 1e-4).all()


def test_random_windows_cycle_scales_and_stay_inside():
    windows = crops.random_windows(300, 500, 64, SCALES, 6, seed=[1, 2])
    sides = (windows[:, 2] - windows[:, 0]).numpy()
    np.testing.assert_array_equal(sides, [64, 85, 128] * 2)  # round(64 / 0.75) = 85: whole pixels
    np.testing.assert_allclose(sides, (windows[:, 3] - windows[:, 1]).numpy(), rtol=1e-6)  # square
    assert _inside(windows, 300, 500)


def test_random_windows_deterministic_under_seed():
    a = crops.random_windows(300, 500, 64, SCALES, 8, seed=[3, 4])
    b = crops.random_windows(300, 500, 64, SCALES, 8, seed=[3, 4])
    c = crops.random_windows(300, 500, 64, SCALES, 8, seed=[3, 5])
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())


def test_windows_clamp_to_small_images():
    windows = crops.random_windows(40, 90, 64, SCALES, 3, seed=[0, 0])
    np.testing.assert_allclose((windows[:, 2] - windows[:, 0]).numpy(), [40, 40, 40])
    assert _inside(windows, 40, 90)


def test_positive_windows_share_the_anchor_centre_at_other_scales():
    anchor = tf.constant([100.0, 200.0, 164.0, 264.0])  # scale 1.0 (side 64), centre (132, 232)
    views = crops.positive_windows(anchor, 0, 400, 600, 64, SCALES, 2)
    sides = (views[:, 2] - views[:, 0]).numpy()
    np.testing.assert_array_equal(sides, [85, 128])
    # Same centre up to the half pixel an odd side difference leaves (origins are whole pixels).
    np.testing.assert_array_equal(views.numpy(), [[90, 190, 175, 275], [68, 168, 196, 296]])
    np.testing.assert_allclose(((views[:, 0] + views[:, 2]) / 2).numpy(), [132, 132], atol=0.5)
    np.testing.assert_allclose(((views[:, 1] + views[:, 3]) / 2).numpy(), [232, 232], atol=0.5)


def test_positive_windows_shift_inside_at_the_border():
    anchor = tf.constant([0.0, 0.0, 64.0, 64.0])
    views = crops.positive_windows(anchor, 0, 200, 200, 64, SCALES, 2)
    assert _inside(views, 200, 200)
    np.testing.assert_allclose(views[:, :2].numpy(), 0.0)


def test_grid_covers_every_scale_and_the_corners():
    windows = crops.grid_windows(300, 400, 64, SCALES, 2).numpy()
    # native: ceil(300/64) x ceil(400/64) = 5 x 7 tiles, then 2 x 2 at each coarser scale
    assert windows.shape == (35 + 4 + 4, 4)
    np.testing.assert_array_equal(windows[:35, 2] - windows[:35, 0], 64)
    np.testing.assert_array_equal(windows[35:39, 2] - windows[35:39, 0], 85)
    np.testing.assert_array_equal(windows[39:, 2] - windows[39:, 0], 128)
    np.testing.assert_array_equal(windows[0], [0, 0, 64, 64])
    np.testing.assert_array_equal(windows[34], [236, 336, 300, 400])
    np.testing.assert_array_equal(windows[35:39], [[0, 0, 85, 85], [0, 315, 85, 400], [215, 0, 300, 85],
                                                   [215, 315, 300, 400]])
    centred = crops.grid_windows(300, 400, 64, (0.5,), 1).numpy()
    np.testing.assert_array_equal(centred, [[86, 136, 214, 264]])


def _native_coverage(windows, height, width, side):
    covered = np.zeros((height, width), int)
    for y0, x0, y1, x1 in windows[(windows[:, 2] - windows[:, 0]) == side].astype(int):
        covered[y0:y1, x0:x1] += 1
    return covered


@pytest.mark.parametrize("height, width", [(512, 384), (384, 512), (512, 512), (300, 400), (129, 1000), (128, 128)])
def test_grid_native_windows_tile_the_image_without_duplicates(height, width):
    windows = crops.grid_windows(height, width, 128, SCALES, 2).numpy()
    assert (windows == np.round(windows)).all()  # whole pixels: no resampling at native scale
    assert _inside(tf.constant(windows), height, width)
    assert len({tuple(w) for w in windows.tolist()}) == len(windows)  # no two windows identical
    rows, cols = -(-height // 128), -(-width // 128)
    native = windows[:rows * cols]
    np.testing.assert_array_equal(native[:, 2] - native[:, 0], 128)
    assert (_native_coverage(windows, height, width, 128) >= 1).all()  # every pixel at native scale
    ys, xs = np.unique(native[:, 0]), np.unique(native[:, 1])
    assert (len(ys), len(xs)) == (rows, cols)
    assert ys[0] == xs[0] == 0 and ys[-1] == height - 128 and xs[-1] == width - 128
    for origins in (ys, xs):  # evenly spaced: steps differ by at most the one pixel of rounding
        steps = np.diff(origins)
        assert len(steps) == 0 or (steps.max() - steps.min() <= 1 and steps.max() <= 128)
    coarse = windows[rows * cols:]
    assert len(coarse) <= 8 and set((coarse[:, 2] - coarse[:, 0]).tolist()) <= {171, 256, min(height, width)}
    assert len(windows) == crops.grid_window_count(height, width, 128, SCALES, 2)


def test_grid_counts_of_the_default_scales():
    assert crops.grid_window_count(512, 384, 128, SCALES, 2) == 4 * 3 + 4 + 4
    assert crops.grid_window_count(512, 512, 128, SCALES, 2) == 4 * 4 + 4 + 4
    # The old grid: 2 x 2 native windows on 512 x 384 left the centre unseen at native scale.
    old_native = [[0, 0, 128, 128], [0, 256, 128, 384], [384, 0, 512, 128], [384, 256, 512, 384]]
    assert (_native_coverage(np.array(old_native, float), 512, 384, 128) == 0).any()


def test_grid_drops_windows_that_repeat_on_small_images():
    # 100 x 150: every scale is clamped to the short side (100): native 1 x 2 tiles; the
    # coarser scales' 2 x 2 grids give the same two windows: dropped.
    windows = crops.grid_windows(100, 150, 128, SCALES, 2).numpy()
    np.testing.assert_array_equal(windows, [[0, 0, 100, 100], [0, 50, 100, 150]])
    tiny = crops.grid_windows(2, 2, 16, SCALES, 2).numpy()
    np.testing.assert_array_equal(tiny, [[0, 0, 2, 2]])
    # 200 x 200 at crop 128: native 2 x 2 (origins 0, 72); scale 0.75 (171) 2 x 2; scale 0.5
    # clamped to 200: four copies of the whole image, one kept.
    windows = crops.grid_windows(200, 200, 128, SCALES, 2).numpy()
    assert len(windows) == 4 + 4 + 1 and len({tuple(w) for w in windows.tolist()}) == 9
    np.testing.assert_array_equal(windows[-1], [0, 0, 200, 200])


def test_grid_in_graph_mode_matches_eager():
    traced = tf.function(lambda h, w: crops.grid_windows(h, w, 128, SCALES, 2),
                         input_signature=[tf.TensorSpec([], tf.int32)] * 2)
    for height, width in [(512, 384), (100, 150), (1, 7), (640, 480)]:
        np.testing.assert_array_equal(traced(height, width).numpy(),
                                      crops.grid_windows(height, width, 128, SCALES, 2).numpy())


def test_window_mask_tells_padding_windows_apart():
    a = crops.grid_windows(512, 384, 128, SCALES, 2)
    b = crops.grid_windows(100, 150, 128, SCALES, 2)
    padded = tf.data.Dataset.from_tensor_slices([0, 1]).map(lambda i: tf.cond(i == 0, lambda: a, lambda: b))
    (batch,) = list(padded.padded_batch(2))
    mask = crops.window_mask(batch).numpy()
    assert mask.shape == (2, 20) and mask[0].all() and mask[1].sum() == 2 and mask[1, :2].all()
    cut = crops.cut_crops(tf.zeros([2, 512, 384, 3], tf.uint8) + 9, batch, 32).numpy()
    assert (cut[~mask] == 0).all() and (cut[mask] == 9).all()  # padding windows give black crops


def test_cut_crops_reproduces_pixels_exactly_at_scale_one():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 50, 70, 3), dtype=np.uint8)
    windows = tf.constant([[[5.0, 7.0, 37.0, 39.0], [18.0, 38.0, 50.0, 70.0]]])
    out = crops.cut_crops(tf.constant(image), windows, 32).numpy()
    np.testing.assert_array_equal(out[0, 0], image[0, 5:37, 7:39])
    np.testing.assert_array_equal(out[0, 1], image[0, 18:50, 38:70])


def test_cut_crops_flip_mirrors_and_padded_batches_keep_coordinates():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    padded = np.zeros((2, 40, 60, 3), np.uint8)
    padded[0, :20, :30] = small
    padded[1] = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    windows = tf.constant([[[2.0, 3.0, 18.0, 19.0]], [[0.0, 0.0, 16.0, 16.0]]])
    flip = tf.constant([[True], [False]])
    out = crops.cut_crops(tf.constant(padded), windows, 16, flip).numpy()
    np.testing.assert_array_equal(out[0, 0], small[2:18, 3:19][:, ::-1])
    np.testing.assert_array_equal(out[1, 0], padded[1, :16, :16])


def test_cut_crops_upscales_windows_smaller_than_the_crop():
    image = np.tile(np.arange(8, dtype=np.uint8)[None, :, None] * 30, (8, 1, 3))[None]
    out = crops.cut_crops(tf.constant(image), tf.constant([[[0.0, 0.0, 8.0, 8.0]]]), 32).numpy()
    assert out.shape == (1, 1, 32, 32, 3)
    row = out[0, 0, 0, :, 0].astype(int)
    assert (np.diff(row) >= 0).all() and row[0] == 0 and row[-1] == 210


@pytest.mark.parametrize("seed", range(6))
def test_native_training_crops_are_exact_pixel_slices(seed):
    """Scale-1.0 training crops (random windows and positive views) are the image's own
    pixels, bit for bit, mirrored when flipped: no sub-pixel origin, no resampling."""
    rng = np.random.default_rng(seed)
    size = 32
    height, width = int(rng.integers(40, 160)), int(rng.integers(40, 160))
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    windows = crops.random_windows(height, width, size, SCALES, 9, seed=[seed, 7])
    views = crops.positive_windows(windows, tf.range(9) % 3, height, width, size, SCALES, 2)
    windows = tf.concat([windows, tf.reshape(views, [-1, 4])], 0)
    flip = tf.constant(rng.random(len(windows)) < 0.5)
    w = windows.numpy()
    assert (w == np.round(w)).all() and _inside(windows, height, width)
    out = crops.cut_crops(tf.constant(image[None]), windows[None], size, flip[None]).numpy()[0]
    native = 0
    for crop, (y0, x0, y1, _x1), mirrored in zip(out, w.astype(int), flip.numpy()):
        if y1 - y0 == size:
            expected = image[y0:y0 + size, x0:x0 + size]
            np.testing.assert_array_equal(crop, expected[:, ::-1] if mirrored else expected)
            native += 1
    assert native >= 3


def test_windows_snap_to_whole_pixels_before_cutting():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (1, 60, 60, 3), dtype=np.uint8)
    out = crops.cut_crops(tf.constant(image), tf.constant([[[4.6, 10.2, 36.6, 42.2]]]), 32).numpy()
    np.testing.assert_array_equal(out[0, 0], image[0, 5:37, 10:42])


def _area_reference(pixels, size):
    """Area averaging (cv2's INTER_AREA) of a window's pixels to size x size."""
    return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)


def test_reductions_are_area_averages():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 300, 280, 3), dtype=np.uint8)
    windows = tf.constant([[[10, 20, 138, 148], [0, 0, 85, 85], [215, 195, 300, 280]],
                           [[44, 2, 300, 258], [7, 9, 178, 180], [100, 100, 200, 200]]], tf.float32)
    flip = tf.constant([[False, True, False], [True, False, False]])
    out = crops.cut_crops(tf.constant(image), windows, 64, flip).numpy()
    # 2x: the mean of each 2 x 2 block, rounded (to the nearest even level on a tie, as np.round)
    block = image[0, 10:138, 20:148].astype(np.float64).reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))
    np.testing.assert_array_equal(out[0, 0], np.round(block))
    for b, n, (y0, x0, y1, x1), mirrored in [(0, 1, (0, 0, 85, 85), True), (0, 2, (215, 195, 300, 280), False),
                                            (1, 0, (44, 2, 300, 258), True), (1, 1, (7, 9, 178, 180), False),
                                            (1, 2, (100, 100, 200, 200), False)]:
        pixels = image[b, y0:y1, x0:x1]
        expected = _area_reference(pixels[:, ::-1] if mirrored else pixels, 64).astype(int)
        assert np.abs(out[b, n].astype(int) - expected).max() <= 1
        assert (out[b, n] == expected).mean() > 0.99


def _checkerboard(height, width):
    yy, xx = np.mgrid[:height, :width]
    return np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[..., None], 3, -1)


def _bilinear(image, window, size):
    """What the old cut did: 2-tap bilinear point sampling at the crop's pixel centres."""
    boxes = crops.crop_boxes(tf.constant([window], tf.float32), image.shape[0], image.shape[1], size)
    return tf.image.crop_and_resize(image[None].astype(np.float32), boxes, [0], [size, size]).numpy()[0]


@pytest.mark.parametrize("size, side, ceiling", [(128, 171, 18.0), (64, 85, 19.0), (128, 200, 8.0), (64, 100, 8.0),
                                                 (128, 299, 3.0), (128, 341, 5.0)])
def test_reductions_do_not_alias_a_checkerboard(size, side, ceiling):
    """A one-pixel checkerboard (the highest frequency) must not survive a reduction:
    2-tap point sampling at stride 1.33-2.67 folds it into a strong low-frequency pattern
    (std 42.5 around grey); area averaging keeps under a fifth of that energy at the
    default 0.75 scale (stride 1.33, where a box filter is weakest) and comes out near
    flat grey from stride 1.5 on."""
    image = _checkerboard(400, 400)
    window = [10.0, 20.0, 10.0 + side, 20.0 + side]
    out = crops.cut_crops(tf.constant(image[None]), tf.constant([[window]]), size).numpy()[0, 0].astype(float)
    aliased = _bilinear(image, window, size)
    assert abs(out.mean() - 127.5) < 2.0
    assert aliased.std() > 40.0  # before: the checkerboard aliased
    assert out.var() < 0.2 * aliased.var()
    assert out.std() < ceiling


def test_a_two_times_reduction_of_a_checkerboard_is_flat_grey():
    image = _checkerboard(300, 300)
    out = crops.cut_crops(tf.constant(image[None]), tf.constant([[[11.0, 20.0, 267.0, 276.0]]]), 128).numpy()
    assert set(np.unique(out).tolist()) <= {127, 128}  # each 2 x 2 block averages 127.5


def test_reductions_average_white_noise():
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(128, 30, (400, 400, 3)), 0, 255).astype(np.uint8)
    for side, ceiling in [(256, 15.5), (341, 11.0)]:  # area averaging of f x f pixels: std 30 / f
        window = [5.0, 7.0, 5.0 + side, 7.0 + side]
        out = crops.cut_crops(tf.constant(image[None]), tf.constant([[window]]), 128).numpy()[0, 0]
        assert out.astype(float).std() < ceiling
    native = crops.cut_crops(tf.constant(image[None]), tf.constant([[[5.0, 7.0, 133.0, 135.0]]]), 128).numpy()
    np.testing.assert_array_equal(native[0, 0], image[5:133, 7:135])  # native scale: untouched


def test_reductions_keep_smooth_images():
    """The antialiasing filter removes what aliases, not the image: a smooth image reduced
    matches the function at the crop's pixel centres up to rounding."""
    def smooth(y, x):
        return 127.5 + 100.0 * np.sin(2 * np.pi * y / 97.0) * np.cos(2 * np.pi * x / 131.0)

    yy, xx = np.mgrid[:400, :400].astype(np.float64)
    image = np.repeat(np.round(smooth(yy, xx)).astype(np.uint8)[..., None], 3, -1)
    for side in (171, 256, 150, 128):
        y0, x0 = 31.0, 57.0
        out = crops.cut_crops(tf.constant(image[None]), tf.constant([[[y0, x0, y0 + side, x0 + side]]]), 128).numpy()
        centres = (np.arange(128) + 0.5) * side / 128 - 0.5
        expected = smooth(y0 + centres[:, None], x0 + centres[None, :])
        assert np.abs(out[0, 0, ..., 0] - expected).max() < 1.5, side


def test_cut_crops_in_graph_matches_eager_and_padding_never_leaks_in():
    rng = np.random.default_rng(4)
    small = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    big = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    windows = tf.constant([[[0, 0, 32, 32], [20, 0, 90, 70], [0, 0, 70, 70], [58, 38, 90, 70], [0, 0, 0, 0]],
                           [[0, 0, 120, 120], [88, 128, 120, 160], [0, 0, 16, 16], [30, 40, 73, 83],
                            [0, 0, 48, 48]]], tf.float32)
    flip = tf.constant([[True, False, True, False, False], [False, True, True, False, True]])
    outs = []
    for fill in (0, 255):
        padded = np.full((2, 120, 160, 3), fill, np.uint8)
        padded[0, :90, :70] = small
        padded[1] = big
        outs.append(crops.cut_crops(tf.constant(padded), windows, 32, flip).numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    traced = tf.function(lambda i, w, f: crops.cut_crops(i, w, 32, f))
    np.testing.assert_array_equal(traced(tf.constant(padded), windows, flip).numpy(), outs[1])
    assert outs[0].shape == (2, 5, 32, 32, 3) and outs[0].dtype == np.uint8
    np.testing.assert_array_equal(outs[0][0, 3], small[58:90, 38:70])
    np.testing.assert_array_equal(outs[0][0, 0], small[:32, :32][:, ::-1])
    assert (outs[0][0, 4] == 0).all()
