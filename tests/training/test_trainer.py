"""The training step: masks, EMA, loss terms, ablation switches, dml mode."""

import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa.config import TrainConfig
from keras_lmiqa.trainer import LMIQATrainer

CONFIG = TrainConfig(backbone="tiny", weights="none", crop_size=32, num_crops=3, num_positives=2, batch_size=4,
                     dropout=0.0, head_units=16, embedding_dim=8, momentum=0.9, lr=1e-3, warmup_epochs=0.0)


def _batch(seed=0, size=4, crops=5):
    rng = np.random.default_rng(seed)
    return {
        "crops": tf.constant(rng.integers(0, 256, (size, crops, 32, 32, 3), dtype=np.uint8)),
        "saliency": tf.constant(rng.random((size, crops), dtype=np.float32)),
        "roles": tf.constant(np.tile(np.array([[0, 1, 1, 2, 2]], np.int32), (size, 1))),
        "quality": tf.constant(rng.random(size, dtype=np.float32)),
        "image_id": tf.range(size),
    }


def test_masks_mark_own_views_positive_and_own_other_crops_intra():
    trainer = LMIQATrainer(CONFIG, 10)
    roles = tf.constant(np.tile(np.array([[0, 1, 1, 2, 2]], np.int32), (2, 1)))
    positive, intra = trainer._masks(roles, offset=1, num_keys=15)  # queries are global images 1 and 2
    positive, intra = positive.numpy(), intra.numpy()
    np.testing.assert_array_equal(np.nonzero(positive[0])[0], [5, 8, 9])  # image 1: anchor + 2 views
    np.testing.assert_array_equal(np.nonzero(intra[0])[0], [6, 7])
    np.testing.assert_array_equal(np.nonzero(positive[1])[0], [10, 13, 14])
    assert (positive * intra).sum() == 0


def test_ema_update_follows_the_formula():
    trainer = LMIQATrainer(CONFIG, 10)
    before = [w.numpy() for w in trainer.teacher.weights]
    step = trainer.make_train_function(tf.distribute.get_strategy())
    step(_batch())
    for teacher, student, old in zip(trainer.teacher.weights, trainer.student.weights, before):
        np.testing.assert_allclose(teacher.numpy(), 0.9 * old + 0.1 * student.numpy(), rtol=1e-5, atol=1e-6)
    assert int(trainer.optimizer.iterations) == 1


def test_quality_loss_falls_when_fitting_one_batch():
    trainer = LMIQATrainer(CONFIG.replace(lr=3e-3, use_mutual=False), 10)
    step = trainer.make_train_function(tf.distribute.get_strategy())
    batch = _batch(1)
    losses = [float(step(batch)["quality"]) for _ in range(30)]
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("switch,zero_terms", [
    ({"use_contrastive": False}, ["contrastive"]),
    ({"use_mutual": False}, ["mutual", "mutual_mse", "mutual_kl"]),
    ({"use_saliency": False}, ["mutual_kl"]),
])
def test_ablation_switches_remove_their_terms(switch, zero_terms):
    trainer = LMIQATrainer(CONFIG.replace(**switch), 10)
    terms = trainer.make_train_function(tf.distribute.get_strategy())(_batch())
    for name in zero_terms:
        assert float(terms[name]) == 0.0
    kept = {"contrastive", "quality", "mutual_mse"} - set(zero_terms)
    assert all(float(terms[name]) > 0 for name in kept)


def test_intra_negatives_raise_the_contrastive_loss():
    with_intra = LMIQATrainer(CONFIG, 10)
    without = LMIQATrainer(CONFIG.replace(use_intra_negatives=False), 10)
    without.student.set_weights(with_intra.student.get_weights())
    without.teacher.set_weights(with_intra.teacher.get_weights())
    batch = _batch(2)
    a = float(with_intra.make_train_function(tf.distribute.get_strategy())(batch)["contrastive"])
    b = float(without.make_train_function(tf.distribute.get_strategy())(batch)["contrastive"])
    assert a > b > 0  # more negatives in the denominator


def test_dml_mode_trains_both_branches_by_gradient():
    trainer = LMIQATrainer(CONFIG.replace(branch_mode="dml"), 10)
    teacher_before = [w.numpy() for w in trainer.teacher.trainable_weights]
    student_before = [w.numpy() for w in trainer.student.trainable_weights]
    trainer.make_train_function(tf.distribute.get_strategy())(_batch())
    moved = lambda now, before: max(np.abs(w.numpy() - b).max() for w, b in zip(now, before))  # noqa: E731
    assert moved(trainer.teacher.trainable_weights, teacher_before) > 1e-4
    assert moved(trainer.student.trainable_weights, student_before) > 1e-4
    # Both branches are in the optimizer: one Adam update each, not an EMA.
    assert len(trainer.trainable) == 2 * len(trainer.student.trainable_variables)


def _xla_calls(step, batch) -> int:
    """Calls in the traced step that XLA must compile."""
    graph = step.get_concrete_function(batch).graph
    return sum(1 for op in graph.get_operations()
               if "_XlaMustCompile" in op.node_def.attr and op.node_def.attr["_XlaMustCompile"].b)


def test_xla_compiled_step_matches_the_graph_step():
    """`jit_compile` XLA-compiles the replica step; it must train exactly like the plain step."""
    results = []
    for jit in (False, True):
        tf.keras.utils.set_random_seed(3)
        trainer = LMIQATrainer(CONFIG.replace(jit_compile=jit), 10)
        step = trainer.make_train_function(tf.distribute.get_strategy())
        assert (_xla_calls(step, _batch()) > 0) == jit
        terms = step(_batch())
        results.append((terms, [w.numpy() for w in trainer.student.trainable_weights]))
    (plain_terms, plain_weights), (xla_terms, xla_weights) = results
    for name in ("loss", "quality", "contrastive", "mutual"):
        np.testing.assert_allclose(float(xla_terms[name]), float(plain_terms[name]), rtol=1e-4, atol=1e-6)
    for plain, xla in zip(plain_weights, xla_weights):
        np.testing.assert_allclose(xla, plain, rtol=1e-3, atol=1e-5)
