"""Input pipeline throughput: the full training pipeline against its own lower bounds.

Variants, all on the same files, interleaved, steady state (the first batch of each
pass, which holds the tracing and iterator start, is set-up and not timed):
    decode        read + decode + padded batch                                  (a)
    decode_cut    (a) + the same K+P random multi-scale windows cut by one
                  crop_and_resize per batch; no saliency, no flips              (b)
    full          TrainPipeline(...).epoch_dataset(...) with the cpu-demo config
                  (decode, spectral-residual saliency, K windows ranked by saliency,
                  P positives, flips, one crop_and_resize per batch), cache="none"
                  so it decodes every pass like (a) and (b)
    full_cached   cache="memory" (the preset's), a later epoch: decoded images and
                  saliency maps come from the cache (epochs 2..N of a run)
    conventional  PyTorch-IQA-style loader: worker processes (one per core) each make
                  whole batches: PIL open, K+P random multi-scale crops resized to the
                  crop side, random flip, float32 ImageNet normalisation, pickled back
                  to the main process as DataLoader workers send them
Whole passes (everything timed): the cold first epoch of a fresh cached pipeline
(decodes, computes saliency, fills the cache), and the epoch start alone (build +
first batch), a fixed cost every epoch pays.
Targets: full >= 0.7 x decode_cut; full >= 2 x conventional.
Scaling: images/s of full and decode_cut as K, image size and num_parallel_calls vary.
"""
from __future__ import annotations

import concurrent.futures
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = "input_pipeline"


# ----------------------------------------------------------------------------- tf.data variants


def decode_dataset(paths, batch_size, config):
    import tensorflow as tf

    from keras_lmiqa import pipeline

    def load(path):
        return pipeline.decode_image(tf.io.read_file(path), config.max_pixels)

    ds = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=pipeline.AUTOTUNE)
    batches = ds.padded_batch(batch_size, drop_remainder=True).with_options(pipeline._options())
    return batches.prefetch(pipeline.AUTOTUNE)


def decode_cut_dataset(paths, batch_size, config, epoch_seed=0):
    """(b): decode, then the same number of multi-scale windows, cut per batch."""
    import tensorflow as tf

    from keras_lmiqa import crops as crop_ops
    from keras_lmiqa import pipeline

    count = config.crops_per_image

    def load(path, image_id):
        image = pipeline.decode_image(tf.io.read_file(path), config.max_pixels)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        windows = crop_ops.random_windows(height, width, config.crop_size, config.scales, count,
                                          tf.stack([epoch_seed, image_id]))
        return {"image": image, "windows": windows}

    def cut(batch):
        return crop_ops.cut_crops(batch["image"], batch["windows"], config.crop_size)

    ids = tf.range(len(paths), dtype=tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, ids)).map(load, num_parallel_calls=pipeline.AUTOTUNE)
    ds = ds.padded_batch(batch_size, drop_remainder=True).map(cut, num_parallel_calls=pipeline.AUTOTUNE)
    return ds.with_options(pipeline._options()).prefetch(pipeline.AUTOTUNE)


def train_pipeline(paths, config):
    from keras_lmiqa.pipeline import TrainPipeline

    return TrainPipeline(paths, [0.5] * len(paths), config)


# ----------------------------------------------------------------------------- conventional loader


def _conventional_batch(job):
    """One batch as a PyTorch IQA DataLoader worker makes it (runs in a worker process)."""
    import numpy as np
    from PIL import Image

    paths, crop_size, scales, count, seed = job
    rng = np.random.default_rng(seed)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    out = np.empty((len(paths), count, crop_size, crop_size, 3), np.float32)
    for i, path in enumerate(paths):
        with Image.open(path) as handle:
            image = handle.convert("RGB")
        width, height = image.size
        for n in range(count):
            side = min(crop_size / scales[n % len(scales)], min(width, height))
            x0 = rng.uniform(0, width - side)
            y0 = rng.uniform(0, height - side)
            crop = image.resize((crop_size, crop_size), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
            pixels = np.asarray(crop, np.float32)
            if rng.random() < 0.5:
                pixels = pixels[:, ::-1]
            out[i, n] = (pixels / 255.0 - mean) / std
    return out


class ConventionalLoader:
    """A process pool making whole batches, consumed in order (DataLoader, persistent workers)."""

    def __init__(self, paths, batch_size, config, workers):
        import multiprocessing

        self.jobs = [(paths[i:i + batch_size], config.crop_size, config.scales, config.crops_per_image, i)
                     for i in range(0, len(paths) - batch_size + 1, batch_size)]
        # spawn, not fork: forking a process whose TF thread pools are running can deadlock.
        self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def primed(self):
        """Untimed set-up: submit the epoch's batches and wait for the first one."""
        batches = self.pool.map(_conventional_batch, self.jobs)
        next(batches)
        return batches

    def close(self):
        self.pool.shutdown()


# ----------------------------------------------------------------------------- main


def main(argv=None):
    p = common.parser(__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=256, help="demo images per pass")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="processes of the conventional loader")
    p.add_argument("--ks", default="2,4,8,16", help="K values for the K scaling")
    p.add_argument("--sides", default="256,1024,2048", help="generated image sides for the size scaling")
    p.add_argument("--parallel", default="1,2,4,-1", help="num_parallel_calls values (-1 = AUTOTUNE)")
    p.add_argument("--no-scaling", action="store_true", help="skip the K / size / parallelism scaling")
    args = p.parse_args(argv)
    common.quiet_tensorflow()
    if args.quick:
        args.images, args.ks, args.sides, args.parallel = 64, "2,8", "256,1024", "1,-1"
    rounds = common.repeats(args, full=3)
    report = common.Report(BENCH, args)


    config = common.cpu_demo_config()
    B = args.batch_size
    paths = common.demo_paths(args.images)
    n_batches = len(paths) // B
    images = n_batches * B
    nocache = train_pipeline(paths, config.replace(cache="none"))
    cached = train_pipeline(paths, config)
    common.drain(cached.epoch_dataset(0, B, n_batches))  # fills the cache
    epochs = iter(range(1, 10**6))
    loader = ConventionalLoader(paths, B, config, args.workers)
    U, primed, rest = common.Untimed, common.primed, common.drain_rest
    try:
        # Steady state: the first batch (build, tracing, iterator start) is set-up, untimed.
        steady = {
            "decode": U(primed(lambda: decode_dataset(paths, B, config)), rest),
            "decode_cut": U(primed(lambda: decode_cut_dataset(paths, B, config)), rest),
            "full": U(primed(lambda: nocache.epoch_dataset(next(epochs), B, n_batches)), rest),
            "full_cached": U(primed(lambda: cached.epoch_dataset(next(epochs), B, n_batches)), rest),
            "conventional": U(loader.primed, rest),
        }
        times = common.interleave(steady, rounds)
        # Whole passes, everything timed: a fresh pipeline's first epoch (cold cache) and
        # the like-for-like passes; and the start of an epoch alone (build + first batch).
        whole = {
            "full_cold_pass": lambda: common.drain(train_pipeline(paths, config).epoch_dataset(0, B, n_batches)),
            "full_pass": lambda: common.drain(nocache.epoch_dataset(next(epochs), B, n_batches)),
            "full_cached_pass": lambda: common.drain(cached.epoch_dataset(next(epochs), B, n_batches)),
            "decode_cut_pass": lambda: common.drain(decode_cut_dataset(paths, B, config)),
            "full_cached_epoch_start": lambda: common.drain(cached.epoch_dataset(next(epochs), B, n_batches), 1),
            "full_epoch_start": lambda: common.drain(nocache.epoch_dataset(next(epochs), B, n_batches), 1),
        }
        whole_times = common.interleave(whole, 2)
    finally:
        loader.close()
    measured = images - B  # the first batch is set-up
    rate = {name: measured / common.median(t) for name, t in times.items()}
    what = {
        "decode": "(a) read + decode + padded batch, steady state",
        "decode_cut": ("(b) decode + the same K+P windows, one crop_and_resize per batch, no saliency/flip, "
                       "steady state"),
        "full": "full TrainPipeline epoch, cache=none (decodes every pass, like (a) and (b)), steady state",
        "full_cached": ("full TrainPipeline, cache=memory, a later epoch (decoded images + saliency cached), "
                        "steady state"),
        "conventional": f"PIL loader in {args.workers} worker processes: open, K+P crops, flip, float32 normalise",
    }
    extra = {"images": measured, "batch_size": B, "crops_per_image": config.crops_per_image,
             "crop_size": config.crop_size, "rounds": rounds}
    for name, value in rate.items():
        report.add(f"{name}_images_per_s", value, "images/s", what[name], spread=common.spread(times[name]), **extra)
    report.add("full_vs_decode_cut", rate["full"] / rate["decode_cut"], "x",
               "full pipeline (cache=none) over (b), steady state, both decoding every image",
               baseline="decode_cut_images_per_s", target=">= 0.7")
    report.add("full_cached_vs_decode_cut", rate["full_cached"] / rate["decode_cut"], "x",
               "full pipeline, cached steady state (epochs 2..N of training) over (b)",
               baseline="decode_cut_images_per_s", target=">= 0.7")
    report.add("full_vs_conventional", rate["full"] / rate["conventional"], "x",
               "full pipeline (cache=none) images/s over the conventional per-crop PIL loader, steady state",
               baseline="conventional_images_per_s", target=">= 2")
    report.add("full_cached_vs_conventional", rate["full_cached"] / rate["conventional"], "x",
               "cached steady-state full pipeline over the conventional loader",
               baseline="conventional_images_per_s", target=">= 2")
    pass_s = {name: common.median(t) for name, t in whole_times.items()}
    for name in ("full_cold_pass", "full_pass", "full_cached_pass", "decode_cut_pass"):
        report.add(f"{name}_images_per_s", images / pass_s[name], "images/s",
                   f"{name.replace('_pass', '')}: one whole epoch of {images} images, build and first batch included"
                   + (" (fresh pipeline: decodes, computes saliency, fills the cache)" if "cold" in name else ""),
                   images=images)
    report.add("full_cold_pass_vs_decode_cut_pass", pass_s["decode_cut_pass"] / pass_s["full_cold_pass"], "x",
               "cold first epoch (cache filling) over a whole (b) pass", baseline="decode_cut_pass_images_per_s")
    for name in ("full_cached_epoch_start", "full_epoch_start"):
        report.add(f"{name}_ms", 1e3 * pass_s[name], "ms",
                   "time from epoch_dataset() to the first batch: tracing the maps, iterator start"
                   + (", shuffle buffer fill from the cache" if "cached" in name else ""),
                   baseline="fixed cost per epoch")
    bytes_uint8 = config.crops_per_image * config.crop_size ** 2 * 3
    report.add("crop_bytes_per_image", bytes_uint8, "bytes",
               "host bytes of one image's crops as the pipeline hands them over (uint8)",
               baseline="float32 crops: 4x", float32_bytes=4 * bytes_uint8)

    if not args.no_scaling:
        scaling(args, report, config, paths, B, rounds)
    report.table()
    return report.figures


def scaling(args, report, config, paths, B, rounds):
    """Images/s of full (cache=none) and (b) as K, image size and num_parallel_calls vary."""
    from keras_lmiqa import pipeline

    n_batches = len(paths) // B
    U, primed, rest = common.Untimed, common.primed, common.drain_rest
    ks = [int(k) for k in args.ks.split(",")]
    epochs = iter(range(1, 10**6))
    variants = {}
    for k in ks:
        cfg = config.replace(num_crops=k, cache="none")
        full = train_pipeline(paths, cfg)
        variants[f"K={k} full"] = U(primed(lambda full=full: full.epoch_dataset(next(epochs), B, n_batches)), rest)
        variants[f"K={k} decode_cut"] = U(primed(lambda cfg=cfg: decode_cut_dataset(paths, B, cfg)), rest)
    _report_pairs(report, "k", variants, 2, (n_batches - 1) * B, "K random windows per image (+P)")

    variants = {}
    count = max(B * 3, len(paths) // 4 // B * B)
    for side in [int(s) for s in args.sides.split(",")]:
        files = common.generated_images(common.scratch_dir("jpg"), count, side)
        cfg = config.replace(cache="none")
        full = train_pipeline(files, cfg)
        variants[f"side={side} full"] = U(primed(lambda f=full: f.epoch_dataset(next(epochs), B, count // B)), rest)
        variants[f"side={side} decode_cut"] = U(primed(lambda f=files, cfg=cfg: decode_cut_dataset(f, B, cfg)), rest)
        variants[f"side={side} decode"] = U(primed(lambda f=files, cfg=cfg: decode_dataset(f, B, cfg)), rest)
    _report_pairs(report, "image_side", variants, 2, count - B, "generated JPEG side (px)")

    variants = {}
    full = train_pipeline(paths, config.replace(cache="none"))

    def with_parallelism(value, make):
        # epoch_dataset reads the module's AUTOTUNE when it builds the maps.
        saved = pipeline.AUTOTUNE
        pipeline.AUTOTUNE = value
        try:
            return primed(make)()
        finally:
            pipeline.AUTOTUNE = saved

    for value in [int(v) for v in args.parallel.split(",")]:
        label = "AUTOTUNE" if value == -1 else str(value)
        variants[f"parallel={label} full"] = U(lambda v=value: with_parallelism(
            v, lambda: full.epoch_dataset(next(epochs), B, n_batches)), rest)
        variants[f"parallel={label} decode_cut"] = U(lambda v=value: with_parallelism(
            v, lambda: decode_cut_dataset(paths, B, config)), rest)
    _report_pairs(report, "num_parallel_calls", variants, 2, (n_batches - 1) * B,
                  "num_parallel_calls of every map (-1 = AUTOTUNE: the core count with the autotuner off)")


def _report_pairs(report, axis, variants, rounds, images, what):
    times = common.interleave(variants, rounds)
    for name, t in times.items():
        setting, kind = name.split(" ")
        report.add(f"scaling_{axis}_{setting.split('=')[1]}_{kind}_images_per_s", images / common.median(t), "images/s",
                   f"{kind} images/s at {setting}, steady state ({what})", axis=axis, setting=setting.split("=")[1],
                   kind=kind)
    settings = sorted({n.split(" ")[0] for n in variants}, key=lambda s: variants and list(variants).index(s + " full"))
    for setting in settings:
        ratio = common.median(times[setting + " decode_cut"]) / common.median(times[setting + " full"])
        report.add(f"scaling_{axis}_{setting.split('=')[1]}_full_vs_decode_cut", ratio, "x",
                   f"full over (b) at {setting}", baseline="decode_cut", axis=axis, setting=setting.split("=")[1])


if __name__ == "__main__":
    main()
