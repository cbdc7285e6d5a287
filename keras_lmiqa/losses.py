"""LML-IQA losses: local-manifold contrastive, quality (SmoothL1), mutual distillation,
and an optional pairwise ranking term on the image scores.

Model-side code: `keras.ops` only, so it runs on any Keras 3 backend. Every loss is
computed in float32 (inputs are cast), also under a mixed-precision policy.
See docs/method.md, section "Losses".
"""

import math

import keras
from keras import ops

# Logit given to entries excluded from a log-sum-exp. Finite (no inf - inf = NaN),
# and far below any real logit (|q.k| / tau <= 1 / 0.01 = 100 for unit vectors).
_MASKED_LOGIT = -1e9
# Added to the within-image saliency std: equal windows stay equal (no 0/0).
_SALIENCY_EPSILON = 1e-3


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")


def _check_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number. Received: {name}={value!r}")


def local_manifold_contrastive_loss(
    query, keys, positive_mask, intra_mask, temperature=0.1, intra_weight=1.0, neutral_mask=None
):
    """Multi-positive InfoNCE with weighted intra-image negatives (LML-IQA L_lm).

    With `s_ik = q_i . k_k / temperature`, positives `P(i)`, intra negatives (logits
    shifted by `log(intra_weight)`) and inter negatives (every other key), the loss is

        mean_i mean_{p in P(i)} -log( e^{s_ip} / (sum_{p' in P(i)} e^{s_ip'}
                                                 + sum_{n in N(i)} e^{s_in}) )

    over the queries that have at least one positive (each counts equally); 0 if none
    has one. A key marked both positive and intra (or neutral) is a positive.
    `intra_weight=0` removes intra negatives from the denominator, and keys in
    `neutral_mask` leave that query's denominator: both are masked with a large negative
    logit inside a log-sum-exp (`log(0)` is never formed), so the loss and its gradients
    are finite for temperatures down to 0.01 and any mask pattern. Negatives are exactly
    the keys passed in (per replica or gathered: the caller's choice).

    Args:
        query: `(batch, dim)` L2-normalised online embeddings of the anchor crops.
        keys: `(num_keys, dim)` L2-normalised momentum embeddings.
        positive_mask: `(batch, num_keys)` 0/1 float mask of positives.
        intra_mask: `(batch, num_keys)` 0/1 float mask of intra-image negatives.
        temperature: float > 0, softmax temperature tau. Defaults to 0.1.
        intra_weight: float >= 0, weight w_intra of intra negatives. Defaults to 1.0.
        neutral_mask: optional `(batch, num_keys)` 0/1 float mask of neutral keys.

    Returns: scalar float32 loss.
    """
    _check_positive("temperature", temperature)
    _check_non_negative("intra_weight", intra_weight)
    query = ops.cast(query, "float32")
    keys = ops.cast(keys, "float32")
    positive = ops.cast(positive_mask, "float32") > 0.5
    intra = ops.logical_and(ops.cast(intra_mask, "float32") > 0.5, ops.logical_not(positive))

    logits = ops.matmul(query, ops.transpose(keys)) / temperature  # (batch, num_keys)
    excluded = None
    if intra_weight > 0:
        logits = ops.where(intra, logits + math.log(intra_weight), logits)
    else:
        excluded = intra
    if neutral_mask is not None:
        neutral = ops.logical_and(ops.cast(neutral_mask, "float32") > 0.5, ops.logical_not(positive))
        excluded = neutral if excluded is None else ops.logical_or(excluded, neutral)
    denominator_logits = logits if excluded is None else ops.where(
        excluded, ops.full_like(logits, _MASKED_LOGIT), logits)
    log_denominator = ops.logsumexp(denominator_logits, axis=1)  # (batch,)

    positive_f = ops.cast(positive, "float32")
    num_positives = ops.sum(positive_f, axis=1)
    has_positive = num_positives > 0
    # sum_p (lse_i - s_ip) = |P(i)| lse_i - sum_p s_ip; logits are finite everywhere.
    per_query = (
        num_positives * log_denominator - ops.sum(positive_f * logits, axis=1)
    ) / ops.maximum(num_positives, 1.0)
    per_query = ops.where(has_positive, per_query, ops.zeros_like(per_query))
    num_valid = ops.sum(ops.cast(has_positive, "float32"))
    return ops.sum(per_query) / ops.maximum(num_valid, 1.0)


def _smooth_l1(pred, target, beta):
    diff = ops.abs(ops.cast(pred, "float32") - ops.cast(target, "float32"))
    if beta == 0:
        return diff
    return ops.where(diff < beta, 0.5 * ops.square(diff) / beta, diff - 0.5 * beta)


def quality_loss(pred, target, beta=0.05, mask=None):
    """SmoothL1 quality regression loss, mean over the batch (PyTorch definition).

    Per sample, with `d = |pred - target|`: `0.5 * d**2 / beta` if `d < beta`, else
    `d - 0.5 * beta`; `beta = 0` is plain L1. MOS is normalised to [0, 1] (higher =
    better): `beta = 1.0` (PyTorch's and DEIQT's default) would keep the loss always in
    its quadratic branch (half the squared error); the default 0.05 is L1 beyond 0.05.

    Args:
        pred: `(batch,)` or `(batch, 1)` predicted scores.
        target: `(batch,)` or `(batch, 1)` normalised MOS.
        beta: float >= 0, the quadratic/linear transition point. Defaults to 0.05.
        mask: optional `(batch,)` 0/1 marks of the samples that have a target: the mean
            is over those (all when None).

    Returns:
        Scalar float32 loss.
    """
    _check_non_negative("beta", beta)
    pred = ops.reshape(pred, (-1,))
    target = ops.reshape(target, (-1,))
    if mask is None:
        return ops.mean(_smooth_l1(pred, target, beta))
    mask = ops.cast(ops.reshape(mask, (-1,)), "float32")
    return ops.sum(mask * _smooth_l1(pred, target, beta)) / ops.maximum(ops.sum(mask), 1.0)


def ordinal_ranking_loss(pred, reference_pred, order, temperature=0.05, mask=None):
    """Pairwise logistic (RankNet) loss for a given order of scores against references.

    `order[i, j]` is +1 where image i must score above reference j, -1 where below, 0
    where the pair does not count. Per image i:
    `mean_j softplus(-order_ij * (p_i - stop_gradient(r_j)) / temperature)` over its
    counted pairs (0 without any), then the mean over the images `mask` selects (all when
    None). Gradients reach `pred` only; with `reference_pred` the (gathered) `pred` itself,
    every pair pulls on both its images, once per direction.

    Args:
        pred: `(batch,)` predicted scores.
        reference_pred: `(n,)` reference scores (treated as constants).
        order: `(batch, n)` in {-1, 0, 1}.
        temperature: float > 0, the score difference that counts as a clear order.
        mask: optional `(batch,)` 0/1 weights of the images averaged over.

    Returns:
        Scalar float32 loss.
    """
    _check_positive("temperature", temperature)
    pred = ops.reshape(ops.cast(pred, "float32"), (-1, 1))
    reference_pred = ops.stop_gradient(ops.reshape(ops.cast(reference_pred, "float32"), (1, -1)))
    order = ops.cast(order, "float32")
    counted = ops.abs(order)
    pair_loss = ops.softplus(-order * (pred - reference_pred) / temperature) * counted
    per_image = ops.sum(pair_loss, axis=1) / ops.maximum(ops.sum(counted, axis=1), 1.0)
    if mask is None:
        return ops.mean(per_image)
    mask = ops.cast(ops.reshape(mask, (-1,)), "float32")
    return ops.sum(mask * per_image) / ops.maximum(ops.sum(mask), 1.0)


def pairwise_ranking_loss(pred, target, reference_pred, reference_target, temperature=0.05,
                          mask=None, reference_mask=None):
    """Pairwise logistic (RankNet) loss of scores against a reference set of images.

    For each image i and each reference image j with a different target:
    `softplus(-sign(t_i - t_j) * (p_i - stop_gradient(p_j)) / temperature)`, averaged
    over j, then over i (`ordinal_ranking_loss` with `order = sign(t_i - t_j)`). SRCC,
    the field's headline metric, depends only on the order of the scores; this term asks
    for that order directly, while the SmoothL1 term keeps the scale. The reference set
    is the global batch (under a strategy, gathered from every replica).

    Args:
        pred: `(batch,)` predicted scores (normalised quality, higher = better).
        target: `(batch,)` normalised MOS.
        reference_pred: `(n,)` scores of the reference images (treated as constants).
        reference_target: `(n,)` their normalised MOS.
        temperature: float > 0, the score difference that counts as a clear order.
            Defaults to 0.05 (scores lie in [0, 1]).
        mask, reference_mask: optional `(batch,)` and `(n,)` 0/1 marks of the images that
            have a target (the others take part in no pair); all when None.

    Returns:
        Scalar float32 loss; 0 when no pair has different targets.
    """
    target = ops.reshape(ops.cast(target, "float32"), (-1, 1))
    reference_target = ops.reshape(ops.cast(reference_target, "float32"), (1, -1))
    order = ops.sign(target - reference_target)  # [b, n]; 0 for ties (and the image itself)
    if mask is not None:
        order = order * ops.reshape(ops.cast(mask, "float32"), (-1, 1))
        order = order * ops.reshape(ops.cast(reference_mask, "float32"), (1, -1))
    return ordinal_ranking_loss(pred, reference_pred, order, temperature, mask)


def synthetic_ranking_loss(pred, photo, level, reference_pred, reference_photo, reference_level,
                           temperature=0.05):
    """Ordinal loss of distorted copies: within one photo's group (`photo` ids equal), the
    member of the lower `level` (0: the photo as it is; 1..5: its copies of one family)
    must score higher. Averaged over the images that have such a pair; 0 without any.

    Args:
        pred: `(batch,)` predicted scores.
        photo, level: `(batch,)` int photo ids and levels of those images.
        reference_pred, reference_photo, reference_level: the same for the references
            (the gathered global batch).
        temperature: float > 0. Defaults to 0.05.

    Returns:
        Scalar float32 loss.
    """
    same = ops.cast(ops.equal(ops.reshape(photo, (-1, 1)), ops.reshape(reference_photo, (1, -1))), "float32")
    level = ops.reshape(ops.cast(level, "float32"), (-1, 1))
    reference_level = ops.reshape(ops.cast(reference_level, "float32"), (1, -1))
    order = same * ops.sign(reference_level - level)  # +1: i is the less distorted
    has_pair = ops.sum(ops.abs(order), axis=1) > 0
    return ordinal_ranking_loss(pred, reference_pred, order, temperature, has_pair)


def mutual_distillation_loss(
    student_score, teacher_score, saliency_scores, student_logits, saliency_temperature=0.1
):
    """Saliency-guided mutual distillation loss (LML-IQA L_mut).

    `MSE(student_score, stop_gradient(teacher_score))` plus
    `KL(softmax(z / saliency_temperature) || softmax(student_logits))` over the crop
    axis, each averaged over the batch, where `z` is the window saliency standardised
    within each image (zero mean, unit std): raw window means differ by ~0.02, so
    their softmax at tau 0.1 is nearly uniform and teaches nothing. Windows of equal
    saliency give a uniform target. The target is a constant (no gradient).

    Args:
        student_score: `(batch,)` or `(batch, 1)` online image scores.
        teacher_score: same shape, teacher (momentum or peer) image scores.
        saliency_scores: `(batch, crops)` crop saliency in [0, 1].
        student_logits: `(batch, crops)` online importance logits.
        saliency_temperature: float > 0, tau_s. Defaults to 0.1.

    Returns:
        Tuple `(total, mse, kl)` of scalar float32 tensors, `total = mse + kl`.
    """
    _check_positive("saliency_temperature", saliency_temperature)
    student = ops.reshape(ops.cast(student_score, "float32"), (-1,))
    teacher = ops.stop_gradient(ops.reshape(ops.cast(teacher_score, "float32"), (-1,)))
    mse = ops.mean(ops.square(student - teacher))

    saliency = ops.cast(saliency_scores, "float32")
    centred = saliency - ops.mean(saliency, axis=-1, keepdims=True)
    spread = ops.sqrt(ops.mean(ops.square(centred), axis=-1, keepdims=True))
    standardised = centred / (spread + _SALIENCY_EPSILON)
    target_log = ops.stop_gradient(ops.log_softmax(standardised / saliency_temperature, axis=-1))
    student_log = ops.log_softmax(ops.cast(student_logits, "float32"), axis=-1)
    kl = ops.mean(ops.sum(ops.exp(target_log) * (target_log - student_log), axis=-1))
    return mse + kl, mse, kl


def _policy_name(dtype):
    return getattr(dtype, "name", dtype)


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class LocalManifoldContrastiveLoss(keras.losses.Loss):
    """Keras loss wrapping :func:`local_manifold_contrastive_loss`.

    Called as `loss((positive_mask, intra_mask), (query, keys))`: `y_true` is the
    pair of `(batch, num_keys)` masks, `y_pred` the pair of L2-normalised embeddings
    `(batch, dim)` and `(num_keys, dim)`. The value is already the mean over
    (query, positive) pairs as in docs/method.md, a scalar, so `reduction` has no
    further effect (a scalar `sample_weight` scales it).

    Args:
        temperature: float > 0, InfoNCE temperature. Defaults to 0.1.
        intra_weight: float >= 0, weight of intra-image negatives; 0 removes them.
            Defaults to 1.0.
        name: str, loss name. Defaults to `"local_manifold_contrastive_loss"`.
        reduction: Keras reduction. Defaults to `"sum_over_batch_size"`.
        dtype: loss dtype policy. Defaults to `None` (floatx).
    """

    def __init__(
        self,
        temperature=0.1,
        intra_weight=1.0,
        name="local_manifold_contrastive_loss",
        reduction="sum_over_batch_size",
        dtype=None,
        **kwargs,
    ):
        _check_positive("temperature", temperature)
        _check_non_negative("intra_weight", intra_weight)
        super().__init__(name=name, reduction=reduction, dtype=dtype, **kwargs)
        self.temperature = temperature
        self.intra_weight = intra_weight
        self._dtype_arg = dtype

    def call(self, y_true, y_pred):
        positive_mask, intra_mask = y_true
        query, keys = y_pred
        return local_manifold_contrastive_loss(
            query, keys, positive_mask, intra_mask,
            temperature=self.temperature, intra_weight=self.intra_weight,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "temperature": self.temperature,
                "intra_weight": self.intra_weight,
                "dtype": _policy_name(self._dtype_arg),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class QualitySmoothL1(keras.losses.Loss):
    """Keras SmoothL1 quality loss (PyTorch definition), see :func:`quality_loss`.

    Called as `loss(mos, scores)` with `(batch,)` or `(batch, 1)` tensors of normalised
    MOS in [0, 1] (higher = better) and predicted scores; returns the mean over the
    batch with the default reduction.

    Args:
        beta: float >= 0, quadratic/linear transition; 0 is L1. Defaults to 0.05.
        name: str, loss name. Defaults to `"quality_smooth_l1"`.
        reduction: Keras reduction. Defaults to `"sum_over_batch_size"`.
        dtype: loss dtype policy. Defaults to `None` (floatx).
    """

    def __init__(
        self,
        beta=0.05,
        name="quality_smooth_l1",
        reduction="sum_over_batch_size",
        dtype=None,
        **kwargs,
    ):
        _check_non_negative("beta", beta)
        super().__init__(name=name, reduction=reduction, dtype=dtype, **kwargs)
        self.beta = beta
        self._dtype_arg = dtype

    def call(self, y_true, y_pred):
        return _smooth_l1(ops.reshape(y_pred, (-1,)), ops.reshape(y_true, (-1,)), self.beta)

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta, "dtype": _policy_name(self._dtype_arg)})
        return config
