"""tf.distribute strategies by name, and the helpers the training step needs from them.

`auto` = MirroredStrategy over all visible GPUs when there is more than one, else the
default strategy. `multiworker` = MultiWorkerMirroredStrategy configured by `TF_CONFIG`.
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

from keras_lmiqa.errors import ConfigError

logger = logging.getLogger(__name__)


def resolve_strategy(name: str) -> tf.distribute.Strategy:
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}; valid: auto, default, mirrored, multiworker")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes artifacts (the only worker, or task 0 / chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)


def worker_id() -> int:
    """This worker's index in TF_CONFIG (0 without TF_CONFIG)."""
    try:
        return int(json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))
    except (ValueError, AttributeError):
        raise ConfigError("TF_CONFIG is not valid JSON with a task index") from None


def replica_offset_and_total(local_count):
    """In replica context: (this replica's first global index, global count).

    Replicas see consecutive slices of the global batch in replica-id order, so a
    local index i has global index offset + i.
    """
    context = tf.distribute.get_replica_context()
    n = context.num_replicas_in_sync
    counts = context.all_gather(tf.reshape(local_count, [1]), axis=0)  # [n]
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    offset = tf.reduce_sum(tf.where(tf.range(n) < replica, counts, tf.zeros_like(counts)))
    return offset, tf.reduce_sum(counts)


def all_gather(values):
    """Concatenate `values` over all replicas along axis 0 (identity on one replica)."""
    return tf.distribute.get_replica_context().all_gather(values, axis=0)
