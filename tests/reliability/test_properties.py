"""Property-based tests: random bytes and shapes at the decoder, the pipeline element
functions and an export's signatures never crash, hang or give a NaN score.

Examples are derandomised (the same in every run) and bounded in number; every
function is traced once before hypothesis starts, so the deadline measures one call.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from crafted import exif_jpeg, exif_segment, jpeg, photo, png
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_lmiqa import image_io, saliency
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.crops import cut_crops
from keras_lmiqa.pipeline import TrainPipeline, decode_image, inference_elements

LIMIT = 1_000_000
FAST = settings(max_examples=150, deadline=5000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

decode = tf.function(lambda contents: decode_image(contents, LIMIT), input_signature=[tf.TensorSpec([], tf.string)])
orientation = tf.function(image_io.exif_orientation, input_signature=[tf.TensorSpec([], tf.string)])
SEEDS = [jpeg(photo(24, 32)), png(photo(20, 28)), exif_jpeg(photo(16, 24), 6, little_endian=False)]
PREFIXES = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"\xff\xd8" + exif_segment(6)[:12]]


@pytest.fixture(scope="module", autouse=True)
def traced():
    """Trace the functions under test once, so hypothesis' deadline times calls, not tracing."""
    decode(tf.constant(SEEDS[0]))
    orientation(tf.constant(SEEDS[2]))
    _elements(np.zeros([4, 5, 3], np.uint8))


def _check_decoded(contents: bytes) -> None:
    try:
        image = decode(tf.constant(contents)).numpy()
    except tf.errors.InvalidArgumentError:
        return  # refused with a message: fine
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    assert 0 < image.shape[0] * image.shape[1] <= LIMIT


@FAST
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=400))
def test_decoder_survives_random_bytes(prefix, body):
    _check_decoded(prefix + body)
    assert 1 <= int(orientation(tf.constant(prefix + body))) <= 8


@FAST
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_decoder_survives_corrupted_images(seed, data):
    """Real images with random bytes overwritten (headers, EXIF, scan data) or cut short."""
    contents = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(contents) - 1))
        contents[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(2, len(contents)))
    _check_decoded(bytes(contents[:cut]))
    assert 1 <= int(orientation(tf.constant(bytes(contents[:cut])))) <= 8


CONFIG = TrainConfig(backbone="tiny", weights="none", crop_size=16, num_crops=3, num_positives=2, grid_size=2,
                     flip=True)
_pipeline = TrainPipeline(["unused.png"], [0.5], CONFIG)


@tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
def _elements(image):
    """The pipeline's element functions on one decoded image: training and inference."""
    small = saliency.spectral_residual_small(image, CONFIG.saliency_long_side)
    sampled = _pipeline._sample({"image": image, "saliency_map": small, "quality": tf.constant(0.5),
                                 "image_id": tf.constant(3)}, tf.constant(11))
    train_crops = cut_crops(image[None], sampled["windows"][None], CONFIG.crop_size, sampled["flip"][None])
    windows, grid_saliency = inference_elements(image, CONFIG)
    grid_crops = cut_crops(image[None], windows[None], CONFIG.crop_size)
    return sampled["windows"], sampled["saliency"], train_crops, windows, grid_saliency, grid_crops


@FAST
@given(height=st.integers(1, 90), width=st.integers(1, 90), kind=st.sampled_from(["noise", "flat", "ramp"]),
       seed=st.integers(0, 2 ** 16))
def test_pipeline_elements_are_finite_for_any_image_shape(height, width, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif kind == "flat":  # no contrast: saliency must not divide by zero
        image = np.full((height, width, 3), rng.integers(0, 256), np.uint8)
    else:
        image = np.broadcast_to(np.linspace(0, 255, width, dtype=np.uint8)[None, :, None], (height, width, 3))
    windows, scores, train_crops, grid, grid_saliency, grid_crops = (t.numpy() for t in _elements(image))
    assert np.isfinite(scores).all() and np.isfinite(grid_saliency).all()
    for w in (windows, grid):  # every window inside the image and at least one pixel wide
        assert np.isfinite(w).all()
        assert (w[:, 0] >= -1e-3).all() and (w[:, 1] >= -1e-3).all()
        assert (w[:, 2] <= height + 1e-3).all() and (w[:, 3] <= width + 1e-3).all()
        assert ((w[:, 2] - w[:, 0]) >= 1 - 1e-3).all() and ((w[:, 3] - w[:, 1]) >= 1 - 1e-3).all()
    assert train_crops.shape == (1, CONFIG.crops_per_image, 16, 16, 3)
    assert grid_crops.shape == (1, len(grid), 16, 16, 3)
    assert len(grid) == len({tuple(w) for w in grid.tolist()})  # no window twice
    if kind == "flat":  # upscaled or not, a flat image gives flat crops of its colour
        assert (train_crops == image[0, 0]).all() and (grid_crops == image[0, 0]).all()


@pytest.fixture(scope="module")
def signatures(untrained_export):
    loaded = tf.saved_model.load(untrained_export)
    by_bytes, by_pixels = loaded.signatures["serving_default"], loaded.signatures["score_pixels"]
    by_bytes(images=tf.constant([SEEDS[0]]))  # first calls outside the deadline
    by_pixels(pixels=tf.zeros([1, 8, 8, 3], tf.uint8))
    return loaded, by_bytes, by_pixels


def _assert_scores(out, count):
    score = out["score"].numpy()
    assert score.shape == (count,) and np.isfinite(score).all() and ((score >= 0) & (score <= 1)).all()
    weights = out["crop_weights"].numpy()
    assert np.isfinite(weights).all() and np.allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.isfinite(out["mos"].numpy()).all()


SERVE = settings(FAST, max_examples=40)


@SERVE
@given(batch=st.integers(0, 3), height=st.integers(0, 48), width=st.integers(0, 48), seed=st.integers(0, 2 ** 16))
def test_score_pixels_any_shape_scores_or_refuses(signatures, batch, height, width, seed):
    _, _, by_pixels = signatures
    pixels = np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    try:
        out = by_pixels(pixels=tf.constant(pixels))
    except tf.errors.InvalidArgumentError as error:
        assert batch == 0 or height * width == 0, error.message  # only empty input is refused
        return
    _assert_scores(out, batch)


@SERVE
@given(items=st.lists(st.one_of(st.sampled_from(SEEDS), st.binary(max_size=64),
                                st.builds(lambda p, b: p + b, st.sampled_from(PREFIXES), st.binary(max_size=64))),
                      min_size=1, max_size=3))
def test_serving_default_random_bytes_score_or_refuse(signatures, items):
    _, by_bytes, _ = signatures
    try:
        out = by_bytes(images=tf.constant(items))
    except tf.errors.InvalidArgumentError:
        assert not all(item in SEEDS for item in items)  # valid images are never refused
        return
    _assert_scores(out, len(items))
