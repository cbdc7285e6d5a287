import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa.losses import (
    LocalManifoldContrastiveLoss,
    QualitySmoothL1,
    local_manifold_contrastive_loss,
    mutual_distillation_loss,
    pairwise_ranking_loss,
    quality_loss,
)


def _unit(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference_contrastive(query, keys, pos, intra, tau, w):
    """Plain float64 loops over queries and positives, straight from docs/method.md."""
    query = query.astype(np.float64)
    keys = keys.astype(np.float64)
    per_query = []
    for i in range(query.shape[0]):
        positives = [k for k in range(keys.shape[0]) if pos[i, k] > 0.5]
        if not positives:
            continue
        s = keys @ query[i] / tau
        denominator = sum(math.exp(s[p]) for p in positives)
        for n in range(keys.shape[0]):
            if pos[i, n] > 0.5:
                continue
            if intra[i, n] > 0.5:
                denominator += w * math.exp(s[n])
            else:
                denominator += math.exp(s[n])
        terms = [-math.log(math.exp(s[p]) / denominator) for p in positives]
        per_query.append(sum(terms) / len(terms))
    return sum(per_query) / len(per_query) if per_query else 0.0


def _reference_contrastive_stable(query, keys, pos, intra, tau, w):
    """Same loops with the exponentials shifted by the row max (for tau = 0.01)."""
    per_query = []
    for i in range(query.shape[0]):
        positives = [k for k in range(keys.shape[0]) if pos[i, k] > 0.5]
        if not positives:
            continue
        s = keys.astype(np.float64) @ query[i].astype(np.float64) / tau
        shift = s.max()
        denominator = 0.0
        for n in range(keys.shape[0]):
            if pos[i, n] > 0.5:
                denominator += math.exp(s[n] - shift)
            elif intra[i, n] > 0.5:
                denominator += w * math.exp(s[n] - shift)
            else:
                denominator += math.exp(s[n] - shift)
        terms = [-(s[p] - shift - math.log(denominator)) for p in positives]
        per_query.append(sum(terms) / len(terms))
    return sum(per_query) / len(per_query) if per_query else 0.0


def _lmiqa_masks(batch, crops, views, with_intra=True, rng=None):
    """Keys laid out per image: `views` positive views, then `crops` other crops."""
    per_image = views + crops
    pos = np.zeros((batch, batch * per_image), np.float32)
    intra = np.zeros_like(pos)
    for i in range(batch):
        start = i * per_image
        n_views = views if rng is None else int(rng.integers(0, views + 1))
        pos[i, start:start + n_views] = 1
        if with_intra:
            intra[i, start + views:start + per_image] = 1
    return pos, intra


@pytest.mark.parametrize("tau", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("intra_weight", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("views,with_intra", [(1, True), (3, True), (2, False)])
def test_contrastive_matches_reference(tau, intra_weight, views, with_intra):
    rng = np.random.default_rng(int(tau * 100) + views * 7 + int(intra_weight * 3))
    batch, crops, dim = 4, 3, 16
    pos, intra = _lmiqa_masks(batch, crops, views, with_intra)
    keys = _unit(rng, pos.shape[1], dim).astype(np.float32)
    query = _unit(rng, batch, dim).astype(np.float32)
    got = float(local_manifold_contrastive_loss(
        query, keys, pos, intra, temperature=tau, intra_weight=intra_weight))
    if tau >= 0.1:
        want = _reference_contrastive(query, keys, pos, intra, tau, intra_weight)
    else:
        want = _reference_contrastive_stable(query, keys, pos, intra, tau, intra_weight)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("intra_weight", [0.0, 0.5, 1.0])
def test_contrastive_neutral_keys_leave_the_denominator(intra_weight):
    """A neutral key is as if it were absent: the loss equals the reference without it."""
    rng = np.random.default_rng(11)
    batch, crops, views, dim = 4, 3, 2, 16
    pos, intra = _lmiqa_masks(batch, crops, views)
    keys = _unit(rng, pos.shape[1], dim).astype(np.float32)
    query = _unit(rng, batch, dim).astype(np.float32)
    neutral = (rng.random(pos.shape) < 0.3).astype(np.float32)
    neutral[0, 0] = 1  # on a positive: it stays a positive
    got = float(local_manifold_contrastive_loss(query, keys, pos, intra, 0.1, intra_weight, neutral))
    per_query = []
    for i in range(batch):
        kept = (neutral[i] < 0.5) | (pos[i] > 0.5)
        per_query.append(_reference_contrastive(query[i:i + 1], keys[kept], pos[i:i + 1, kept],
                                                intra[i:i + 1, kept], 0.1, intra_weight))
    np.testing.assert_allclose(got, np.mean(per_query), rtol=1e-5)
    assert abs(got - float(local_manifold_contrastive_loss(query, keys, pos, intra, 0.1, intra_weight))) > 1e-3


def test_contrastive_queries_without_positives_are_excluded():
    rng = np.random.default_rng(3)
    batch, crops, views, dim = 6, 2, 3, 8
    pos, intra = _lmiqa_masks(batch, crops, views, rng=rng)
    pos[0] = 0  # at least one query without positives
    pos[1, :views] = 1
    query = _unit(rng, batch, dim).astype(np.float32)
    keys = _unit(rng, pos.shape[1], dim).astype(np.float32)
    got = float(local_manifold_contrastive_loss(query, keys, pos, intra, 0.1, 0.5))
    want = _reference_contrastive(query, keys, pos, intra, 0.1, 0.5)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_contrastive_no_positive_anywhere_is_zero_with_finite_gradient():
    rng = np.random.default_rng(4)
    query = tf.constant(_unit(rng, 3, 8), tf.float32)
    keys = tf.constant(_unit(rng, 9, 8), tf.float32)
    pos = np.zeros((3, 9), np.float32)
    intra = np.zeros((3, 9), np.float32)
    intra[:, :2] = 1
    with tf.GradientTape() as tape:
        tape.watch([query, keys])
        loss = local_manifold_contrastive_loss(query, keys, pos, intra, 0.01, 0.0)
    grads = tape.gradient(loss, [query, keys])
    assert float(loss) == 0.0
    for g in grads:
        assert np.all(np.isfinite(g.numpy()))


@pytest.mark.parametrize("intra_weight", [0.0, 1.0, 2.0])
def test_contrastive_gradients_finite_at_small_temperature(intra_weight):
    rng = np.random.default_rng(5)
    batch, crops, views = 4, 3, 2
    pos, intra = _lmiqa_masks(batch, crops, views)
    pos[2] = 0  # a query without positives
    keys_np = _unit(rng, pos.shape[1], 16)
    keys_np[0] = _unit(rng, 1, 16)[0]
    query_np = _unit(rng, batch, 16)
    query_np[0] = keys_np[0]  # logit exactly 1 / tau = 100 on a positive
    query = tf.constant(query_np, tf.float32)
    keys = tf.constant(keys_np, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([query, keys])
        loss = local_manifold_contrastive_loss(query, keys, pos, intra, 0.01, intra_weight)
    grads = tape.gradient(loss, [query, keys])
    assert np.isfinite(float(loss))
    for g in grads:
        assert np.all(np.isfinite(g.numpy()))
        assert np.any(g.numpy() != 0)


@pytest.mark.parametrize("num_positives", [1, 2, 4])
def test_contrastive_all_mass_on_positives_reaches_log_num_positives(num_positives):
    # Positives identical to the query, negatives opposite: the softmax mass is spread
    # evenly over the positives, so each term is log(#positives), the lower bound.
    rng = np.random.default_rng(6)
    dim = 8
    query = _unit(rng, 1, dim)
    keys = np.concatenate([np.repeat(query, num_positives, 0), -np.repeat(query, 5, 0)])
    pos = np.zeros((1, keys.shape[0]), np.float32)
    pos[0, :num_positives] = 1
    intra = np.zeros_like(pos)
    intra[0, num_positives:num_positives + 2] = 1
    loss = float(local_manifold_contrastive_loss(
        query.astype(np.float32), keys.astype(np.float32), pos, intra, temperature=0.01))
    # float32 resolution at logits ~1/tau = 100 is ~1e-5.
    np.testing.assert_allclose(loss, math.log(num_positives), atol=2e-5)
    # Never below the bound on random inputs.
    keys = _unit(rng, 12, dim).astype(np.float32)
    pos = np.zeros((1, 12), np.float32)
    pos[0, :num_positives] = 1
    loss = float(local_manifold_contrastive_loss(
        query.astype(np.float32), keys, pos, np.zeros_like(pos), temperature=0.1))
    assert loss >= math.log(num_positives) - 1e-5


def test_contrastive_rejects_bad_arguments():
    q = np.ones((1, 2), np.float32)
    m = np.ones((1, 1), np.float32)
    with pytest.raises(ValueError, match="temperature"):
        local_manifold_contrastive_loss(q, q, m, m, temperature=0.0)
    with pytest.raises(ValueError, match="intra_weight"):
        LocalManifoldContrastiveLoss(intra_weight=-1.0)


@pytest.mark.parametrize("beta", [1.0, 0.1, 0.0])
def test_quality_loss_matches_numpy(beta):
    rng = np.random.default_rng(7)
    pred = rng.uniform(-0.5, 1.5, size=32).astype(np.float32)
    target = rng.uniform(0, 1, size=32).astype(np.float32)
    d = np.abs(pred.astype(np.float64) - target)
    if beta == 0:
        want = d.mean()
    else:
        want = np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta).mean()
    np.testing.assert_allclose(float(quality_loss(pred, target, beta=beta)), want, rtol=1e-6)
    # The Keras class gives the same value, also for (batch, 1) predictions.
    loss = QualitySmoothL1(beta=beta)
    np.testing.assert_allclose(float(loss(target, pred[:, None])), want, rtol=1e-6)


def _reference_ranking(pred, target, ref_pred, ref_target, tau):
    """Plain float64 loops over (image, reference) pairs with different targets."""
    per_image = []
    for p, t in zip(pred.astype(np.float64), target.astype(np.float64)):
        pairs = [math.log1p(math.exp(-np.sign(t - rt) * (p - rp) / tau))
                 for rp, rt in zip(ref_pred.astype(np.float64), ref_target.astype(np.float64)) if rt != t]
        per_image.append(np.mean(pairs) if pairs else 0.0)
    return float(np.mean(per_image))


@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_ranking_loss_matches_numpy(tau):
    rng = np.random.default_rng(11)
    pred = rng.uniform(size=6).astype(np.float32)
    target = rng.uniform(size=6).astype(np.float32)
    target[3] = target[1]  # a tie: that pair does not count
    ref_pred = np.concatenate([pred, rng.uniform(size=4).astype(np.float32)])
    ref_target = np.concatenate([target, rng.uniform(size=4).astype(np.float32)])
    got = float(pairwise_ranking_loss(pred, target, ref_pred, ref_target, temperature=tau))
    np.testing.assert_allclose(got, _reference_ranking(pred, target, ref_pred, ref_target, tau), rtol=1e-5)


def test_ranking_loss_is_low_for_the_right_order_and_zero_without_pairs():
    target = np.array([0.1, 0.5, 0.9], np.float32)
    right = float(pairwise_ranking_loss(target, target, target, target, temperature=0.05))
    wrong = float(pairwise_ranking_loss(target[::-1].copy(), target, target[::-1].copy(), target, temperature=0.05))
    assert right < 0.01 < 5.0 < wrong
    same = np.full(3, 0.5, np.float32)
    assert float(pairwise_ranking_loss(target, same, target, same)) == 0.0


def test_ranking_loss_gradient_reaches_scores_only_and_orders_them():
    pred = tf.constant([0.6, 0.4], tf.float32)  # in the wrong order for these targets
    target = tf.constant([0.2, 0.8], tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(pred)
        reference = tf.identity(pred)
        tape.watch(reference)
        loss = pairwise_ranking_loss(pred, target, reference, target, temperature=0.1)
    grad = tape.gradient(loss, pred).numpy()
    assert tape.gradient(loss, reference) is None
    assert grad[0] > 0 > grad[1]  # descent lowers the first score and raises the second


def test_mutual_distillation_matches_numpy():
    rng = np.random.default_rng(8)
    batch, crops, tau_s = 5, 6, 0.1
    student = rng.uniform(size=batch).astype(np.float32)
    teacher = rng.uniform(size=batch).astype(np.float32)
    sal = rng.uniform(size=(batch, crops)).astype(np.float32)
    logits = rng.normal(size=(batch, crops)).astype(np.float32) * 3
    total, mse, kl = mutual_distillation_loss(student, teacher, sal, logits, tau_s)

    want_mse = np.mean((student.astype(np.float64) - teacher) ** 2)
    want_kl = 0.0
    for b in range(batch):
        z = (sal[b] - sal[b].mean()) / (sal[b].std() + 1e-3)  # standardised within the image
        p = np.exp(z / tau_s - np.max(z / tau_s))
        p /= p.sum()
        q = np.exp(logits[b] - np.max(logits[b]))
        q /= q.sum()
        want_kl += sum(p[k] * math.log(p[k] / q[k]) for k in range(crops))
    want_kl /= batch
    np.testing.assert_allclose(float(mse), want_mse, rtol=1e-5)
    np.testing.assert_allclose(float(kl), want_kl, rtol=1e-4)
    np.testing.assert_allclose(float(total), want_mse + want_kl, rtol=1e-4)


def test_saliency_target_is_standardised_within_the_image():
    """Window means 0.50..0.53 (real photos differ by ~0.02) give a peaked target, the
    same as the windows' saliency shifted and scaled; equal windows give a uniform one."""
    logits = np.zeros((3, 4), np.float32)
    sal = np.array([[0.50, 0.51, 0.52, 0.53], [0.0, 0.3, 0.6, 0.9], [0.4, 0.4, 0.4, 0.4]], np.float32)
    _, _, kl = mutual_distillation_loss(np.zeros(3, np.float32), np.zeros(3, np.float32), sal[:1], logits[:1])
    _, _, kl_scaled = mutual_distillation_loss(np.zeros(1, np.float32), np.zeros(1, np.float32), sal[1:2], logits[:1])
    _, _, kl_flat = mutual_distillation_loss(np.zeros(1, np.float32), np.zeros(1, np.float32), sal[2:], logits[:1])
    # KL(target || uniform) = log 4 - H(target): near log 4 for a peaked target.
    assert float(kl) > 0.8 * math.log(4)
    assert float(kl) == pytest.approx(float(kl_scaled), rel=1e-3)
    assert float(kl_flat) == pytest.approx(0.0, abs=1e-6)


def test_mutual_distillation_gradients_skip_teacher_and_saliency():
    rng = np.random.default_rng(9)
    student = tf.constant(rng.uniform(size=4), tf.float32)
    teacher = tf.constant(rng.uniform(size=4), tf.float32)
    sal = tf.constant(rng.uniform(size=(4, 3)), tf.float32)
    logits = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([student, teacher, sal, logits])
        total, _, _ = mutual_distillation_loss(student, teacher, sal, logits)
    g_student, g_teacher, g_sal, g_logits = tape.gradient(
        total, [student, teacher, sal, logits])
    assert g_teacher is None and g_sal is None
    assert np.all(np.isfinite(g_student.numpy())) and np.any(g_logits.numpy() != 0)


def test_kl_is_zero_when_logits_match_the_saliency_target():
    sal = np.array([[0.1, 0.5, 0.9], [0.3, 0.3, 0.3]], np.float32)
    z = (sal - sal.mean(1, keepdims=True)) / (sal.std(1, keepdims=True) + 1e-3)
    _, mse, kl = mutual_distillation_loss(
        np.zeros(2, np.float32), np.zeros(2, np.float32), sal, z / 0.1)
    assert abs(float(kl)) < 1e-6 and float(mse) == 0.0


def test_contrastive_loss_class_matches_function():
    rng = np.random.default_rng(10)
    pos, intra = _lmiqa_masks(3, 2, 2)
    query = _unit(rng, 3, 8).astype(np.float32)
    keys = _unit(rng, pos.shape[1], 8).astype(np.float32)
    loss = LocalManifoldContrastiveLoss(temperature=0.2, intra_weight=0.5)
    got = float(loss((pos, intra), (query, keys)))
    want = float(local_manifold_contrastive_loss(query, keys, pos, intra, 0.2, 0.5))
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    "obj",
    [
        LocalManifoldContrastiveLoss(temperature=0.05, intra_weight=0.0, name="lm"),
        QualitySmoothL1(beta=0.25, name="q", reduction="sum"),
    ],
    ids=["contrastive", "quality"],
)
def test_serialization_round_trip(obj):
    config = obj.get_config()
    for restored in (
        keras.losses.deserialize(keras.losses.serialize(obj)),
        type(obj).from_config(config),
    ):
        assert type(restored) is type(obj)
        assert restored.get_config() == config
    assert keras.saving.get_registered_name(type(obj)).startswith("keras_lmiqa>")


def test_every_loss_computes_in_float32_from_float16_inputs():
    """Mixed precision hands float16 tensors around: each loss casts to float32 first,
    so it equals the float32 loss on the same (float16-representable) values."""
    rng = np.random.default_rng(11)
    half = lambda x: tf.constant(np.asarray(x, np.float16))  # noqa: E731
    query, keys = _unit(rng, 4, 8), _unit(rng, 12, 8)
    positive = np.zeros((4, 12)); positive[np.arange(4), np.arange(4) * 3] = 1  # noqa: E702
    intra = np.zeros((4, 12)); intra[np.arange(4), np.arange(4) * 3 + 1] = 1  # noqa: E702
    scores, targets = rng.uniform(size=6), rng.uniform(size=6)
    saliency, logits = rng.uniform(size=(6, 5)), rng.normal(size=(6, 5))
    calls = {
        "contrastive": lambda cast: local_manifold_contrastive_loss(cast(query), cast(keys), positive, intra, 0.1),
        "quality": lambda cast: quality_loss(cast(scores), cast(targets)),
        "rank": lambda cast: pairwise_ranking_loss(cast(scores), cast(targets), cast(scores), cast(targets)),
        "mutual": lambda cast: mutual_distillation_loss(cast(scores), cast(targets[::-1]), cast(saliency),
                                                        cast(logits))[0],
    }
    as_float32 = lambda x: tf.constant(np.asarray(x, np.float16).astype(np.float32))  # noqa: E731
    for name, call in calls.items():
        value = call(half)
        assert value.dtype == tf.float32, name
        np.testing.assert_allclose(float(value), float(call(as_float32)), rtol=1e-6, err_msg=name)
