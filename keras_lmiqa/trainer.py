"""The LML-IQA training step: two branches, all losses, one step for every strategy.

`LMIQATrainer.replica_step` is written once; `LMIQATrainer.train_step` runs it with
`strategy.run` inside a `tf.function`, for the default strategy, MirroredStrategy and
MultiWorkerMirroredStrategy alike (Keras 3's `Model.fit` fails under the last one,
keras-team/keras#20585, so the loop is ours).

Loss scaling: every term is a mean over the *global* batch (local sum / global batch
size); the optimizer sums gradients over replicas. Contrastive keys are gathered from
all replicas, so negatives are the global batch.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_lmiqa import losses
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.crops import ROLE_NON_SALIENT
from keras_lmiqa.models import build_branch
from keras_lmiqa.models.layers import importance_pool
from keras_lmiqa.strategy import all_gather, replica_offset_and_total

LOSS_NAMES = ("loss", "quality", "rank", "contrastive", "mutual", "mutual_mse", "mutual_kl")


def build_schedule(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up to `lr`, then cosine decay to 1% of it at the last step."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.lr * (0.01 if warmup else 1.0),
        decay_steps=total - warmup,
        alpha=0.01,
        warmup_target=config.lr if warmup else None,
        warmup_steps=warmup,
    )


def build_optimizer(config: TrainConfig, schedule) -> keras.optimizers.Optimizer:
    """AdamW on `schedule`, global-norm clipping, loss scaling under mixed precision."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=config.weight_decay, global_clipnorm=config.clip_norm or None
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "_bn", "norm", "class_token", "position"])
    if config.mixed_precision:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _global_keys(outputs):
    """Stop-gradient crop embeddings of the whole global batch, image-major: [N, D]."""
    embeddings = outputs["embeddings"]
    return all_gather(ops.stop_gradient(ops.reshape(embeddings, (-1, ops.shape(embeddings)[-1]))))


class LMIQATrainer:
    """Student and teacher branches, the optimizer, and the training step.

    Args:
        config: the run's TrainConfig.
        steps_per_epoch: for the learning-rate schedule.
    Build it inside `strategy.scope()`.
    """

    def __init__(self, config: TrainConfig, steps_per_epoch: int):
        self.config = config
        self.student = build_branch(config, name="student")
        # The teacher starts as a copy; its backbone weights come from the student.
        self.teacher = build_branch(config, name="teacher", weights="none")
        self.teacher.set_weights(self.student.get_weights())
        self.schedule = build_schedule(config, steps_per_epoch)
        self.optimizer = build_optimizer(config, self.schedule)
        self.trainable = list(self.student.trainable_variables)
        if config.branch_mode == "dml":
            self.trainable += list(self.teacher.trainable_variables)
        self.optimizer.build(self.trainable)

    @property
    def export_model(self) -> keras.Model:
        return self.teacher if self.config.export_branch == "teacher" else self.student

    # -- losses ---------------------------------------------------------------------
    def _branch_losses(self, out, other, batch, global_batch, offset, keys):
        """Loss terms for one branch trained toward the other (stop-gradient)."""
        c = self.config
        k = c.num_crops
        scale = ops.cast(ops.shape(batch["quality"])[0], "float32") / ops.cast(global_batch, "float32")
        score, _ = importance_pool(out["crop_scores"][:, :k], out["crop_logits"][:, :k])
        terms = {"quality": losses.quality_loss(score, batch["quality"], beta=c.smooth_l1_beta) * scale}
        zero = ops.zeros((), "float32")
        terms["rank"] = zero
        if c.lambda_rank > 0:  # against the whole global batch, like the contrastive keys
            terms["rank"] = scale * losses.pairwise_ranking_loss(
                score, batch["quality"], all_gather(ops.stop_gradient(score)), all_gather(batch["quality"]),
                temperature=c.rank_temperature)
        terms["contrastive"] = zero
        if c.use_contrastive and c.lambda_lm > 0:
            query = out["embeddings"][:, 0]  # the anchor crop
            positive, intra = self._masks(batch["roles"], offset, ops.shape(keys)[0])
            terms["contrastive"] = scale * losses.local_manifold_contrastive_loss(
                query, keys, positive, intra, temperature=c.temperature,
                intra_weight=c.intra_weight if c.use_intra_negatives else 0.0)
        terms["mutual_mse"] = terms["mutual_kl"] = zero
        if c.use_mutual and c.lambda_mut > 0:
            other_score, _ = importance_pool(other["crop_scores"][:, :k], other["crop_logits"][:, :k])
            _, mse, kl = losses.mutual_distillation_loss(
                score, ops.stop_gradient(other_score), batch["saliency"][:, :k], out["crop_logits"][:, :k],
                saliency_temperature=c.saliency_temperature)
            terms["mutual_mse"] = mse * scale
            terms["mutual_kl"] = (kl if c.use_saliency else zero) * scale
        terms["mutual"] = terms["mutual_mse"] + terms["mutual_kl"]
        terms["loss"] = (terms["quality"] + c.lambda_rank * terms["rank"] + c.lambda_lm * terms["contrastive"]
                         + c.lambda_mut * terms["mutual"])
        return terms

    def _masks(self, roles, offset, num_keys):
        """Positive and intra masks [b, N] of local queries against the global keys.

        Keys are the crops of all images in the global batch, image-major. Positives
        of image i: its P other-scale views and the teacher's view of the anchor
        itself (MoCo's key); intra negatives: its K-1 non-salient crops.
        """
        crops_per_image = ops.shape(roles)[1]
        local = ops.shape(roles)[0]
        key_image = ops.arange(num_keys) // crops_per_image  # [N]
        query_image = offset + ops.arange(local)  # [b]
        same = ops.cast(ops.equal(query_image[:, None], key_image[None, :]), "float32")
        key_roles = ops.tile(roles[:1], (1, num_keys // crops_per_image))  # roles are the same for every image
        intra = same * ops.cast(ops.equal(key_roles, ROLE_NON_SALIENT), "float32")
        positive = same * ops.cast(ops.not_equal(key_roles, ROLE_NON_SALIENT), "float32")
        return positive, intra

    # -- steps ----------------------------------------------------------------------
    def replica_step(self, batch):
        """One optimisation step on this replica's slice of the global batch."""
        c = self.config
        offset, global_batch = replica_offset_and_total(ops.shape(batch["quality"])[0])
        dml = c.branch_mode == "dml"
        with tf.GradientTape() as tape:
            student = self.student(batch["crops"], training=True)
            teacher = self.teacher(batch["crops"], training=dml)
            teacher_keys = _global_keys(teacher)
            terms = self._branch_losses(student, teacher, batch, global_batch, offset, teacher_keys)
            loss = terms["loss"]
            if dml:  # the teacher learns too, toward the student
                student_keys = _global_keys(student)
                teacher_terms = self._branch_losses(teacher, student, batch, global_batch, offset, student_keys)
                loss = loss + teacher_terms["loss"]
            scaled = self.optimizer.scale_loss(loss) if c.mixed_precision else loss
        gradients = tape.gradient(scaled, self.trainable)
        self.optimizer.apply_gradients(zip(gradients, self.trainable))
        return terms

    def ema_update(self):
        """teacher = m * teacher + (1 - m) * student over all weights (cross-replica)."""
        m = self.config.momentum
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
