"""Crop geometry and cutting: window bounds, scales, positives, grid, exact pixels."""

import numpy as np
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
    np.testing.assert_allclose(sides, [64, 64 / 0.75, 128] * 2, rtol=1e-6)
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
    np.testing.assert_allclose(sides, [64 / 0.75, 128], rtol=1e-6)
    np.testing.assert_allclose(((views[:, 0] + views[:, 2]) / 2).numpy(), [132, 132], rtol=1e-6)
    np.testing.assert_allclose(((views[:, 1] + views[:, 3]) / 2).numpy(), [232, 232], rtol=1e-6)


def test_positive_windows_shift_inside_at_the_border():
    anchor = tf.constant([0.0, 0.0, 64.0, 64.0])
    views = crops.positive_windows(anchor, 0, 200, 200, 64, SCALES, 2)
    assert _inside(views, 200, 200)
    np.testing.assert_allclose(views[:, :2].numpy(), 0.0)


def test_grid_covers_every_scale_and_the_corners():
    windows = crops.grid_windows(300, 400, 64, SCALES, 2).numpy()
    assert windows.shape == (12, 4)
    np.testing.assert_allclose(windows[:4, 2] - windows[:4, 0], 64)
    np.testing.assert_allclose(windows[8:, 2] - windows[8:, 0], 128)
    np.testing.assert_allclose(windows[0], [0, 0, 64, 64])
    np.testing.assert_allclose(windows[3], [236, 336, 300, 400])
    centred = crops.grid_windows(300, 400, 64, (1.0,), 1).numpy()
    np.testing.assert_allclose(centred[0], [118, 168, 182, 232])


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
