"""The training step: masks, EMA, loss terms, ablation switches, dml mode."""

import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa.config import TrainConfig
from keras_lmiqa.training.step import LMIQATrainer, teacher_momentum

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


def test_masks_follow_each_images_roles():
    """Roles differ per image: neutral windows (3) are neither positive nor intra."""
    trainer = LMIQATrainer(CONFIG, 10)
    roles = tf.constant([[0, 1, 1, 2, 2], [0, 3, 1, 2, 2], [0, 3, 3, 2, 2]], tf.int32)
    positive, intra, neutral = trainer._masks({"roles": roles}, offset=0)
    assert neutral is None
    positive, intra = positive.numpy(), intra.numpy()
    assert positive.shape == intra.shape == (3, 15)
    np.testing.assert_array_equal(np.nonzero(positive[0])[0], [0, 3, 4])  # anchor + 2 views
    np.testing.assert_array_equal(np.nonzero(intra[0])[0], [1, 2])
    np.testing.assert_array_equal(np.nonzero(positive[1])[0], [5, 8, 9])
    np.testing.assert_array_equal(np.nonzero(intra[1])[0], [7])  # window 6 is neutral
    np.testing.assert_array_equal(np.nonzero(intra[2])[0], [])
    assert (positive * intra).sum() == 0


def test_ema_update_follows_the_ramped_formula():
    """m_1 = 0 (the teacher becomes the student), m_2 = 1/2 (their mean), then the EMA."""
    trainer = LMIQATrainer(CONFIG, 10)
    step = trainer.make_train_function(tf.distribute.get_strategy())
    step(_batch())
    for teacher, student in zip(trainer.teacher.weights, trainer.student.weights):
        np.testing.assert_allclose(teacher.numpy(), student.numpy(), rtol=1e-6, atol=1e-7)
    before = [w.numpy() for w in trainer.teacher.weights]
    step(_batch(1))
    for teacher, student, old in zip(trainer.teacher.weights, trainer.student.weights, before):
        np.testing.assert_allclose(teacher.numpy(), 0.5 * old + 0.5 * student.numpy(), rtol=1e-5, atol=1e-6)
    assert int(trainer.optimizer.iterations) == 2


@pytest.mark.parametrize("total_steps", [200, 260, 1_000, 20_000, 1_000_000])
def test_teacher_keeps_under_one_percent_of_its_start_on_any_run_length(total_steps):
    """The weight of the initial teacher after a run is the product of its momenta;
    also the weight of everything the student was in the run's first half is small."""
    config = TrainConfig(momentum=0.999)
    momenta = np.array([float(teacher_momentum(t, config, total_steps)) for t in range(1, total_steps + 1)]
                       if total_steps <= 20_000 else
                       teacher_momentum(np.arange(1, total_steps + 1, dtype=np.float32), config, total_steps))
    assert np.prod(momenta) < 0.01
    # Time constant capped at 10% of the run: the second half outweighs the first.
    assert np.prod(momenta[total_steps // 2:]) < 0.01
    assert 1.0 / (1.0 - momenta.max()) <= max(1.0, 0.1 * total_steps) + 1e-3


def test_teacher_momentum_is_the_configured_one_on_long_runs():
    config = TrainConfig(momentum=0.99)
    assert float(teacher_momentum(50_000, config, 100_000)) == pytest.approx(0.99)
    assert float(teacher_momentum(3, config, 100_000)) == pytest.approx(2 / 3)
    # A 260-step run: capped at a 26-step time constant.
    assert float(teacher_momentum(200, config, 260)) == pytest.approx(1 - 1 / 26)


def test_teacher_mse_waits_for_the_warm_up():
    """L_mut holds the teacher MSE (weighted lambda_mse) only after the warm-up steps."""
    trainer = LMIQATrainer(CONFIG.replace(warmup_epochs=0.2, lambda_mse=0.25, lambda_kl=0.1), 10)  # 2 warm-up steps
    step = trainer.make_train_function(tf.distribute.get_strategy())
    seen = []
    for index in range(4):
        terms = step(_batch(index))
        seen.append((float(terms["mutual"]), float(terms["mutual_mse"]), float(terms["mutual_kl"])))
    for mutual, _mse, kl in seen[:2]:
        assert mutual == pytest.approx(0.1 * kl, rel=1e-6)
    for mutual, mse, kl in seen[2:]:
        assert mse > 0
        assert mutual == pytest.approx(0.1 * kl + 0.25 * mse, rel=1e-5)


def test_pretrained_backbone_trains_slower_than_the_heads(tmp_path):
    """With a pretrained backbone the heads get lr * head_lr_multiplier (a second AdamW).
    Adam's first step moves every weight by about its learning rate."""
    from keras_lmiqa.models.backbones import build_backbone

    path = str(tmp_path / "tiny.weights.h5")
    build_backbone("tiny", 32, "none").save_weights(path)
    config = CONFIG.replace(weights=path, head_lr_multiplier=10.0, lr=1e-4, weight_decay=0.0, clip_norm=0.0,
                            dropout=0.0)
    trainer = LMIQATrainer(config, 10)
    assert trainer.head_optimizer is not None
    backbone = trainer.student.get_layer("tiny_backbone")
    backbone_ids = {id(v) for v in backbone.trainable_variables}
    before = {id(v): v.numpy() for v in trainer.student.trainable_variables}
    trainer.make_train_function(tf.distribute.get_strategy())(_batch())
    moved = {id(v): np.abs(v.numpy() - before[id(v)]).max() for v in trainer.student.trainable_variables}
    backbone_step = max(m for key, m in moved.items() if key in backbone_ids)
    head_step = max(m for key, m in moved.items() if key not in backbone_ids)
    assert backbone_step == pytest.approx(1e-4, rel=0.05)  # no warm-up in CONFIG
    assert head_step == pytest.approx(1e-3, rel=0.05)
    # Trained from scratch: one optimizer, one learning rate.
    assert LMIQATrainer(CONFIG, 10).head_optimizer is None


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
    # Two peers: every randomly initialised head starts from other values, the backbones equal.
    for name in ("projection_hidden", "projection_out", "quality_hidden", "quality_out"):
        assert np.abs(trainer.teacher.get_layer(name).kernel.numpy()
                      - trainer.student.get_layer(name).kernel.numpy()).mean() > 1e-3, name
    ema = LMIQATrainer(CONFIG, 10)  # the EMA teacher starts as an exact copy
    for teacher, student in zip(ema.teacher.weights, ema.student.weights):
        np.testing.assert_array_equal(teacher.numpy(), student.numpy())
    np.testing.assert_array_equal(trainer.teacher.get_layer("tiny_backbone").get_weights()[0],
                                  trainer.student.get_layer("tiny_backbone").get_weights()[0])
    teacher_before = [w.numpy() for w in trainer.teacher.trainable_weights]
    student_before = [w.numpy() for w in trainer.student.trainable_weights]
    trainer.make_train_function(tf.distribute.get_strategy())(_batch())
    moved = lambda now, before: max(np.abs(w.numpy() - b).max() for w, b in zip(now, before))  # noqa: E731
    assert moved(trainer.teacher.trainable_weights, teacher_before) > 1e-4
    assert moved(trainer.student.trainable_weights, student_before) > 1e-4
    # Both branches are in the optimizer: one Adam update each, not an EMA.
    assert len(trainer.trainable) == 2 * len(trainer.student.trainable_variables)


def test_a_large_contrastive_gradient_leaves_the_quality_gradient_intact():
    """Each loss group is clipped to clip_norm on its own: multiplying the contrastive
    weight by 10^4 does not change the label terms' gradient (one global clip would
    have divided it by the contrastive gradient's norm)."""
    from keras_lmiqa.training.step import clip_per_term

    batch = _batch(3)
    light = LMIQATrainer(CONFIG.replace(lambda_lm=0.1, clip_norm=1.0), 10)
    heavy = LMIQATrainer(CONFIG.replace(lambda_lm=1000.0, clip_norm=1.0), 10)
    unclipped = LMIQATrainer(CONFIG.replace(lambda_lm=1000.0, clip_norm=0.0), 10)
    for other in (heavy, unclipped):
        other.student.set_weights(light.student.get_weights())
        other.teacher.set_weights(light.teacher.get_weights())
    quality_head = [i for i, v in enumerate(light.trainable) if "quality_out" in v.path]
    assert len(quality_head) == 2  # kernel and bias: reached by the label terms only

    def gradient(trainer):
        return [g.numpy() for g in trainer.compute_gradients(batch)[1]]

    raw = gradient(unclipped)
    total_norm = np.sqrt(sum((g ** 2).sum() for g in raw))
    assert total_norm > 100  # the contrastive term dominates the global norm
    kept, clipped = gradient(light), gradient(heavy)
    for index in quality_head:
        assert np.abs(kept[index]).max() > 1e-4
        np.testing.assert_allclose(clipped[index], kept[index], rtol=1e-4, atol=1e-7)
        # What one global clip of the summed gradient would have left of it:
        globally = [g.numpy() for g in clip_per_term([raw], 1.0)][index]
        assert np.abs(globally).max() < 0.05 * np.abs(kept[index]).max()
    norm = lambda grads: np.sqrt(sum((g ** 2).sum() for g in grads))  # noqa: E731
    assert norm(clipped) <= 2.0 + 1e-4  # two groups, each at most clip_norm
    # clip_mode global (the cpu-demo preset: one backward pass) is exactly that one clip.
    single = LMIQATrainer(CONFIG.replace(lambda_lm=1000.0, clip_norm=1.0, clip_mode="global"), 10)
    single.student.set_weights(light.student.get_weights())
    single.teacher.set_weights(light.teacher.get_weights())
    one_clip = gradient(single)
    assert norm(one_clip) == pytest.approx(1.0, rel=1e-4)
    for ours, expected in zip(one_clip, clip_per_term([raw], 1.0)):
        np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-4, atol=1e-8)


def test_mixed_precision_step_keeps_losses_float32_and_finite():
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        trainer = LMIQATrainer(CONFIG.replace(mixed_precision=True), 10)
        terms, gradients = trainer.compute_gradients(_batch())
        assert trainer.student.get_layer("tiny_backbone").get_layer("local_contrast").compute_dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)
    for name, value in terms.items():
        assert value.dtype == tf.float32 and np.isfinite(value.numpy()), name
    assert float(terms["quality"]) > 0 and float(terms["contrastive"]) > 0
    assert all(np.isfinite(g.numpy()).all() for g in gradients)


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
