"""The LML-IQA training step: two branches, all losses, one step for every strategy.

`LMIQATrainer.replica_step` is written once; `LMIQATrainer.train_step` runs it with
`strategy.run` inside a `tf.function`, for the default strategy, MirroredStrategy and
MultiWorkerMirroredStrategy alike (Keras 3's `Model.fit` fails under the last one,
keras-team/keras#20585, so the loop is ours).

Loss scaling: every term is a mean over the *global* batch (local sum / global batch
size); the optimizer sums gradients over replicas. Contrastive keys are gathered from
all replicas, so negatives are the global batch.

Gradient clipping is per loss group (`clip_mode: per_term`, the default): the label
terms (quality, rank, mutual) and the contrastive term are each clipped to `clip_norm`
before they are added, so a large
contrastive gradient cannot shrink the quality gradient (one global clip would scale
both by the same factor). It costs a second backward pass when both are active.
"""

from __future__ import annotations

import random

import keras
import tensorflow as tf
from keras import ops

from keras_lmiqa import losses
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.crops import ROLE_ANCHOR, ROLE_NON_SALIENT, ROLE_POSITIVE
from keras_lmiqa.models import build_branch
from keras_lmiqa.models.layers import importance_pool
from keras_lmiqa.strategy import all_gather, replica_offset_and_total

LOSS_NAMES = ("loss", "quality", "rank", "synthetic", "contrastive", "mutual", "mutual_mse", "mutual_kl")


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    total = max(1, config.epochs * steps_per_epoch)
    return min(int(config.warmup_epochs * steps_per_epoch), total - 1)


def build_schedule(config: TrainConfig, steps_per_epoch: int, multiplier: float = 1.0):
    """Linear warm-up to `lr * multiplier`, then cosine decay to 1% of it at the last step."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = warmup_steps(config, steps_per_epoch)
    peak = config.lr * multiplier
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * (0.01 if warmup else 1.0),
        decay_steps=total - warmup,
        alpha=0.01,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def teacher_momentum(step, config: TrainConfig, total_steps: int):
    """EMA momentum after `step` (1-based) updates: min(momentum, 1 - 1/step, 1 - 1/horizon).

    The ramp makes the teacher the running mean of the students seen so far (m_1 = 0:
    it keeps nothing of its initial weights), then an EMA whose time constant
    1/(1-m) is at most `teacher_horizon` of the run: a fixed 0.999 left a 260-step
    run's teacher 77% at its random initial heads.
    """
    horizon = max(1.0, config.teacher_horizon * total_steps)
    step = ops.cast(step, "float32")
    return ops.minimum(ops.minimum(config.momentum, 1.0 - 1.0 / horizon), 1.0 - 1.0 / ops.maximum(step, 1.0))


def build_optimizer(config: TrainConfig, schedule, loss_scaling: bool = True) -> keras.optimizers.Optimizer:
    """AdamW on `schedule`, loss scaling under mixed precision (unless `loss_scaling` is
    False: for gradients already unscaled). Clipping is the trainer's (`clip_per_term`)."""
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)
    # Norms, biases, ViT tokens and position tables are not decayed (the usual ViT rule).
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "_bn", "norm", "token", "position"])
    if config.mixed_precision and loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def clip_per_term(term_gradients, clip_norm, loss_scale=1.0):
    """Sum of the gradient lists in `term_gradients`, each first clipped to global norm
    `clip_norm` (times `loss_scale`: the gradients of a scaled loss). No clipping when
    `clip_norm` is 0. A non-finite list stays non-finite (the loss-scale optimizer
    then skips the step)."""
    if clip_norm:
        term_gradients = [tf.clip_by_global_norm(g, clip_norm * loss_scale)[0] for g in term_gradients]
    return [tf.add_n(list(parts)) for parts in zip(*term_gradients)]


def _global_keys(outputs):
    """Stop-gradient crop embeddings of the whole global batch, image-major: [N, D]."""
    embeddings = outputs["embeddings"]
    return all_gather(ops.stop_gradient(ops.reshape(embeddings, (-1, ops.shape(embeddings)[-1]))))


def _split_backbone(branch: keras.Model, config: TrainConfig):
    """(backbone variables, head variables) of a branch's trainable variables."""
    backbone = branch.get_layer(f"{config.backbone}_backbone")
    ids = {id(v) for v in backbone.trainable_variables}
    variables = branch.trainable_variables
    return [v for v in variables if id(v) in ids], [v for v in variables if id(v) not in ids]


class LMIQATrainer:
    """Student and teacher branches, the optimizers, and the training step.

    A pretrained backbone trains at `lr`, the heads at `lr * head_lr_multiplier` (a
    second optimizer); a backbone trained from scratch shares the heads' single `lr`.

    Args:
        config: the run's TrainConfig.
        steps_per_epoch: for the learning-rate schedule.
    Build it inside `strategy.scope()`.
    """

    def __init__(self, config: TrainConfig, steps_per_epoch: int):
        self.config = config
        self.total_steps = max(1, config.epochs * steps_per_epoch)
        self.warmup_steps = warmup_steps(config, steps_per_epoch)
        self.student = build_branch(config, name="student")
        # The teacher starts as a copy of the student (same architecture, whatever the
        # weights source; nothing loaded twice). In dml mode its heads then start from
        # their own initialisation (two distinct peers).
        self.teacher = copy_branch(self.student, "teacher")
        branches = [self.student] + ([self.teacher] if config.branch_mode == "dml" else [])
        if config.branch_mode == "dml":
            _reinitialise_heads(self.teacher, config)
        self.schedule = build_schedule(config, steps_per_epoch)
        self.optimizer = build_optimizer(config, self.schedule)
        self.head_optimizer = None
        self.trainable, self.head_trainable = [], []
        split = config.weights != "none" and config.head_lr_multiplier != 1.0
        for branch in branches:
            backbone_vars, head_vars = _split_backbone(branch, config)
            self.trainable += backbone_vars if split else backbone_vars + head_vars
            self.head_trainable += head_vars if split else []
        if split:
            self.head_schedule = build_schedule(config, steps_per_epoch, config.head_lr_multiplier)
            # Its gradients arrive unscaled (see replica_step): no loss scaling of its own.
            self.head_optimizer = build_optimizer(config, self.head_schedule, loss_scaling=False)
            self.head_optimizer.build(self.head_trainable)
        self.optimizer.build(self.trainable)

    @property
    def branches(self) -> dict[str, keras.Model]:
        return {"student": self.student, "teacher": self.teacher}

    @property
    def export_model(self) -> keras.Model:
        """The branch the config fixes (the student when it says auto: see `training`)."""
        return self.teacher if self.config.export_branch == "teacher" else self.student

    # -- losses ---------------------------------------------------------------------
    def _branch_losses(self, out, other, batch, global_batch, offset, keys, mse_on):
        """Loss terms for one branch trained toward the other (stop-gradient)."""
        c = self.config
        k = c.num_crops
        scale = ops.cast(ops.shape(batch["quality"])[0], "float32") / ops.cast(global_batch, "float32")
        score, _ = importance_pool(out["crop_scores"][:, :k], out["crop_logits"][:, :k])
        # With synthetic groups, only the photos as they are (level 0) have a MOS.
        labelled = ops.equal(batch["level"], 0) if c.synthetic_groups else None
        terms = {"quality": losses.quality_loss(score, batch["quality"], c.smooth_l1_beta, labelled) * scale}
        zero = ops.zeros((), "float32")
        terms["rank"] = terms["synthetic"] = zero
        global_score = all_gather(ops.stop_gradient(score)) if c.lambda_rank > 0 or c.synthetic_groups else None
        if c.lambda_rank > 0:  # against the whole global batch, like the contrastive keys
            global_labelled = None if labelled is None else all_gather(ops.cast(labelled, "float32"))
            terms["rank"] = scale * losses.pairwise_ranking_loss(
                score, batch["quality"], global_score, all_gather(batch["quality"]),
                temperature=c.rank_temperature, mask=labelled, reference_mask=global_labelled)
        # The global batch's photo ids and levels: gathered once for both terms that need them.
        photos = self._photos_and_levels(batch) if c.synthetic_groups else None
        if c.synthetic_groups and c.lambda_synthetic > 0:
            photo, level = photos
            terms["synthetic"] = scale * losses.synthetic_ranking_loss(
                score, batch["image_id"], batch["level"], global_score, photo, level,
                temperature=c.synthetic_temperature)
        terms["contrastive"] = zero
        if c.use_contrastive and c.lambda_lm > 0:
            query = out["embeddings"][:, 0]  # the anchor crop
            positive, intra, neutral = self._masks(batch, offset, photos)
            terms["contrastive"] = scale * losses.local_manifold_contrastive_loss(
                query, keys, positive, intra, temperature=c.temperature,
                intra_weight=c.intra_weight if c.use_intra_negatives else 0.0, neutral_mask=neutral)
        terms["mutual_mse"] = terms["mutual_kl"] = zero
        if c.use_mutual and c.lambda_mut > 0:
            other_score, _ = importance_pool(other["crop_scores"][:, :k], other["crop_logits"][:, :k])
            _, mse, kl = losses.mutual_distillation_loss(
                score, ops.stop_gradient(other_score), batch["saliency"][:, :k], out["crop_logits"][:, :k],
                saliency_temperature=c.saliency_temperature)
            terms["mutual_mse"] = mse * scale
            terms["mutual_kl"] = (kl if c.use_saliency else zero) * scale
        # The MSE toward the teacher waits for the warm-up's end (the teacher is not yet
        # trained) and is weighted so that it cannot outweigh the label.
        terms["mutual"] = c.lambda_mse * mse_on * terms["mutual_mse"] + c.lambda_kl * terms["mutual_kl"]
        # The label terms, clipped apart from the contrastive term (`clip_per_term`).
        terms["label"] = (terms["quality"] + c.lambda_rank * terms["rank"] + c.lambda_synthetic * terms["synthetic"]
                          + c.lambda_mut * terms["mutual"])
        terms["loss"] = terms["label"] + c.lambda_lm * terms["contrastive"]
        return terms

    def _photos_and_levels(self, batch):
        """Photo ids and levels of the global batch, image-major: ([N], [N]) int32.

        Gathered as float (exact below 2^24): collective all-gather of int32 fails under
        MultiWorkerMirroredStrategy."""
        gathered = all_gather(ops.cast(ops.stack([batch["image_id"], batch["level"]], axis=1), "float32"))
        gathered = ops.cast(gathered, "int32")
        return gathered[:, 0], gathered[:, 1]

    def _masks(self, batch, offset, photos=None):
        """Positive, intra and neutral masks [b, N] of local queries against the global keys
        (neutral is None unless `synthetic_siblings` is "neutral").

        Keys are the crops of all images in the global batch, image-major; roles differ
        per image (a non-salient window overlapping the anchor's views is neutral), so
        they are gathered like the keys. Positives of image i: its anchor (the teacher's
        key, as in MoCo) and its P other-scale views; intra negatives: its non-salient
        windows marked ROLE_NON_SALIENT; neutral windows are neither, but still
        inter negatives for the other images. With synthetic groups, every crop of
        another member of i's group (the same photo at another distortion level: the
        same content, another quality) is an intra negative of i too, or neutral with
        `synthetic_siblings="neutral"`; `photos` are the gathered (photo ids, levels)
        when the caller has them.
        """
        roles = batch["roles"]
        # Gathered as float: collective all-gather of int32 fails under MultiWorkerMirroredStrategy.
        key_roles = ops.cast(ops.reshape(all_gather(ops.cast(roles, "float32")), (-1,)), "int32")  # [N]
        crops_per_image = ops.shape(roles)[1]
        key_image = ops.arange(ops.shape(key_roles)[0]) // crops_per_image  # [N]
        query_image = offset + ops.arange(ops.shape(roles)[0])  # [b]
        same = ops.cast(ops.equal(query_image[:, None], key_image[None, :]), "float32")
        is_positive = ops.logical_or(ops.equal(key_roles, ROLE_ANCHOR), ops.equal(key_roles, ROLE_POSITIVE))
        intra = same * ops.cast(ops.equal(key_roles, ROLE_NON_SALIENT), "float32")[None, :]
        positive = same * ops.cast(is_positive, "float32")[None, :]
        if self.config.synthetic_groups:
            photo, level = photos if photos is not None else self._photos_and_levels(batch)
            key_photo, key_level = ops.take(photo, key_image), ops.take(level, key_image)
            sibling = ops.logical_and(ops.equal(batch["image_id"][:, None], key_photo[None, :]),
                                      ops.not_equal(batch["level"][:, None], key_level[None, :]))
            sibling = ops.cast(sibling, "float32")
            if self.config.synthetic_siblings == "neutral":
                return positive, intra, sibling
            intra = ops.maximum(intra, sibling)
        return positive, intra, None

    # -- steps ----------------------------------------------------------------------
    def compute_gradients(self, batch):
        """(loss terms of the student, gradients for `trainable + head_trainable`) on
        this replica's slice of the global batch; the gradients are of the scaled loss
        under mixed precision, each loss group clipped to `clip_norm` (`clip_per_term`)."""
        c = self.config
        offset, global_batch = replica_offset_and_total(ops.shape(batch["quality"])[0])
        dml = c.branch_mode == "dml"
        mse_on = ops.cast(self.optimizer.iterations >= self.warmup_steps, "float32")
        separate = c.clip_mode == "per_term" and bool(c.clip_norm) and c.use_contrastive and c.lambda_lm > 0
        with tf.GradientTape(persistent=separate) as tape:
            student = self.student(batch["crops"], training=True)
            teacher = self.teacher(batch["crops"], training=dml)
            teacher_keys = _global_keys(teacher)
            terms = self._branch_losses(student, teacher, batch, global_batch, offset, teacher_keys, mse_on)
            branch_terms = [terms]
            if dml:  # the teacher learns too, toward the student
                student_keys = _global_keys(student)
                branch_terms.append(
                    self._branch_losses(teacher, student, batch, global_batch, offset, student_keys, mse_on))
            if separate:
                groups = [sum(t["label"] for t in branch_terms),
                          sum(c.lambda_lm * t["contrastive"] for t in branch_terms)]
            else:
                groups = [sum(t["loss"] for t in branch_terms)]
            if c.mixed_precision:
                groups = [self.optimizer.scale_loss(g) for g in groups]
        variables = self.trainable + self.head_trainable
        # A variable one group does not reach (the contrastive term and the quality head)
        # gets zeros, so the groups add up.
        term_gradients = [[ops.zeros(v.shape, v.dtype) if d is None else d
                           for d, v in zip(tape.gradient(g, variables), variables)] for g in groups]
        del tape
        loss_scale = self.optimizer.scale_loss(1.0) if c.mixed_precision else 1.0
        return terms, clip_per_term(term_gradients, c.clip_norm, loss_scale)

    def replica_step(self, batch):
        """One optimisation step on this replica's slice of the global batch."""
        c = self.config
        terms, gradients = self.compute_gradients(batch)
        count = len(self.trainable)
        if self.head_optimizer is not None:
            head_gradients = gradients[count:]
            if c.mixed_precision:  # unscaled by the loss scale, skipped when not finite
                head_gradients = _unscale_or_skip(head_gradients, self.optimizer.scale_loss(1.0))
            self.head_optimizer.apply_gradients(zip(head_gradients, self.head_trainable))
        self.optimizer.apply_gradients(zip(gradients[:count], self.trainable))
        return terms

    def ema_update(self):
        """teacher = m_t * teacher + (1 - m_t) * student over all weights (cross-replica)."""
        m = teacher_momentum(self.optimizer.iterations, self.config, self.total_steps)
        for teacher_var, student_var in zip(self.teacher.weights, self.student.weights):
            teacher_var.assign(m * teacher_var + (1.0 - m) * ops.cast(student_var, teacher_var.dtype))

    def make_train_function(self, strategy: tf.distribute.Strategy):
        """A tf.function running one global step: replica steps, loss sums, EMA."""
        ema = self.config.branch_mode == "ema"
        # XLA compiles the per-replica computation; the cross-replica reduce and the EMA
        # stay outside it, so every strategy can run the compiled step.
        replica_step = (tf.function(self.replica_step, jit_compile=True, reduce_retracing=True)
                        if self.config.jit_compile else self.replica_step)

        def step(batch):
            terms = strategy.run(replica_step, args=(batch,))
            reduced = {name: strategy.reduce(tf.distribute.ReduceOp.SUM, terms[name], axis=None) for name in LOSS_NAMES}
            if ema:
                self.ema_update()
            return reduced

        return tf.function(step, reduce_retracing=True)


def copy_branch(branch: keras.Model, name: str) -> keras.Model:
    """A new branch with `branch`'s architecture (from its config) and weights."""
    config = branch.get_config()
    config["name"] = name
    copy = branch.__class__.from_config(config)
    copy.set_weights(branch.get_weights())
    return copy


def _reinitialise_heads(branch: keras.Model, config: TrainConfig) -> None:
    """Draw fresh initial values for the head layers of `branch` (dml: distinct peers).

    A Keras initializer holds its seed (drawn at construction when unseeded) and draws
    the same values on every call, so each head weight gets a copy of its initializer
    with a new seed, from Python's generator (reproducible under set_random_seed).
    Constant initializers (the quality bias, the zero importance kernel) stay equal.
    """
    backbone = branch.get_layer(f"{config.backbone}_backbone")
    for layer in branch.layers:
        if layer is backbone:
            continue
        for name in ("kernel", "bias"):
            variable = getattr(layer, name, None)
            initializer = getattr(layer, f"{name}_initializer", None)
            if variable is None or initializer is None:
                continue
            settings = initializer.get_config()
            if "seed" in settings:
                initializer = initializer.__class__.from_config({**settings, "seed": random.randint(1, 2**31 - 1)})
            variable.assign(initializer(variable.shape, variable.dtype))


def _unscale_or_skip(gradients, loss_scale):
    """Gradients divided by the loss scale; all zeros when any is not finite."""
    unscaled = [g / ops.cast(loss_scale, g.dtype) for g in gradients]
    finite = ops.all(ops.stack([ops.all(ops.isfinite(g)) for g in unscaled]))
    return [ops.where(finite, g, ops.zeros_like(g)) for g in unscaled]
