"""`train(config)`: data, strategy, the loop, backups, TensorBoard, validation, artifacts.

The run folder (`config.output_dir`) ends with, each written atomically:
    model.keras    the standalone model (images in, scores out: `models.image_quality`) of the
                   export branch (teacher by default) at the best validation epoch
    config.json    the TrainConfig, the dataset's score scale, the split, versions
    metrics.json   {"val": ..., "test": {srcc, plcc, plcc_logistic, krcc, rmse, n}, ...}
and keeps `backup/` (rolling checkpoint: rerunning the same command resumes where a
killed run stopped, mid-epoch included), `history.json` and `logs/` (TensorBoard).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import time

import keras
import numpy as np
import tensorflow as tf

from keras_lmiqa import artifacts, datasets
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.datasets.splits import split_dataset
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.evaluation import evaluate_many, evaluate_records
from keras_lmiqa.inference_spec import InferenceSpec
from keras_lmiqa.models.image_quality import image_quality_model, run_info
from keras_lmiqa.pipeline import TrainPipeline, find_all_undecodable, raise_for_bad_image
from keras_lmiqa.research.report import write_report
from keras_lmiqa.strategy import is_chief, resolve_strategy, worker_id
from keras_lmiqa.trainer import LOSS_NAMES, LMIQATrainer

logger = logging.getLogger(__name__)
LOG_EVERY = 10  # steps between TensorBoard scalar writes
PROGRESS_EVERY = 100  # steps between progress lines in the log


@dataclasses.dataclass
class RunResult:
    run_dir: str
    metrics: dict


def _git_commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _num_workers(strategy) -> int:
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        return len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return 1


def _run_record(config: TrainConfig, dataset, split) -> dict:
    """What config.json holds: enough to rebuild the model and reproduce the run."""
    return {
        "config": config.to_dict(),
        "dataset": {"name": dataset.name, "root": dataset.root, "scale": dataset.scale.to_dict(),
                    "synthetic": dataset.synthetic, "size": len(dataset)},
        "split": {**split.sizes(), "seed": split.seed, "official": split.official},
        "versions": {"keras_lmiqa": _package_version(), "tensorflow": tf.__version__, "keras": keras.__version__},
        "commit": _git_commit(),
    }


def _package_version() -> str:
    from keras_lmiqa import __version__

    return __version__


def _check_resumable(run_dir: str, record: dict) -> None:
    """A run folder may only be resumed with the same settings."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return
    previous = artifacts.read_json(path).get("config", {})
    changed = sorted(k for k in record["config"] if previous.get(k) != record["config"][k] and k != "output_dir")
    if changed:
        raise ConfigError(
            f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
            "use a new --output-dir, or delete the folder to start over"
        )


class _History:
    """Per-epoch validation metrics and the best epoch so far, saved with each backup."""

    def __init__(self, path: str, resumed_epoch: int):
        self.path = path
        self.epochs: list[dict] = []
        if os.path.exists(path):  # drop epochs newer than the restored checkpoint
            self.epochs = [e for e in artifacts.read_json(path)["epochs"] if e["epoch"] < resumed_epoch]

    @property
    def best(self) -> dict | None:
        scored = [e for e in self.epochs if "val" in e]
        return max(scored, key=lambda e: e["val"]["srcc"] + e["val"]["plcc"]) if scored else None

    def save(self) -> None:
        artifacts.write_json(self.path, {"epochs": self.epochs, "best": self.best})


def train(config: TrainConfig) -> RunResult:
    """Train LML-IQA as `config` says and write the run folder. Returns its metrics."""
    started = time.time()
    dataset = datasets.load(config.dataset, config.data_root, **config.dataset_options)
    split = split_dataset(dataset, config.split_seed, config.test_fraction, config.val_fraction,
                          use_official=config.use_official_split)
    train_records = split.records(dataset, "train")
    val_records = split.records(dataset, "val")
    test_records = split.records(dataset, "test")
    skipped: list[dict] = []
    if config.on_bad_image == "skip":
        train_records, val_records, test_records, skipped = _drop_bad_images(
            (train_records, val_records, test_records), config.max_pixels)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:  # reproducible to the bit, at some speed cost on GPUs
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    strategy = resolve_strategy(config.strategy)
    chief = is_chief(strategy)
    run_dir = os.path.abspath(config.output_dir)
    # Non-chief workers keep their own backups (multi-worker checkpoints are collective).
    work_dir = run_dir if chief else os.path.join(run_dir, f".worker-{worker_id()}")
    record = _run_record(config, dataset, split)
    if chief:
        os.makedirs(run_dir, exist_ok=True)
        _check_resumable(run_dir, record)
        artifacts.write_json(os.path.join(run_dir, "config.json"), record)

    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"--batch-size {config.batch_size} is not divisible by the {replicas} replicas")
    workers = _num_workers(strategy)
    pipeline = TrainPipeline([r.path for r in train_records], [r.quality for r in train_records], config)
    steps = pipeline.steps_per_epoch(config.batch_size, workers)
    if workers == 1:  # an over-budget decoded cache stops here, before the model is built
        pipeline.check_cache()
    if steps < 1:
        raise ConfigError(f"--batch-size {config.batch_size} exceeds the {len(train_records)} training images")
    local_replicas = replicas // workers

    with strategy.scope():
        trainer = LMIQATrainer(config, steps)
    # Bookkeeping, not model state: plain (non-mirrored) variables.
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
    train_function = trainer.make_train_function(strategy)
    optimizers = {"optimizer": trainer.optimizer}
    if trainer.head_optimizer is not None:
        optimizers["head_optimizer"] = trainer.head_optimizer
    checkpoint = tf.train.Checkpoint(student=trainer.student, teacher=trainer.teacher,
                                     epoch=epoch_var, step_in_epoch=step_var, **optimizers)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(work_dir, "backup"), max_to_keep=1)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
        logger.info("resumed from %s at epoch %d step %d", manager.latest_checkpoint, int(epoch_var), int(step_var))
    history = _History(os.path.join(work_dir, "history.json"), int(epoch_var))
    best_path = os.path.join(work_dir, "best.weights.h5")
    writer = tf.summary.create_file_writer(os.path.join(work_dir, "logs")) if chief else tf.summary.create_noop_writer()

    def backup(epoch: int, step: int) -> None:
        epoch_var.assign(epoch)
        step_var.assign(step)
        if chief:
            history.save()
        manager.save()  # every worker saves (multi-worker checkpoints are collective)

    train_paths = [r.path for r in train_records]
    for epoch in range(int(epoch_var), config.epochs):
        skip = int(step_var) if epoch == int(epoch_var) else 0
        dist = strategy.distribute_datasets_from_function(
            lambda ctx, e=epoch, s=skip: pipeline.epoch_dataset(
                e, ctx.get_per_replica_batch_size(config.batch_size), steps * local_replicas, ctx, s * local_replicas))
        sums = {name: 0.0 for name in LOSS_NAMES}
        count = 0
        epoch_start = time.time()
        try:
            for step, batch in enumerate(dist, start=skip):
                terms = train_function(batch)
                count += 1
                for name in LOSS_NAMES:
                    sums[name] += float(terms[name])
                global_step = epoch * steps + step + 1
                if global_step % LOG_EVERY == 0:
                    with writer.as_default(step=global_step):
                        for name in LOSS_NAMES:
                            tf.summary.scalar(f"train/{name}", terms[name])
                        tf.summary.scalar("train/learning_rate", trainer.schedule(global_step))
                if (step + 1) % PROGRESS_EVERY == 0:
                    rate = count * config.batch_size / max(time.time() - epoch_start, 1e-6)
                    logger.info("epoch %d step %d/%d loss %.4f (%.1f images/s)", epoch + 1, step + 1, steps,
                                sums["loss"] / count, rate)
                if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < steps:
                    backup(epoch, step + 1)
        except tf.errors.InvalidArgumentError as error:
            raise_for_bad_image(train_paths, config.max_pixels, error)
        entry = {"epoch": epoch, "seconds": round(time.time() - epoch_start, 2),
                 "train": {name: sums[name] / max(count, 1) for name in LOSS_NAMES}}
        if chief and val_records:
            entry.update(_validate(trainer, val_records, dataset.scale, config))
            with writer.as_default(step=epoch + 1):
                for branch, branch_metrics in entry["val_branches"].items():
                    for name, value in branch_metrics.items():
                        tf.summary.scalar(f"val_{branch}/{name}", value)
        else:
            entry["branch"] = _unvalidated_branch(config)
        if chief:
            history.epochs.append(entry)
            if history.best is entry or not val_records:
                artifacts.save_keras(trainer.branches[entry["branch"]], best_path)
            logger.info("epoch %d/%d %.1fs loss %.4f val %s", epoch + 1, config.epochs, entry["seconds"],
                        entry["train"]["loss"], {branch: {k: round(v, 4) for k, v in values.items()}
                                                 for branch, values in entry.get("val_branches", {}).items()})
        backup(epoch + 1, 0)
    writer.flush()

    if not chief:
        return RunResult(run_dir, {})
    best = history.best
    branch = best["branch"] if best else _unvalidated_branch(config)
    exported = trainer.branches[branch]
    exported.load_weights(best_path)
    model_path = os.path.join(run_dir, "model.keras")
    # The standalone model (images in, scores out): the branch with the run's inference spec.
    spec = InferenceSpec.from_config(config, dataset.scale, dataset.name, branch)
    artifacts.save_keras(image_quality_model(exported, spec, run_info(config, record)), model_path)
    saved = keras.saving.load_model(model_path)  # measure what was shipped, not what is in memory
    test_metrics, predictions = evaluate_records(saved, test_records, dataset.scale, saved.spec) if test_records else ({}, [])
    metrics = {
        "val": {**best["val"], "epoch": best["epoch"], "branch": best["branch"]} if best else {},
        "test": test_metrics,
        "images": {"train": len(train_records), "val": len(val_records), "test": len(test_records)},
        "train_seconds": round(time.time() - started, 1),
        "export_branch": branch,  # the branch validation picked (or the config fixed)
        "skipped": skipped,  # on_bad_image=skip: [{"path", "reason"}], never replaced by other images
    }
    artifacts.write_json(os.path.join(run_dir, "metrics.json"), metrics)
    _write_predictions(os.path.join(run_dir, "test_predictions.csv"), test_records, predictions)
    logger.info("test %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in test_metrics.items()})
    # Drawn from the files saved above: if it fails, ReportError names the cause and the
    # results stay saved (`lmiqa report RUN_DIR` rebuilds it).
    write_report(run_dir)
    return RunResult(run_dir, metrics)


def _validated_branches(trainer: LMIQATrainer, config: TrainConfig) -> dict:
    """The branches to validate: both when validation picks the export branch."""
    if config.export_branch == "auto":
        return trainer.branches
    return {config.export_branch: trainer.branches[config.export_branch]}


def _unvalidated_branch(config: TrainConfig) -> str:
    """With no validation part, "auto" exports the teacher (the students' running mean)."""
    return "teacher" if config.export_branch == "auto" else config.export_branch


def _validate(trainer: LMIQATrainer, records, scale, config: TrainConfig) -> dict:
    """Both branches (or the fixed one) on the validation part, cutting crops once.

    Returns the history fields: `val` (the better branch's metrics, by SRCC + PLCC),
    `branch` (its name) and `val_branches` (every validated branch's metrics).
    """
    results = {name: metrics for name, (metrics, _) in
               evaluate_many(_validated_branches(trainer, config), records, scale, config).items()}
    branch = max(results, key=lambda name: results[name]["srcc"] + results[name]["plcc"])
    return {"val": results[branch], "branch": branch, "val_branches": results}


def _drop_bad_images(splits, max_pixels: int):
    """`on_bad_image: skip`: each split without the images the pipeline cannot decode, and
    [{"path", "reason"}] of those dropped (each also logged)."""
    bad = dict(find_all_undecodable([r.path for records in splits for r in records], max_pixels))
    for path, reason in bad.items():
        logger.warning("skipping image %s: %s", path, reason)
    kept = [[r for r in records if r.path not in bad] for records in splits]
    return (*kept, [{"path": path, "reason": reason} for path, reason in bad.items()])


def _write_predictions(path: str, records, predictions) -> None:
    with artifacts.atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write("path,mos,predicted_mos,group\n")
            for rec, pred in zip(records, np.asarray(predictions, np.float64)):
                handle.write(f"{json.dumps(rec.path)},{rec.mos:.6g},{pred:.6g},{json.dumps(rec.group)}\n")
