import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa.saliency import (
    spectral_residual,
    spectral_residual_small,
    window_saliency,
    window_saliency_batch,
)


def _disc_image(height=240, width=320, centre=(80, 220), radius=20):
    yy, xx = np.mgrid[:height, :width]
    image = np.full((height, width, 3), 90, np.uint8)
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2
    image[disc] = 230
    return image, disc


def _area_mean(saliency_map, box):
    """Brute force: every pixel weighted by the fraction of its area inside the box.

    Row i of an h-row map covers [i / h, (i + 1) / h) in normalised units.
    """
    h, w = saliency_map.shape
    y1, x1, y2, x2 = np.clip(np.asarray(box, np.float64), 0, 1)
    y1, y2 = sorted((y1, y2))
    x1, x2 = sorted((x1, x2))
    total, area = 0.0, 0.0
    for i in range(h):
        wy = max(0.0, min(y2, (i + 1) / h) - max(y1, i / h)) * h
        if wy == 0:
            continue
        for j in range(w):
            wx = max(0.0, min(x2, (j + 1) / w) - max(x1, j / w)) * w
            total += wy * wx * saliency_map[i, j]
            area += wy * wx
    return total / area


@pytest.mark.parametrize("shape", [(37, 123), (123, 37), (240, 320), (9, 9), (1, 50)])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_spectral_residual_shape_dtype_range(shape, dtype):
    rng = np.random.default_rng(0)
    if dtype == "uint8":
        image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    else:
        image = rng.uniform(size=shape + (3,)).astype(np.float32)
    full = spectral_residual(image).numpy()
    assert full.shape == shape and full.dtype == np.float32
    assert np.all(np.isfinite(full)) and full.min() >= 0.0 and full.max() <= 1.0
    small = spectral_residual_small(image).numpy()
    assert max(small.shape) == 64 and small.dtype == np.float32
    assert small.min() == 0.0 and abs(small.max() - 1.0) < 1e-6
    aspect_error = abs(small.shape[0] / small.shape[1] - shape[0] / shape[1])
    assert aspect_error < 0.1 or min(small.shape) == 1


def test_uint8_and_float_inputs_agree():
    image, _ = _disc_image(96, 128)
    from_uint8 = spectral_residual(image).numpy()
    from_float = spectral_residual(image.astype(np.float32) / 255.0).numpy()
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-4)


def test_graph_mode_with_unknown_shapes():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def full(image):
        return spectral_residual(image)

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([None, 4], tf.float32)])
    def windows(image, boxes):
        return window_saliency(spectral_residual_small(image), boxes)

    rng = np.random.default_rng(1)
    for shape in [(37, 123, 3), (64, 48, 3), (200, 17, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        out = full(tf.constant(image))
        assert out.shape == shape[:2]
        np.testing.assert_allclose(out.numpy(), spectral_residual(image).numpy(), atol=1e-6)
        scores = windows(tf.constant(image), tf.constant([[0, 0, 1, 1], [0.2, 0.1, 0.6, 0.9]],
                                                         tf.float32))
        assert scores.shape == (2,) and np.all(np.isfinite(scores.numpy()))

    # Inside a tf.data map as well.
    dataset = tf.data.Dataset.from_generator(
        lambda: (rng.integers(0, 256, (30 + k, 50, 3), dtype=np.uint8) for k in range(2)),
        output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    ).map(spectral_residual_small)
    assert [tuple(m.shape) for m in dataset] == [(38, 64), (40, 64)]


@pytest.mark.parametrize("value", [0, 7, 255])
def test_constant_image_gives_zeros(value):
    image = np.full((37, 123, 3), value, np.uint8)
    out = spectral_residual(image).numpy()
    assert np.all(out == 0.0)
    out = spectral_residual(np.full((20, 20, 3), value / 255.0, np.float32)).numpy()
    assert np.all(out == 0.0)


def test_salient_disc_is_found():
    image, disc = _disc_image()
    saliency = spectral_residual(image).numpy()
    peak = np.unravel_index(np.argmax(saliency), saliency.shape)
    assert disc[peak]
    ratio = saliency[disc].mean() / saliency[~disc].mean()
    assert ratio > 10, ratio


def test_textured_square_is_found():
    rng = np.random.default_rng(2)
    image = np.full((240, 320, 3), 128, np.uint8)
    image[150:190, 40:80] = rng.integers(0, 256, (40, 40, 3))
    inside = np.zeros((240, 320), bool)
    inside[150:190, 40:80] = True
    saliency = spectral_residual(image).numpy()
    assert inside[np.unravel_index(np.argmax(saliency), saliency.shape)]
    assert saliency[inside].mean() / saliency[~inside].mean() > 2.5


def test_salient_window_scores_highest():
    image, _ = _disc_image()  # disc centre at (80/240, 220/320)
    small = spectral_residual_small(image)
    boxes = tf.constant([[0.15, 0.55, 0.5, 0.83],  # around the disc
                         [0.5, 0.05, 0.95, 0.45],
                         [0.0, 0.0, 0.4, 0.3]], tf.float32)
    scores = window_saliency(small, boxes).numpy()
    assert np.argmax(scores) == 0 and scores[0] > 3 * scores[1:].max()


def test_window_saliency_on_pixel_boundaries_matches_slices():
    rng = np.random.default_rng(3)
    h, w = 13, 21
    saliency_map = rng.uniform(size=(h, w)).astype(np.float32)
    rows = np.sort(rng.integers(0, h + 1, size=(40, 2)), axis=1)
    cols = np.sort(rng.integers(0, w + 1, size=(40, 2)), axis=1)
    keep = (rows[:, 1] > rows[:, 0]) & (cols[:, 1] > cols[:, 0])
    rows, cols = rows[keep], cols[keep]
    boxes = np.stack([rows[:, 0] / h, cols[:, 0] / w, rows[:, 1] / h, cols[:, 1] / w], 1)
    got = window_saliency(saliency_map, boxes.astype(np.float32)).numpy()
    want = [saliency_map[a:b, c:d].mean() for (a, b), (c, d) in zip(rows, cols)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_window_saliency_random_boxes_match_area_weighted_brute_force():
    rng = np.random.default_rng(4)
    h, w = 11, 17
    saliency_map = rng.uniform(size=(h, w)).astype(np.float32)
    boxes = rng.uniform(-0.1, 1.1, size=(30, 4))
    boxes[0] = [0, 0, 1, 1]
    boxes[1] = [0.9, 0.8, 0.1, 0.2]  # reversed corners
    boxes[2] = [0.31, 0.4, 0.33, 0.41]  # inside one pixel
    # Drop random boxes that lie entirely outside the image (zero area after clipping).
    clipped = np.clip(boxes, 0, 1)
    keep = (np.abs(clipped[:, 2] - clipped[:, 0]) > 1e-3) & (
        np.abs(clipped[:, 3] - clipped[:, 1]) > 1e-3
    )
    boxes = boxes[keep]
    got = window_saliency(saliency_map, boxes.astype(np.float32)).numpy()
    want = [_area_mean(saliency_map, box) for box in boxes.astype(np.float32)]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[0], saliency_map.mean(), rtol=1e-6)
    np.testing.assert_allclose(got[2], saliency_map[3, 6], rtol=1e-5)


def test_window_saliency_degenerate_box_uses_centre_pixel():
    saliency_map = np.arange(12, dtype=np.float32).reshape(3, 4)
    boxes = np.array([[0.5, 0.6, 0.5, 0.6], [1.0, 1.0, 1.0, 1.0]], np.float32)
    got = window_saliency(saliency_map, boxes).numpy()
    np.testing.assert_array_equal(got, [saliency_map[1, 2], saliency_map[2, 3]])


def test_window_saliency_batch_matches_per_map():
    rng = np.random.default_rng(5)
    maps = rng.uniform(size=(3, 9, 14)).astype(np.float32)
    ys = np.sort(rng.uniform(size=(3, 7, 2)), axis=-1)
    xs = np.sort(rng.uniform(size=(3, 7, 2)), axis=-1)
    boxes = np.stack([ys[..., 0], xs[..., 0], ys[..., 1], xs[..., 1]], -1).astype(np.float32)
    got = window_saliency_batch(maps, boxes).numpy()
    assert got.shape == (3, 7) and got.dtype == np.float32
    for b in range(3):
        single = window_saliency(maps[b], boxes[b]).numpy()
        np.testing.assert_allclose(got[b], single, rtol=1e-6)
        want = [_area_mean(maps[b], box) for box in boxes[b]]
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5)


def test_bad_arguments_raise():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="long_side"):
        spectral_residual_small(image, long_side=0)
    with pytest.raises(ValueError, match="blur_sigma"):
        spectral_residual_small(image, blur_sigma=-1.0)
    with pytest.raises(ValueError, match="image"):
        spectral_residual_small(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="boxes"):
        window_saliency(np.zeros((4, 4), np.float32), np.zeros((2, 3), np.float32))


def test_runs_inside_a_saved_model(tmp_path):
    class Scorer(tf.Module):
        @tf.function(input_signature=[
            tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([None, 4], tf.float32)])
        def score(self, image, boxes):
            return {
                "map": spectral_residual(image),
                "windows": window_saliency(spectral_residual_small(image), boxes),
            }

    tf.saved_model.save(Scorer(), str(tmp_path))
    restored = tf.saved_model.load(str(tmp_path))
    image = np.random.default_rng(6).integers(0, 256, (37, 123, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 1, 1], [0.25, 0.5, 0.75, 1.0]], np.float32)
    out = restored.score(tf.constant(image), tf.constant(boxes))
    np.testing.assert_allclose(out["map"].numpy(), spectral_residual(image).numpy(), atol=1e-6)
    np.testing.assert_allclose(
        out["windows"].numpy(),
        window_saliency(spectral_residual_small(image), boxes).numpy(), atol=1e-6)


def test_large_photos_are_subsampled_without_changing_the_map(monkeypatch):
    """Above 16x the map's size the image is subsampled before the antialiased resize;
    on a real photograph at 2048 px the map stays what the full resize gives."""
    from skimage import data

    from keras_lmiqa import saliency

    photo = tf.image.resize(data.astronaut()[None].astype("float32"), (1536, 2048), method="bicubic")[0]
    noise = np.random.default_rng(0).normal(0, 6, photo.shape)
    photo = tf.constant(np.clip(photo.numpy() + noise, 0, 255).astype(np.uint8))
    small = photo[:768, :1024]  # 16x the map's long side: not subsampled
    fast, small_default = spectral_residual_small(photo).numpy(), spectral_residual_small(small).numpy()
    monkeypatch.setattr(saliency, "SUBSAMPLE_ABOVE", 10**6)  # every pixel through the resize
    exact, small_exact = spectral_residual_small(photo).numpy(), spectral_residual_small(small).numpy()
    assert fast.shape == exact.shape == (48, 64)
    assert np.abs(fast - exact).max() < 0.05
    assert np.corrcoef(fast.ravel(), exact.ravel())[0, 1] > 0.99
    np.testing.assert_array_equal(small_default, small_exact)
