"""Synthetic ranking: the in-graph distortions, the ordinal loss, mixed batches, the step."""

import dataclasses
import os

import cv2
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from keras_lmiqa import synthetic
from keras_lmiqa.config import SYNTHETIC_FAMILIES, TrainConfig
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.losses import ordinal_ranking_loss, pairwise_ranking_loss, synthetic_ranking_loss
from keras_lmiqa.pipeline import TrainPipeline
from keras_lmiqa.training.step import LMIQATrainer

IMAGE = cv2.resize(skimage.data.astronaut(), (192, 160), interpolation=cv2.INTER_AREA)


def _distorted(family, level, image=IMAGE, seed=(3, 4)):
    return synthetic.distort(tf.constant(image), SYNTHETIC_FAMILIES.index(family), level,
                             tf.constant(seed, tf.int32)).numpy().astype(np.float64)


def _luma(image):
    return image @ np.array([0.299, 0.587, 0.114])


def _gradient_energy(image):
    luma = _luma(image)
    return float(np.mean(np.diff(luma, axis=0) ** 2) + np.mean(np.diff(luma, axis=1) ** 2))


def _noise_std(image):
    return float(np.std(image - IMAGE.astype(np.float64)))


def _blockiness(image):
    """Mean luma step across 8-pixel block borders over the mean step inside blocks."""
    steps = np.abs(np.diff(_luma(image), axis=1))
    border = steps[:, 7::8].mean()
    inside = np.delete(steps, np.s_[7::8], axis=1).mean()
    return float(border / inside)


def _saturation(image):
    return float(np.mean(image.max(axis=-1) - image.min(axis=-1)))


# family -> (measured quantity, +1 if it grows with the level, -1 if it shrinks)
MEASURES = {
    "noise_luma": (_noise_std, 1),
    "noise_color": (_noise_std, 1),
    "jpeg": (_blockiness, 1),
    "blur_gaussian": (_gradient_energy, -1),
    "blur_motion": (_gradient_energy, -1),
    "over_exposure": (lambda im: float(im.mean()), 1),
    "under_exposure": (lambda im: float(im.mean()), -1),
    "contrast": (lambda im: float(_luma(im).std()), -1),
    "downscale": (_gradient_energy, -1),
    "saturation": (_saturation, -1),
}


def test_the_level_table_lists_every_configured_family_in_order():
    assert tuple(synthetic.LEVELS) == SYNTHETIC_FAMILIES == synthetic.FAMILIES
    assert set(MEASURES) == set(SYNTHETIC_FAMILIES)
    assert all(len(levels) == synthetic.NUM_LEVELS for levels in synthetic.LEVELS.values())


@pytest.mark.parametrize("family", SYNTHETIC_FAMILIES)
def test_each_distortion_is_monotone_in_its_level(family):
    measure, direction = MEASURES[family]
    values = [measure(IMAGE.astype(np.float64))] + [measure(_distorted(family, level)) for level in range(1, 6)]
    steps = direction * np.diff(values)
    assert np.all(steps > 0), f"{family}: {np.round(values, 3)}"


@pytest.mark.parametrize("family", SYNTHETIC_FAMILIES)
def test_a_distortion_keeps_the_shape_and_is_deterministic_in_its_seed(family):
    first, again = _distorted(family, 3), _distorted(family, 3)
    assert first.shape == IMAGE.shape
    np.testing.assert_array_equal(first, again)


def test_random_families_draw_from_the_seed():
    a, b = _distorted("noise_color", 2, seed=(1, 1)), _distorted("noise_color", 2, seed=(1, 2))
    assert not np.array_equal(a, b)


def test_jpeg_copies_shrink_the_file_with_the_level():
    sizes = [len(cv2.imencode(".png", _distorted("jpeg", level).astype(np.uint8))[1]) for level in range(1, 6)]
    assert sizes == sorted(sizes, reverse=True)


def test_groups_draw_one_configured_family_and_distinct_ascending_levels():
    for i in range(30):
        family, levels = synthetic.sample_group([2, 5], 3, tf.constant([i, 7]))
        levels = levels.numpy()
        assert int(family) in (2, 5)
        assert len(set(levels)) == 3 and list(levels) == sorted(levels) and levels.min() >= 1 and levels.max() <= 5


def _reference_ordinal(pred, reference, order, temperature, mask):
    per_image = []
    for i in range(len(pred)):
        pairs = [np.logaddexp(0.0, -order[i, j] * (pred[i] - reference[j]) / temperature)
                 for j in range(len(reference)) if order[i, j] != 0]
        per_image.append(np.mean(pairs) if pairs else 0.0)
    per_image = np.array(per_image)
    return float(np.sum(mask * per_image) / max(np.sum(mask), 1.0))


def test_synthetic_ranking_loss_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    photo = np.array([5, 5, 5, 9, 9, 9, 2, 1], np.int32)
    level = np.array([0, 2, 4, 0, 1, 3, 0, 0], np.int32)
    pred = rng.random(8).astype(np.float32)
    got = float(synthetic_ranking_loss(pred, photo, level, pred, photo, level, temperature=0.05))
    order = (photo[:, None] == photo[None, :]) * np.sign(level[None, :] - level[:, None])
    has_pair = (np.abs(order).sum(axis=1) > 0).astype(np.float64)
    want = _reference_ordinal(pred.astype(np.float64), pred.astype(np.float64), order, 0.05, has_pair)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert has_pair.tolist() == [1, 1, 1, 1, 1, 1, 0, 0]


def test_synthetic_ranking_loss_falls_when_the_copies_score_lower():
    photo, level = np.zeros(3, np.int32), np.array([0, 1, 3], np.int32)
    right = np.array([0.8, 0.5, 0.2], np.float32)
    wrong = right[::-1].copy()
    assert float(synthetic_ranking_loss(right, photo, level, right, photo, level)) < 0.01
    assert float(synthetic_ranking_loss(wrong, photo, level, wrong, photo, level)) > 5.0


def test_masked_mos_ranking_ignores_the_unlabelled_copies():
    rng = np.random.default_rng(1)
    pred, target = rng.random(6).astype(np.float32), rng.random(6).astype(np.float32)
    labelled = np.array([1, 1, 0, 1, 0, 1], np.float32)
    got = float(pairwise_ranking_loss(pred, target, pred, target, 0.05, labelled, labelled))
    keep = labelled > 0
    want = float(pairwise_ranking_loss(pred[keep], target[keep], pred[keep], target[keep], 0.05))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Unmasked, the loss is the plain mean over every image.
    order = np.sign(target[:, None] - target[None, :])
    np.testing.assert_allclose(float(ordinal_ranking_loss(pred, pred, order, 0.05)),
                               _reference_ordinal(pred, pred, order, 0.05, np.ones(6)), rtol=1e-5)


def test_config_refuses_unknown_families_and_bad_counts():
    with pytest.raises(ConfigError, match="synthetic_families: 'fog'"):
        TrainConfig(synthetic_families=("jpeg", "fog"))
    with pytest.raises(ConfigError, match="synthetic_copies"):
        TrainConfig(synthetic_copies=6)
    assert TrainConfig(synthetic_families=["jpeg"]).synthetic_families == ("jpeg",)


CONFIG = TrainConfig(backbone="tiny", weights="none", crop_size=32, num_crops=3, num_positives=1, batch_size=4,
                     synthetic_groups=2, synthetic_copies=2, head_units=16, embedding_dim=8, dropout=0.0,
                     warmup_epochs=0.0, lambda_rank=0.1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, photo in enumerate([skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(),
                               skimage.data.rocket(), skimage.data.immunohistochemistry(), skimage.data.cat()]):
        path = os.path.join(folder, f"p{i}.png")
        cv2.imwrite(path, cv2.resize(photo, (96, 80), interpolation=cv2.INTER_AREA)[..., ::-1])
        paths.append(path)
    return paths, np.linspace(0.1, 0.9, len(paths)).tolist()


@pytest.fixture(scope="module")
def mixed_batch(photos):
    return next(iter(TrainPipeline(*photos, CONFIG).epoch_dataset(0, 4, 1)))


def test_mixed_batches_hold_the_photos_then_each_group_cut_at_one_set_of_windows(mixed_batch):
    batch = mixed_batch
    level, family, image_id = batch["level"].numpy(), batch["family"].numpy(), batch["image_id"].numpy()
    assert batch["crops"].shape == (4 + 2 * 3, 4, 32, 32, 3)
    assert level[:4].tolist() == [0] * 4 and family[:4].tolist() == [-1] * 4
    for group in (slice(4, 7), slice(7, 10)):
        assert level[group][0] == 0 and 0 < level[group][1] < level[group][2] <= 5
        assert len(set(image_id[group])) == 1 and len(set(family[group])) == 1 and family[group][0] >= 0
        np.testing.assert_array_equal(batch["roles"].numpy()[group][0], batch["roles"].numpy()[group][2])
        crops = batch["crops"].numpy()[group].astype(np.float64)
        assert np.mean(np.abs(crops[0] - crops[2])) > 0.5  # the copy differs from its photo


def test_a_resumed_epoch_continues_with_the_same_groups(photos):
    pipeline = TrainPipeline(*photos, CONFIG.replace(batch_size=2, synthetic_groups=1))
    whole = list(pipeline.epoch_dataset(1, 2, 3))
    resumed = list(pipeline.epoch_dataset(1, 2, 3, skip_batches=1))
    assert len(resumed) == 2
    for a, b in zip(whole[1:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())


def test_the_step_trains_mos_on_photos_only_and_ranks_each_group(mixed_batch):
    batch = mixed_batch
    trainer = LMIQATrainer(CONFIG, 5)
    terms = trainer.make_train_function(tf.distribute.get_strategy())(batch)
    assert float(terms["synthetic"]) > 0.1 and float(terms["quality"]) > 0
    # A copy's quality field (its photo's MOS) does not enter the MOS terms.
    changed = {**batch, "quality": tf.where(batch["level"] > 0, 5.0, batch["quality"])}
    out = trainer.student(batch["crops"])
    keys = tf.zeros([10 * 4, CONFIG.embedding_dim])
    a, b = (trainer._branch_losses(out, out, data, 10, 0, keys, 0.0) for data in (batch, changed))
    for name in ("quality", "rank", "synthetic"):
        np.testing.assert_allclose(float(a[name]), float(b[name]), rtol=1e-6)


def test_group_members_are_intra_negatives_of_each_other():
    trainer = LMIQATrainer(CONFIG, 5)
    roles = tf.constant([[0, 1, 1, 2]] * 4, tf.int32)
    batch = {"roles": roles, "image_id": tf.constant([7, 3, 3, 3]), "level": tf.constant([0, 0, 1, 4])}
    positive, intra, neutral = trainer._masks(batch, offset=0)
    positive, intra = positive.numpy(), intra.numpy()
    assert neutral is None
    np.testing.assert_array_equal(np.nonzero(intra[0])[0], [1, 2])  # a photo without group: its own windows
    np.testing.assert_array_equal(np.nonzero(intra[1])[0], [5, 6, *range(8, 16)])  # plus both copies, whole
    np.testing.assert_array_equal(np.nonzero(intra[2])[0], [4, 5, 6, 7, 9, 10, 12, 13, 14, 15])
    np.testing.assert_array_equal(np.nonzero(positive[2])[0], [8, 11])
    assert (positive * intra).sum() == 0


def test_neutral_siblings_leave_each_others_denominator():
    trainer = LMIQATrainer(dataclasses.replace(CONFIG, synthetic_siblings="neutral"), 5)
    roles = tf.constant([[0, 1, 1, 2]] * 4, tf.int32)
    batch = {"roles": roles, "image_id": tf.constant([7, 3, 3, 3]), "level": tf.constant([0, 0, 1, 4])}
    positive, intra, neutral = (m.numpy() for m in trainer._masks(batch, offset=0))
    np.testing.assert_array_equal(np.nonzero(intra[1])[0], [5, 6])  # only its own windows
    np.testing.assert_array_equal(np.nonzero(neutral[1])[0], range(8, 16))  # both copies, whole
    np.testing.assert_array_equal(np.nonzero(neutral[0])[0], [])
    assert (positive * neutral).sum() == 0
