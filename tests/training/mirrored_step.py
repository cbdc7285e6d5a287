"""Run by test_distributed: one training step on 1 device and on 2 logical CPUs.

Prints a JSON line with the max differences of the losses and updated weights.
"""

import json
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from keras_lmiqa.config import TrainConfig  # noqa: E402
from keras_lmiqa.training.step import LMIQATrainer  # noqa: E402

branch_mode = sys.argv[1] if len(sys.argv) > 1 else "ema"
config = TrainConfig(backbone="tiny", weights="none", crop_size=32, num_crops=3, num_positives=1, batch_size=4,
                     dropout=0.0, head_units=16, embedding_dim=8, momentum=0.9, lr=1e-3, branch_mode=branch_mode,
                     lambda_rank=0.5)  # every loss term on, the ranking term across replicas too
rng = np.random.default_rng(0)
batch = {
    "crops": rng.integers(0, 256, (4, 4, 32, 32, 3), dtype=np.uint8),
    "saliency": rng.random((4, 4), dtype=np.float32),
    "roles": np.tile(np.array([[0, 1, 1, 2]], np.int32), (4, 1)),
    "quality": rng.random(4, dtype=np.float32),
    "image_id": np.arange(4, dtype=np.int32),
}

keras.utils.set_random_seed(0)
single = LMIQATrainer(config, steps_per_epoch=10)
initial = [w.numpy() for w in single.student.weights]
single_losses = single.make_train_function(tf.distribute.get_strategy())({k: tf.constant(v) for k, v in batch.items()})

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = LMIQATrainer(config, steps_per_epoch=10)
    mirrored.student.set_weights(initial)
    mirrored.teacher.set_weights(initial)


def split(context):
    half = 2 * context.replica_id_in_sync_group
    return {k: tf.constant(v[half:half + 2]) for k, v in batch.items()}


mirrored_losses = mirrored.make_train_function(strategy)(strategy.experimental_distribute_values_from_function(split))


def max_diff(a, b):
    return float(max(np.abs(x.numpy() - y.numpy()).max() for x, y in zip(a, b)))


print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "loss_single": {k: float(v) for k, v in single_losses.items()},
    "loss_mirrored": {k: float(v) for k, v in mirrored_losses.items()},
    "student_diff": max_diff(single.student.weights, mirrored.student.weights),
    "teacher_diff": max_diff(single.teacher.weights, mirrored.teacher.weights),
    "student_moved": float(max(np.abs(w.numpy() - i).max() for w, i in zip(single.student.weights, initial))),
    "teacher_moved": float(max(np.abs(w.numpy() - i).max() for w, i in zip(single.teacher.weights, initial))),
}))
