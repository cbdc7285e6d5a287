"""The training and inference tf.data pipelines on real photographs."""

import os

import cv2
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from keras_lmiqa import crops, saliency
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.errors import ConfigError, ImageError
from keras_lmiqa.models.scoring import predict_quality
from keras_lmiqa.pipeline import TrainPipeline, decode_image, inference_dataset, window_iou

CONFIG = TrainConfig(backbone="tiny", weights="none", crop_size=32, num_crops=5, num_positives=2, batch_size=4,
                     grid_size=2, cache="encoded")


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
    assert roles.dtype == np.int32
    assert (roles[:, 0] == crops.ROLE_ANCHOR).all() and (roles[:, 5:] == crops.ROLE_POSITIVE).all()
    assert np.isin(roles[:, 1:5], [crops.ROLE_NON_SALIENT, crops.ROLE_NEUTRAL]).all()
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


def test_every_cache_mode_gives_the_same_batches(photo_files, caplog, tmp_path):
    config = CONFIG.replace(batch_size=2)
    modes = ("encoded", "none", "decoded", "memory", str(tmp_path / "cache"))
    with caplog.at_level("INFO", logger="keras_lmiqa.pipeline"):
        runs = {cache: [_epoch(photo_files, config.replace(cache=cache), epoch=e, skip=s) for e, s in ((0, 0), (1, 1))]
                for cache in modes}
    for cache in modes[1:]:
        for epoch, other in zip(runs["encoded"], runs[cache]):
            assert len(epoch) == len(other) > 0
            for a, b in zip(epoch, other):  # same order, bit-identical crops
                assert a.keys() == b.keys()
                for key in a:
                    np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=f"{cache} {key}")
    size = sum(os.path.getsize(p) for p in photo_files)
    assert f"caching 6 encoded images in RAM ({size / 1e3:.3g} kB)" in caplog.text
    assert "caching 6 decoded images and saliency maps in RAM" in caplog.text


def test_decoded_cache_over_its_budget_is_refused(photo_files):
    # What the cache would hold: 6 images of 42,768 pixels (128 kB) and their saliency maps.
    decoded = [decode_image(tf.io.read_file(path), 10**7) for path in photo_files]
    size = sum(image.numpy().nbytes + saliency.spectral_residual_small(image, 64).numpy().nbytes for image in decoded)
    assert 200e3 < size < 210e3
    pipeline = TrainPipeline(photo_files, np.linspace(0, 1, 6), CONFIG.replace(cache="decoded", cache_budget_gb=1e-4))
    with pytest.raises(ConfigError, match=rf"estimated {size / 1e3:.3g} kB .*over cache_budget_gb=0.0001 GB"):
        pipeline.epoch_dataset(0, 2, 1)
    small = TrainPipeline(photo_files, np.linspace(0, 1, 6), CONFIG.replace(cache="memory", cache_budget_gb=3e-4))
    assert "decoded images" in small.check_cache() and len(list(small.epoch_dataset(0, 2, 1))) == 1


def test_window_iou_matches_a_hand_computation():
    a = [[0, 0, 10, 10], [5, 5, 15, 25]]
    b = [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [2, 3, 4, 8], [3, 3, 3, 3]]
    # a0 (area 100) & b1: rows 5-10 x cols 0-10 = 50, union 100 + 100 - 50; & b3 (area 10): 10, inside.
    # a1 (area 200) & b0: rows 5-10 x cols 5-10 = 25, union 200 + 100 - 25; & b1: rows 5-15 x cols
    # 5-10 = 50, union 200 + 100 - 50; b2 starts below a1, b3 above it; b4 is empty.
    expected = [[1.0, 50 / 150, 0.0, 10 / 100, 0.0],
                [25 / 275, 50 / 250, 0.0, 0.0, 0.0]]
    np.testing.assert_allclose(window_iou(a, b).numpy(), expected, rtol=1e-6)
    assert window_iou(np.zeros([0, 4]), b).shape == (0, 5)


def _iou(a, b):
    """Plain numpy IoU of two windows, for checking the pipeline's roles."""
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _sampled_roles(config, seeds):
    image = tf.constant(cv2.resize(skimage.data.astronaut(), (240, 180), interpolation=cv2.INTER_AREA))
    element = {"image": image, "saliency_map": saliency.spectral_residual_small(image, 64),
               "quality": tf.constant(0.5), "image_id": tf.constant(0)}
    pipeline = TrainPipeline(["unused.png"], [0.5], config)
    for seed in seeds:
        sampled = pipeline._sample(element, seed)
        yield sampled["windows"].numpy(), sampled["roles"].numpy()


def test_non_salient_windows_overlapping_the_anchor_or_a_positive_are_neutral():
    config = CONFIG.replace(crop_size=48, num_crops=8, num_positives=2)
    assert config.intra_iou_threshold == 0.3
    k = config.num_crops
    seen = set()
    for windows, roles in _sampled_roles(config, range(12)):
        assert roles.dtype == np.int32 and roles.shape == (k + 2,)
        assert roles[0] == crops.ROLE_ANCHOR and (roles[k:] == crops.ROLE_POSITIVE).all()
        references = [windows[0], *windows[k:]]
        for window, role in zip(windows[1:k], roles[1:k]):
            overlap = max(_iou(window, r) for r in references)
            assert role == (crops.ROLE_NEUTRAL if overlap >= 0.3 else crops.ROLE_NON_SALIENT), (overlap, role)
            seen.add(int(role))
    assert seen == {crops.ROLE_NEUTRAL, crops.ROLE_NON_SALIENT}  # the made image exercises both


def test_a_threshold_above_one_keeps_every_non_salient_window_an_intra_negative():
    config = CONFIG.replace(crop_size=48, num_crops=8, num_positives=2, intra_iou_threshold=1.01)
    for _, roles in _sampled_roles(config, range(12)):
        expected = [crops.ROLE_ANCHOR] + [crops.ROLE_NON_SALIENT] * 7 + [crops.ROLE_POSITIVE] * 2
        np.testing.assert_array_equal(roles, expected)


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
    # 90x120, 140x100, 96x96, 28x20: native tiles 3x4, 5x4, 3x3, 2x1, 2x2 per coarser scale
    sizes = [(90, 120), (140, 100), (96, 96), (28, 20)]
    counts = [crops.grid_window_count(h, w, 32, CONFIG.scales, 2) for h, w in sizes]
    assert counts == [20, 28, 17, 2]
    assert batches[0]["crops"].shape[1:] == (28, 32, 32, 3)
    np.testing.assert_array_equal(batches[0]["mask"].numpy().sum(1), counts)
    tiny = batches[0]["crops"].numpy()[3, :2]  # 28x20 photo: every window upscaled, none empty
    assert tiny.reshape(2, -1).std(axis=1).min() > 1.0
    assert (batches[0]["crops"].numpy()[3, 2:] == 0).all()  # padding windows: black, masked out


def test_unreadable_image_is_named(tmp_path, photo_files):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    from keras_lmiqa.models import build_branch

    model = build_branch(CONFIG)
    with pytest.raises(ImageError, match=os.path.basename(str(bad))):
        predict_quality(model, photo_files[:2] + [str(bad)], CONFIG)
