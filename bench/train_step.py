"""Training step throughput: the full LML-IQA step against a bare-backbone regression step.

    full   LMIQATrainer(config, steps).make_train_function(strategy) under the default
           strategy: student forward + backward, EMA-teacher forward, quality,
           contrastive and mutual losses, AdamW, EMA update (as keras_lmiqa/training/step.py
           drives it, including reading the six loss values back each step)
    bare   the same backbone builder (keras_lmiqa/models/backbones.py) + one Dense
           head, MSE of every crop's score to the image's quality, the same optimizer
           (AdamW, schedule, clipping), on the same crops and batch
Both run on one fixed batch from the cpu-demo pipeline (pure compute), with and
without XLA (`jit_compile`). Target: full <= 1.5 x bare time per step.

Input wait: the full step fed by the real prefetched pipeline (one epoch of the
cached steady state, and the cold first epoch for information); the share of wall
time the loop spends blocked on the next batch. Target < 5 % (steady state).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "train_step"


def bare_step(config, steps_per_epoch, jit_compile):
    """A plain regression step on the same crops: backbone + Dense(1), MSE, same optimizer."""
    import keras
    import tensorflow as tf

    from keras_lmiqa.models import build_backbone
    from keras_lmiqa.training.step import build_optimizer, build_schedule, clip_per_term

    size = config.crop_size
    crops = keras.Input((size, size, 3), dtype="uint8")
    pixels = keras.layers.Activation("linear", dtype="float32")(crops)
    score = keras.layers.Dense(1)(build_backbone(config.backbone, size, "none")(pixels))
    model = keras.Model(crops, score)
    optimizer = build_optimizer(config, build_schedule(config, steps_per_epoch))
    optimizer.build(model.trainable_variables)

    def step(batch):
        crops = batch["crops"]
        flat = tf.reshape(crops, [-1, size, size, 3])
        target = tf.repeat(batch["quality"], tf.shape(crops)[1])
        with tf.GradientTape() as tape:
            predicted = tf.squeeze(model(flat, training=True), -1)
            loss = tf.reduce_mean(tf.square(predicted - target))
        gradients = clip_per_term([tape.gradient(loss, model.trainable_variables)], config.clip_norm)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return {"loss": loss}

    return tf.function(step, jit_compile=jit_compile, reduce_retracing=True)


def full_step(config, steps_per_epoch, strategy):
    from keras_lmiqa.training.step import LMIQATrainer

    with strategy.scope():
        trainer = LMIQATrainer(config, steps_per_epoch)
    return trainer, trainer.make_train_function(strategy)


def run_steps(fn, batch, count):
    for _ in range(count):
        terms = fn(batch)
        # The training loop reads every loss back each step (a host sync); so do we.
        [float(v) for v in terms.values()]


def input_wait(fn, strategy, pipeline, batch_size, steps, epoch):
    """(wait seconds, total seconds) of one epoch of the real loop fed by the pipeline."""
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: pipeline.epoch_dataset(epoch, ctx.get_per_replica_batch_size(batch_size), steps, ctx))
    iterator = iter(dist)
    wait = 0.0
    start = time.perf_counter()
    while True:
        before = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            wait += time.perf_counter() - before
            break
        wait += time.perf_counter() - before
        terms = fn(batch)
        [float(v) for v in terms.values()]
    return wait, time.perf_counter() - start


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=5, help="steps per timed call")
    p.add_argument("--wait-steps", type=int, default=24, help="steps of the input-wait epoch")
    p.add_argument("--backbone", default=None, help="backbone (default: the cpu-demo preset's)")
    p.add_argument("--crop-size", type=int, default=None)
    p.add_argument("--no-xla", action="store_true", help="skip the jit_compile variants")
    args = p.parse_args(argv)
    common.quiet_tensorflow()
    if args.quick:
        args.steps, args.wait_steps = 2, 6
    rounds = common.repeats(args, full=3)
    report = common.Report(BENCH, args)

    import tensorflow as tf

    from keras_lmiqa.pipeline import TrainPipeline

    changes = {"batch_size": args.batch_size}
    if args.backbone:
        changes["backbone"] = args.backbone
    if args.crop_size:
        changes["crop_size"] = args.crop_size
    config = common.cpu_demo_config(**changes)
    strategy = tf.distribute.get_strategy()
    B, steps_per_epoch = args.batch_size, 100
    paths = common.demo_paths(B * args.wait_steps)
    pipeline = TrainPipeline(paths, [0.5 + 0.4 * ((i % 7) / 7 - 0.5) for i in range(len(paths))], config)
    batch = next(iter(pipeline.epoch_dataset(0, B, 1)))
    crops = B * config.crops_per_image

    variants = {}
    _, full = full_step(config, steps_per_epoch, strategy)
    variants["full"] = lambda: run_steps(full, batch, args.steps)
    bare = bare_step(config, steps_per_epoch, False)
    variants["bare"] = lambda: run_steps(bare, batch, args.steps)
    xla_error = None
    if not args.no_xla:
        try:
            _, full_xla = full_step(config.replace(jit_compile=True), steps_per_epoch, strategy)
            bare_xla = bare_step(config, steps_per_epoch, True)
            run_steps(full_xla, batch, 1)
            run_steps(bare_xla, batch, 1)
            variants["full_xla"] = lambda: run_steps(full_xla, batch, args.steps)
            variants["bare_xla"] = lambda: run_steps(bare_xla, batch, args.steps)
        except Exception as error:  # XLA may not compile some op on some platform: report it
            xla_error = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    times = common.interleave(variants, rounds)
    step_ms = {name: common.median(t) / args.steps * 1e3 for name, t in times.items()}
    extra = {"batch_size": B, "crops_per_step": crops, "backbone": config.backbone, "crop_size": config.crop_size,
             "rounds": rounds}
    for name, ms in step_ms.items():
        report.add(f"{name}_crops_per_s", crops / ms * 1e3, "crops/s", f"{name} step on a fixed batch",
                   step_ms=round(ms, 2), spread=common.spread(times[name]), **extra)
    report.add("full_over_bare_time", step_ms["full"] / step_ms["bare"], "x",
               "full LML-IQA step time over the bare-backbone regression step (no XLA)",
               baseline="bare_crops_per_s", target="<= 1.5")
    if "full_xla" in step_ms:
        report.add("full_over_bare_time_xla", step_ms["full_xla"] / step_ms["bare_xla"], "x",
                   "full over bare step time, both jit_compile=True", baseline="bare_xla_crops_per_s", target="<= 1.5")
        report.add("full_xla_speedup", step_ms["full"] / step_ms["full_xla"], "x",
                   "full step time without XLA over with XLA (>1: XLA helps)", baseline="full_crops_per_s")
        report.add("bare_xla_speedup", step_ms["bare"] / step_ms["bare_xla"], "x",
                   "bare step time without XLA over with XLA (>1: XLA helps)", baseline="bare_crops_per_s")
    elif xla_error:
        report.add("full_xla_speedup", float("nan"), "x", "XLA variant failed to run", error=xla_error)

    # Input wait in the real loop: epoch 0 fills the cache (cold), later epochs are steady.
    cold_wait, cold_total = input_wait(full, strategy, pipeline, B, args.wait_steps, epoch=0)
    shares = []
    for epoch in range(1, 1 + max(1, rounds // 2)):
        wait, total = input_wait(full, strategy, pipeline, B, args.wait_steps, epoch=epoch)
        shares.append(wait / total)
    report.add("input_wait_share", 100 * common.median(shares), "%",
               "share of loop wall time blocked on the next batch, prefetched pipeline, cached steady state",
               baseline="loop wall time", target="< 5", steps=args.wait_steps, epochs=len(shares))
    report.add("input_wait_share_cold", 100 * cold_wait / cold_total, "%",
               "the same on the first (cold) epoch, which decodes and fills the cache", baseline="loop wall time")
    report.table()
    return report.figures


if __name__ == "__main__":
    main()
