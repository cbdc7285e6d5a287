"""`train(config)`: data, strategy, the loop, backups, TensorBoard, validation, artifacts.

One piece per concern, each changeable on its own: `load_data` (split, bad images),
`open_run_folder` (the writer lock, the same-settings check), `write_run_record`
(config.json), `Checkpointing` (the rolling backup and the history), `run_epoch` with
`EpochLog` (loss means, TensorBoard, progress), `end_epoch` (validation of both
branches, best weights) and `finish` (model.keras, test, metrics). The run report
(`keras_lmiqa.research.report`) is built by the callers (`lmiqa train`, the protocol)
from the finished folder: training does not draw.

The run folder (`config.output_dir`) ends with, each written atomically:
    model.keras    the standalone model (images in, scores out: `models.image_quality`) of the
                   export branch (teacher by default) at the best validation epoch
    config.json    the TrainConfig, the dataset's score scale, the split, versions
    metrics.json   {"val": ..., "test": {srcc, plcc, plcc_logistic, krcc, rmse, n},
                   "train_seconds": wall time over all sittings, ...}
and keeps `backup/` (rolling checkpoint: rerunning the same command resumes where a
killed run stopped, mid-epoch included), `history.json`, `logs/` (TensorBoard) and
`.lmiqa.lock`: a run holds it while it lives, so a second training on the folder is refused
at once; the OS drops it with the process, so a killed run's rerun resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_lmiqa import __version__, artifacts, datasets
from keras_lmiqa.config import TrainConfig, check_same_settings
from keras_lmiqa.datasets.splits import split_dataset
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.inference_spec import InferenceSpec
from keras_lmiqa.models.image_quality import image_quality_model, run_info
from keras_lmiqa.models.scoring import evaluate_many, evaluate_records
from keras_lmiqa.pipeline import TrainPipeline, find_all_undecodable, raise_for_bad_image
from keras_lmiqa.strategy import is_chief, resolve_strategy, worker_id
from keras_lmiqa.training.step import LOSS_NAMES, LMIQATrainer

logger = logging.getLogger("keras_lmiqa.training")  # the name users see in progress lines
LOG_EVERY = 10  # steps between TensorBoard scalar writes
PROGRESS_EVERY = 100  # steps between progress lines in the log (when no progress bar is shown)
BEST_WEIGHTS = "best.weights.h5"  # the export branch at the best validation epoch so far


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
    return __version__


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


# ---------------------------------------------------------------- data and run folder


@dataclasses.dataclass
class RunData:
    """The dataset, its split and the three parts' records (bad images left out on `skip`)."""

    dataset: object
    split: object
    train: list
    val: list
    test: list
    skipped: list  # on_bad_image=skip: [{"path", "reason"}], never replaced by other images


def load_data(config: TrainConfig) -> RunData:
    dataset = datasets.load(config.dataset, config.data_root, **config.dataset_options)
    split = split_dataset(dataset, config.split_seed, config.test_fraction, config.val_fraction,
                          use_official=config.use_official_split)
    parts = tuple(split.records(dataset, part) for part in ("train", "val", "test"))
    skipped: list[dict] = []
    if config.on_bad_image == "skip":
        *parts, skipped = _drop_bad_images(parts, config.max_pixels)
    scores = {record.mos for record in parts[0]}
    if len(scores) == 1:  # nothing to learn from: the quality target is the same for every image
        logger.warning("all %d training images have the same score (%g): the model cannot learn to rank them",
                       len(parts[0]), scores.pop())
    return RunData(dataset, split, *parts, skipped)


def configure_runtime(config: TrainConfig) -> None:
    """Seeds, op determinism and the precision policy: process-wide, before any model."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:  # reproducible to the bit, at some speed cost on GPUs
        tf.config.experimental.enable_op_determinism()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")


@dataclasses.dataclass
class RunFolder:
    """`run_dir` (the results) and `work_dir`, where this worker keeps its backup/,
    history.json, logs/ and best weights: the run folder on the chief; non-chief workers
    keep their own (multi-worker checkpoints are collective). The chief holds the run
    folder's writer lock (`artifacts.lock_folder`) until `release()`."""

    run_dir: str
    work_dir: str
    chief: bool
    record: dict = dataclasses.field(default_factory=dict)  # config.json's contents (chief)
    lock: artifacts.FolderLock | None = None

    def work_path(self, name: str) -> str:
        return os.path.join(self.work_dir, name)

    def run_path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def open_run_folder(config: TrainConfig, strategy) -> RunFolder:
    """The run folder, locked for this run (one writer: a second training on it is refused
    at once, naming the holder's PID) and refused if it holds a run with other settings."""
    chief = is_chief(strategy)
    run_dir = os.path.abspath(config.output_dir)
    folder = RunFolder(run_dir, run_dir if chief else os.path.join(run_dir, f".worker-{worker_id()}"), chief)
    if chief:  # other workers write only in their own work_dir
        os.makedirs(run_dir, exist_ok=True)
        folder.lock = artifacts.lock_folder(run_dir, "another training run")
        try:
            check_same_settings(run_dir, config)  # resuming needs the same settings
        except BaseException:
            folder.release()
            raise
    return folder


def write_run_record(folder: RunFolder, config: TrainConfig, data: RunData) -> None:
    """config.json (chief)."""
    if folder.chief:
        folder.record = _run_record(config, data.dataset, data.split)
        artifacts.write_json(folder.run_path("config.json"), folder.record)


def build_pipeline(config: TrainConfig, data: RunData, strategy) -> tuple[TrainPipeline, int, int]:
    """(the training input pipeline, global steps per epoch, number of workers)."""
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"--batch-size {config.batch_size} is not divisible by the {replicas} replicas")
    workers = _num_workers(strategy)
    pipeline = TrainPipeline([r.path for r in data.train], [r.quality for r in data.train], config)
    steps = pipeline.steps_per_epoch(config.batch_size, workers)
    if workers == 1:  # an over-budget decoded cache stops here, before the model is built
        pipeline.check_cache()
    if steps < 1:
        raise ConfigError(f"--batch-size {config.batch_size} exceeds the {len(data.train)} training images")
    return pipeline, steps, workers


# ---------------------------------------------------------------- checkpointing


class Checkpointing:
    """The rolling backup (branches, optimizers, epoch and step, time spent) and the
    history beside it.

    Created after the trainer: restores the latest backup if there is one, so
    `epoch`/`step` are where the run goes on (0/0 for a new run). Times add up over the
    sittings of a killed and resumed run, each sitting's counted up to its last backup.
    """

    def __init__(self, trainer: LMIQATrainer, folder: RunFolder, started: float):
        self.folder, self.started = folder, started
        # Bookkeeping, not model state: plain (non-mirrored) variables.
        self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        self._run_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="run_seconds")
        self._epoch_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="epoch_seconds")
        optimizers = {"optimizer": trainer.optimizer}
        if trainer.head_optimizer is not None:
            optimizers["head_optimizer"] = trainer.head_optimizer
        checkpoint = tf.train.Checkpoint(student=trainer.student, teacher=trainer.teacher,
                                         epoch=self._epoch, step_in_epoch=self._step,
                                         run_seconds=self._run_seconds, epoch_seconds=self._epoch_seconds,
                                         **optimizers)
        self.manager = tf.train.CheckpointManager(checkpoint, folder.work_path("backup"), max_to_keep=1)
        if self.manager.latest_checkpoint:
            checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
            logger.info("resumed from %s at epoch %d step %d", self.manager.latest_checkpoint, self.epoch, self.step)
        self.history = _History(folder.work_path("history.json"), self.epoch)
        self.earlier_seconds = float(self._run_seconds)  # the earlier sittings'

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @property
    def step(self) -> int:
        return int(self._step)

    @property
    def epoch_seconds(self) -> float:
        """Seconds the resumed epoch had trained before the backup (0 at an epoch's start)."""
        return float(self._epoch_seconds)

    def run_seconds(self) -> float:
        """Wall seconds of the run so far, its earlier sittings included."""
        return self.earlier_seconds + time.time() - self.started

    def backup(self, epoch: int, step: int, epoch_seconds: float = 0.0) -> None:
        """Save the state at `step` of `epoch` (step 0 of the next epoch after one ends),
        `epoch_seconds` into that epoch."""
        self._epoch.assign(epoch)
        self._step.assign(step)
        self._run_seconds.assign(self.run_seconds())
        self._epoch_seconds.assign(epoch_seconds)
        if self.folder.chief:
            self.history.save()
        self.manager.save()  # every worker saves (multi-worker checkpoints are collective)


# ---------------------------------------------------------------- one epoch


class EpochLog:
    """Loss averages (`keras.metrics.Mean`), TensorBoard scalars every LOG_EVERY steps, and
    progress: a bar per epoch on a terminal, else a log line every PROGRESS_EVERY steps."""

    def __init__(self, config: TrainConfig, trainer: LMIQATrainer, writer, steps: int, show_bar: bool):
        self.config, self.trainer, self.writer, self.steps, self.show_bar = config, trainer, writer, steps, show_bar
        self.means = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    def start(self, epoch: int, skip: int, earlier_seconds: float = 0.0) -> None:
        """Epoch `epoch` begins at step `skip`, `earlier_seconds` after it first began."""
        self.epoch, self.count, self.started, self.earlier_seconds = epoch, 0, time.time(), earlier_seconds
        for mean in self.means.values():
            mean.reset_state()
        self.bar = keras.utils.Progbar(self.steps, stateful_metrics=["loss"]) if self.show_bar else None
        if self.bar is not None and skip:
            self.bar.update(skip)  # a resumed epoch starts where the backup was taken

    def update(self, step: int, terms: dict) -> None:
        """After `step` (0-based in the epoch) gave loss `terms`."""
        self.count += 1
        for name in LOSS_NAMES:
            self.means[name].update_state(terms[name])
        global_step = self.epoch * self.steps + step + 1
        if global_step % LOG_EVERY == 0:
            with self.writer.as_default(step=global_step):
                for name in LOSS_NAMES:
                    tf.summary.scalar(f"train/{name}", terms[name])
                tf.summary.scalar("train/learning_rate", self.trainer.schedule(global_step))
        if self.bar is not None:
            self.bar.update(step + 1, [("loss", float(self.means["loss"].result()))])
        elif (step + 1) % PROGRESS_EVERY == 0:
            rate = self.count * self.config.images_per_step / max(time.time() - self.started, 1e-6)
            logger.info("epoch %d step %d/%d loss %.4f (%.1f images/s)", self.epoch + 1, step + 1, self.steps,
                        float(self.means["loss"].result()), rate)

    @property
    def seconds(self) -> float:
        """The epoch's training seconds, a resumed epoch's earlier sittings included."""
        return self.earlier_seconds + time.time() - self.started

    def averages(self) -> dict[str, float]:
        """Each loss term's mean over this run's steps of the epoch (0 when none ran)."""
        return {name: float(mean.result()) for name, mean in self.means.items()}


def run_epoch(run: _Run, epoch: int, skip: int) -> dict:
    """Train one epoch from step `skip`, with mid-epoch backups; returns its history entry."""
    config, local_replicas = run.config, run.strategy.num_replicas_in_sync // run.workers
    dist = run.strategy.distribute_datasets_from_function(
        lambda ctx: run.pipeline.epoch_dataset(epoch, ctx.get_per_replica_batch_size(config.batch_size),
                                               run.steps * local_replicas, ctx, skip * local_replicas))
    run.log.start(epoch, skip, run.checkpoints.epoch_seconds if skip else 0.0)
    try:
        for step, batch in enumerate(dist, start=skip):
            run.log.update(step, run.train_function(batch))
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < run.steps:
                run.checkpoints.backup(epoch, step + 1, run.log.seconds)
    except tf.errors.InvalidArgumentError as error:
        raise_for_bad_image([r.path for r in run.data.train], config.max_pixels, error)
    return {"epoch": epoch, "seconds": round(run.log.seconds, 2), "train": run.log.averages()}


def end_epoch(run: _Run, entry: dict) -> None:
    """Validate (chief), keep the best weights, log the epoch and back up for the next."""
    config, folder, history = run.config, run.folder, run.checkpoints.history
    if folder.chief and run.data.val:
        entry.update(_validate(run.trainer, run.data.val, run.data.dataset.scale, config))
        with run.writer.as_default(step=entry["epoch"] + 1):
            for branch, branch_metrics in entry["val_branches"].items():
                for name, value in branch_metrics.items():
                    tf.summary.scalar(f"val_{branch}/{name}", value)
    else:
        entry["branch"] = _unvalidated_branch(config)
    if folder.chief:
        history.epochs.append(entry)
        if history.best is entry or not run.data.val:
            artifacts.save_keras(run.trainer.branches[entry["branch"]], folder.work_path(BEST_WEIGHTS))
        logger.info("epoch %d/%d %.1fs loss %.4f val %s", entry["epoch"] + 1, config.epochs, entry["seconds"],
                    entry["train"]["loss"], {branch: {k: round(v, 4) for k, v in values.items()}
                                             for branch, values in entry.get("val_branches", {}).items()})
    run.checkpoints.backup(entry["epoch"] + 1, 0)


# ---------------------------------------------------------------- finish


def finish(run: _Run) -> RunResult:
    """Chief: save the best epoch's export branch as model.keras, test what was saved,
    write metrics.json and test_predictions.csv."""
    config, data, folder = run.config, run.data, run.folder
    best = run.checkpoints.history.best
    branch = best["branch"] if best else _unvalidated_branch(config)
    exported = run.trainer.branches[branch]
    exported.load_weights(folder.work_path(BEST_WEIGHTS))
    model_path = folder.run_path("model.keras")
    # The standalone model (images in, scores out): the branch with the run's inference spec.
    spec = InferenceSpec.from_config(config, data.dataset.scale, data.dataset.name, branch)
    artifacts.save_keras(image_quality_model(exported, spec, run_info(config, folder.record)), model_path)
    saved = keras.saving.load_model(model_path)  # measure what was shipped, not what is in memory
    test_metrics, predictions = (evaluate_records(saved, data.test, data.dataset.scale, saved.spec)
                                 if data.test else ({}, []))
    metrics = {
        "val": {**best["val"], "epoch": best["epoch"], "branch": best["branch"]} if best else {},
        "test": test_metrics,
        "images": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "train_seconds": round(run.checkpoints.run_seconds(), 1),  # all sittings, to the test's end
        "export_branch": branch,  # the branch validation picked (or the config fixed)
        "skipped": data.skipped,
    }
    artifacts.write_json(folder.run_path("metrics.json"), metrics)
    _write_predictions(folder.run_path("test_predictions.csv"), data.test, predictions)
    logger.info("test %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in test_metrics.items()})
    return RunResult(folder.run_dir, metrics)


@dataclasses.dataclass
class _Run:
    """What the pieces of one training run share."""

    config: TrainConfig
    data: RunData
    strategy: tf.distribute.Strategy
    folder: RunFolder
    pipeline: TrainPipeline
    steps: int
    workers: int
    trainer: LMIQATrainer
    train_function: object
    checkpoints: Checkpointing
    writer: object
    log: EpochLog


def train(config: TrainConfig, progress: bool | None = None) -> RunResult:
    """Train LML-IQA as `config` says and write the run folder. Returns its metrics.

    `progress`: a progress bar per epoch (default: when stdout is a terminal). The run
    report (`research.report.write_report`) is the caller's to build from the folder.
    """
    started = time.time()
    strategy = resolve_strategy(config.strategy)
    folder = open_run_folder(config, strategy)  # first: a second run on the folder stops here
    try:
        return _train_in(folder, config, strategy, progress, started)
    finally:
        folder.release()


def _train_in(folder: RunFolder, config: TrainConfig, strategy, progress: bool | None, started: float) -> RunResult:
    data = load_data(config)
    configure_runtime(config)
    write_run_record(folder, config, data)
    pipeline, steps, workers = build_pipeline(config, data, strategy)
    with strategy.scope():
        trainer = LMIQATrainer(config, steps)
    writer = (tf.summary.create_file_writer(folder.work_path("logs")) if folder.chief
              else tf.summary.create_noop_writer())
    show_bar = sys.stdout.isatty() if progress is None else progress
    run = _Run(config, data, strategy, folder, pipeline, steps, workers, trainer,
               trainer.make_train_function(strategy), Checkpointing(trainer, folder, started), writer,
               EpochLog(config, trainer, writer, steps, show_bar and folder.chief))
    first_epoch, first_step = run.checkpoints.epoch, run.checkpoints.step
    for epoch in range(first_epoch, config.epochs):
        entry = run_epoch(run, epoch, first_step if epoch == first_epoch else 0)
        end_epoch(run, entry)
    writer.flush()
    return finish(run) if folder.chief else RunResult(folder.run_dir, {})


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
                handle.write(f"{json.dumps(rec.path)},{rec.mos:.6g},{pred:.9g},{json.dumps(rec.group)}\n")
