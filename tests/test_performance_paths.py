"""The behaviour the performance work added: batched positive windows, maps traced once."""

import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa import crops
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.pipeline import TrainPipeline

SCALES = (1.0, 0.75, 0.5)


@pytest.mark.parametrize("scales, count", [(SCALES, 2), (SCALES, 5), ((1.0,), 2), (SCALES, 0)])
def test_batched_positive_windows_equal_one_call_per_anchor(scales, count):
    anchors = crops.random_windows(120, 90, 40, scales, 6, [3, 4])
    index = tf.range(6) % len(scales)
    batched = crops.positive_windows(anchors, index, 120, 90, 40, scales, count).numpy()
    assert batched.shape == (6, count, 4)
    for k in range(6):
        single = crops.positive_windows(anchors[k], int(index[k]), 120, 90, 40, scales, count).numpy()
        np.testing.assert_array_equal(batched[k], single)


def _images(folder, count=6):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8)
        path = str(folder / f"{i}.png")
        tf.io.write_file(path, tf.io.encode_png(pixels))
        paths.append(path)
    return paths


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_epochs_reuse_the_traced_maps(tmp_path, cache):
    config = TrainConfig(backbone="tiny", weights="none", crop_size=16, num_crops=3, num_positives=1,
                         batch_size=2, cache=cache)
    pipeline = TrainPipeline(_images(tmp_path), np.linspace(0, 1, 6), config)
    first = [b["crops"].numpy() for b in pipeline.epoch_dataset(0, 2, 3)]
    traced = dict(pipeline._traced_functions)
    sizes = {key: fn.experimental_get_tracing_count() for key, fn in traced.items()}
    again = [b["crops"].numpy() for b in pipeline.epoch_dataset(0, 2, 3)]
    other = [b["crops"].numpy() for b in pipeline.epoch_dataset(1, 2, 3)]
    assert pipeline._traced_functions.keys() == traced.keys()
    assert {key: fn.experimental_get_tracing_count() for key, fn in traced.items()} == sizes
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # the epoch seed is an input, not baked in
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_no_positive_views(tmp_path):
    config = TrainConfig(backbone="tiny", weights="none", crop_size=16, num_crops=3, num_positives=0,
                         batch_size=2, cache="none")
    (batch,) = list(TrainPipeline(_images(tmp_path, 2), [0.2, 0.8], config).epoch_dataset(0, 2, 1))
    assert batch["crops"].shape == (2, 3, 16, 16, 3) and batch["saliency"].shape == (2, 3)
    roles = batch["roles"].numpy()
    assert (roles[:, 0] == crops.ROLE_ANCHOR).all() and (roles != crops.ROLE_POSITIVE).all()
    # With no views, only overlap with the anchor makes a non-salient window neutral.
    assert np.isin(roles[:, 1:], [crops.ROLE_NON_SALIENT, crops.ROLE_NEUTRAL]).all()
