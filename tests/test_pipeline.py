"""The training and inference tf.data pipelines on real photographs."""

import os

import cv2
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from keras_lmiqa import crops, saliency
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.errors import ImageError
from keras_lmiqa.evaluation import predict_quality
from keras_lmiqa.pipeline import TrainPipeline, decode_image, inference_dataset

CONFIG = TrainConfig(backbone="tiny", weights="none", crop_size=32, num_crops=5, num_positives=2, batch_size=4,
                     grid_size=2, cache="memory")


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """Six photographs of different sizes and formats (PNG, JPEG, BMP, grey, RGBA)."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    for index, (photo, size, ext) in enumerate(zip(sources, [(120, 90), (100, 140), (96, 96), (20, 28)],
                                                    [".png", ".jpg", ".bmp", ".png"])):
        path = str(folder / f"photo{index}{ext}")
        cv2.imwrite(path, cv2.resize(photo, size, interpolation=cv2.INTER_AREA)[..., ::-1])
        paths.append(path)
    grey = str(folder / "grey.png")
    cv2.imwrite(grey, cv2.resize(skimage.data.camera(), (80, 64)))
    rgba = str(folder / "rgba.png")
    cv2.imwrite(rgba, np.dstack([cv2.resize(skimage.data.coffee(), (64, 48)), np.full((48, 64), 128, np.uint8)]))
    return paths + [grey, rgba]


def _epoch(paths, config, epoch=0, skip=0, batches=None):
    pipeline = TrainPipeline(paths, np.linspace(0, 1, len(paths)), config)
    count = batches or len(paths) // config.batch_size
    return list(pipeline.epoch_dataset(epoch, config.batch_size, count, skip_batches=skip))


def test_decode_handles_grey_and_rgba(photo_files):
    for path in photo_files[-2:]:
        image = decode_image(tf.io.read_file(path), 10**7)
        assert image.shape[-1] == 3 and image.dtype == tf.uint8


def test_training_batch_shapes_roles_and_dtypes(photo_files):
    (batch,) = _epoch(photo_files, CONFIG)
    assert batch["crops"].shape == (4, 7, 32, 32, 3) and batch["crops"].dtype == tf.uint8
    assert batch["saliency"].shape == (4, 7)
    roles = batch["roles"].numpy()
    expected = [crops.ROLE_ANCHOR] + [crops.ROLE_NON_SALIENT] * 4 + [crops.ROLE_POSITIVE] * 2
    assert (roles == expected).all()
    assert set(batch["image_id"].numpy()) <= set(range(len(photo_files)))
    assert ((batch["quality"].numpy() >= 0) & (batch["quality"].numpy() <= 1)).all()


def test_anchor_is_the_most_salient_window(photo_files):
    for batch in _epoch(photo_files, CONFIG.replace(batch_size=2)):
        sal = batch["saliency"].numpy()[:, :5]
        assert (sal[:, 0] >= sal[:, 1:].max(axis=1) - 1e-6).all()


def test_saliency_switch_off_picks_an_arbitrary_anchor(photo_files):
    batches = _epoch(photo_files * 4, CONFIG.replace(use_saliency=False, batch_size=4))
    sal = np.concatenate([b["saliency"].numpy()[:, :5] for b in batches])
    # A random anchor is not always the most salient of 5 windows.
    assert (sal[:, 0] < sal[:, 1:].max(axis=1) - 1e-6).any()


def test_epochs_are_deterministic_and_differ_between_epochs(photo_files):
    first = _epoch(photo_files, CONFIG, epoch=1)
    again = _epoch(photo_files, CONFIG, epoch=1)
    other = _epoch(photo_files, CONFIG, epoch=2)
    np.testing.assert_array_equal(first[0]["crops"].numpy(), again[0]["crops"].numpy())
    assert not np.array_equal(first[0]["crops"].numpy(), other[0]["crops"].numpy())


def test_skipping_batches_resumes_the_same_epoch(photo_files):
    config = CONFIG.replace(batch_size=2)
    full = _epoch(photo_files, config, epoch=3)
    resumed = _epoch(photo_files, config, epoch=3, skip=1)
    assert len(resumed) == len(full) - 1
    for a, b in zip(full[1:], resumed):
        np.testing.assert_array_equal(a["crops"].numpy(), b["crops"].numpy())
        np.testing.assert_array_equal(a["image_id"].numpy(), b["image_id"].numpy())


def test_uncached_pipeline_matches_cached(photo_files):
    cached = _epoch(photo_files, CONFIG, epoch=0)
    uncached = _epoch(photo_files, CONFIG.replace(cache="none"), epoch=0)
    # Same images and windows per image id, whatever the order.
    by_id = {int(i): c for b in cached for i, c in zip(b["image_id"].numpy(), b["crops"].numpy())}
    for b in uncached:
        for i, c in zip(b["image_id"].numpy(), b["crops"].numpy()):
            if int(i) in by_id:
                np.testing.assert_array_equal(by_id[int(i)], c)


def test_positive_views_centre_on_the_anchor(photo_files):
    config = CONFIG.replace(num_crops=3, num_positives=2, scales=(1.0, 0.5), crop_size=24, flip=False)
    pipeline = TrainPipeline(photo_files[:1], [0.5], config)
    image = decode_image(tf.io.read_file(photo_files[0]), 10**7)
    element = {"image": image, "saliency_map": saliency.spectral_residual_small(image, 64),
               "quality": tf.constant(0.5), "image_id": tf.constant(0)}
    sampled = pipeline._sample(element, 7)
    windows = sampled["windows"].numpy()
    centre = (windows[:, :2] + windows[:, 2:]) / 2
    np.testing.assert_allclose(centre[3:], np.repeat(centre[:1], 2, axis=0), atol=1e-3)


def test_inference_dataset_keeps_order_and_upscales_tiny_images(photo_files):
    batches = list(inference_dataset(photo_files, CONFIG, batch_size=4))
    assert [b["crops"].shape[0] for b in batches] == [4, 2]
    assert batches[0]["crops"].shape[1:] == (12, 32, 32, 3)
    tiny = batches[0]["crops"].numpy()[3]  # 28x20 photo: every window upscaled, none empty
    assert tiny.reshape(12, -1).std(axis=1).min() > 1.0


def test_unreadable_image_is_named(tmp_path, photo_files):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    from keras_lmiqa.models import build_branch

    model = build_branch(CONFIG)
    with pytest.raises(ImageError, match=os.path.basename(str(bad))):
        predict_quality(model, photo_files[:2] + [str(bad)], CONFIG)
