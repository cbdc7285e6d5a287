"""tf.data input pipelines: decode -> saliency -> crop windows -> one batched crop cut.

Everything runs as graph-mode `map`s with `num_parallel_calls=AUTOTUNE`; crops stay
uint8 until the model normalises them (a quarter of float32's bytes on the host).

Training elements (`TrainPipeline.epoch_dataset`) are dicts with
    crops     [B, K+P, S, S, 3] uint8   anchor first, then K-1 non-salient, then P positives
    saliency  [B, K+P] float32          mean saliency inside each window
    roles     [B, K+P] int32            crops.ROLE_ANCHOR / ROLE_NON_SALIENT / ROLE_POSITIVE
    quality   [B] float32               normalised MOS, higher = better
    image_id  [B] int32                 index of the image in the split
Inference elements (`inference_dataset`) hold `crops` [B, G, S, S, 3] and `saliency`
[B, G] for the deterministic grid of G windows.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from keras_lmiqa import crops as crop_ops
from keras_lmiqa import image_io
from keras_lmiqa import saliency as saliency_ops
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.errors import ImageError

AUTOTUNE = tf.data.AUTOTUNE
logger = logging.getLogger(__name__)


def decode_image(contents, max_pixels: int) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF bytes to [H, W, 3] uint8: `keras_lmiqa.image_io.decode_image`
    (grey/RGBA/16-bit/CMYK to 8-bit RGB, GIF first frame, EXIF orientation applied,
    pixel limit checked on the header before decoding)."""
    return image_io.decode_image(contents, max_pixels)


def _options() -> tf.data.Options:
    """Deterministic order; tf.data's autotuner off.

    Every epoch and every evaluation makes a new iterator. With the autotuner on,
    tearing one down waited for the autotuning thread: on the demo, epochs of 20 s of
    steps ended at multiples of ~20.6 s (41.2 s, 82.4 s). With it off, AUTOTUNE
    parallelism falls back to the core count and the stalls are gone.
    """
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return options


def _window_saliency(saliency_map, windows, height, width):
    return saliency_ops.window_saliency(saliency_map, crop_ops.normalised(windows, height, width))


class TrainPipeline:
    """Builds the training dataset for each epoch from (path, quality) records.

    Decoded images (and their low-resolution saliency maps) are cached once when
    `config.cache` is "memory" or a file prefix; window sampling, shuffling and flips
    are redrawn every epoch from stateless seeds, so a run is deterministic under
    `config.seed` and an epoch can be resumed mid-way (`skip_batches`).
    """

    def __init__(self, paths, qualities, config: TrainConfig):
        if len(paths) != len(qualities):
            raise ValueError(f"paths and qualities differ in length. Received: {len(paths)} and {len(qualities)}")
        self.config = config
        self.paths = [os.fspath(p) for p in paths]
        self.qualities = [float(q) for q in qualities]
        self.size = len(self.paths)
        self._cache_by_pipeline: dict[int, tf.data.Dataset] = {}
        self._traced_functions: dict[tuple, tf.types.experimental.GenericFunction] = {}

    def steps_per_epoch(self, global_batch_size: int, num_workers: int = 1) -> int:
        """Global steps per epoch: every worker reads its shard of the images."""
        steps = (self.size // num_workers) // (global_batch_size // num_workers)
        if self.config.steps_per_epoch:
            steps = min(steps, self.config.steps_per_epoch)
        return steps

    def _prepare(self, path, quality, image_id):
        image = decode_image(tf.io.read_file(path), self.config.max_pixels)
        small = saliency_ops.spectral_residual_small(image, self.config.saliency_long_side)
        return {"image": image, "saliency_map": small, "quality": quality, "image_id": image_id}

    def _sample(self, element, epoch_seed):
        c = self.config
        image = element["image"]
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        seed = tf.stack([tf.cast(epoch_seed, tf.int32), element["image_id"]])
        k, p = c.num_crops, c.num_positives
        windows = crop_ops.random_windows(height, width, c.crop_size, c.scales, k, seed)
        # The positives of every window that could become the anchor, [K, P, 4], so one
        # saliency look-up scores the K windows and the views (each look-up is ~50 small
        # ops); the anchor's P views are then picked out. Same windows and scores as
        # scoring the anchor's views after choosing it.
        candidates = crop_ops.positive_windows(
            windows, tf.range(k) % len(c.scales), height, width, c.crop_size, c.scales, p)
        boxes = tf.concat([windows, tf.reshape(candidates, [k * p, 4])], 0)
        all_scores = _window_saliency(element["saliency_map"], boxes, height, width)
        scores = all_scores[:k]
        if c.use_saliency:
            anchor = tf.argmax(scores, output_type=tf.int32)
        else:  # ablation: a random window plays the anchor
            anchor = tf.random.stateless_uniform([], seed + 1, 0, k, dtype=tf.int32)
        order = tf.concat([[anchor], tf.boolean_mask(tf.range(k), tf.range(k) != anchor)], 0)
        windows, scores = tf.gather(windows, order), tf.gather(scores, order)
        windows = tf.concat([windows, candidates[anchor]], axis=0)
        scores = tf.concat([scores, tf.reshape(all_scores[k:], [k, p])[anchor]], 0)
        count = c.crops_per_image
        if c.flip:
            flip = tf.random.stateless_uniform([count], seed + 2) < 0.5
        else:
            flip = tf.zeros([count], tf.bool)
        roles = tf.concat(
            [[crop_ops.ROLE_ANCHOR], tf.fill([c.num_crops - 1], crop_ops.ROLE_NON_SALIENT),
             tf.fill([c.num_positives], crop_ops.ROLE_POSITIVE)], 0)
        return {
            "image": image, "windows": windows, "flip": flip, "saliency": scores, "roles": roles,
            "quality": element["quality"], "image_id": element["image_id"],
        }

    def _cut(self, batch):
        crops = crop_ops.cut_crops(batch["image"], batch["windows"], self.config.crop_size, batch["flip"])
        return {"crops": crops, **{k: v for k, v in batch.items() if k not in ("image", "windows", "flip")}}

    def epoch_dataset(
        self, epoch: int, batch_size: int, num_batches: int, input_context=None, skip_batches: int = 0
    ) -> tf.data.Dataset:
        """Batches `skip_batches` to `num_batches` of one epoch, `batch_size` images each.

        A fixed batch count keeps every worker of a multi-worker run in step.
        """
        c = self.config
        ids = tf.range(self.size, dtype=tf.int32)
        ds = tf.data.Dataset.from_tensor_slices((self.paths, tf.constant(self.qualities, tf.float32), ids))
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        epoch_seed = c.seed * 100_003 + epoch
        if c.cache == "none":
            # Shuffle file names (cheap) before decoding; decode every epoch.
            ds = ds.shuffle(self.size, seed=epoch_seed, reshuffle_each_iteration=False)
            ds = ds.map(self._traced("prepare", self._prepare, ds.element_spec), num_parallel_calls=AUTOTUNE)
        else:
            ds = self._cached(ds, input_context).shuffle(self.size, seed=epoch_seed, reshuffle_each_iteration=False)
        ds = ds.skip(skip_batches * batch_size)
        sample = self._traced("sample", self._sample, ds.element_spec, tf.TensorSpec([], tf.int32))
        seed = tf.constant(epoch_seed, tf.int32)

        def sample_epoch(element):
            return sample(element, seed)

        ds = ds.map(sample_epoch, num_parallel_calls=AUTOTUNE)
        ds = ds.padded_batch(batch_size, drop_remainder=True)
        cut = self._traced("cut", self._cut, ds.element_spec)
        ds = ds.take(max(num_batches - skip_batches, 0)).map(cut, num_parallel_calls=AUTOTUNE)
        options = _options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options).prefetch(AUTOTUNE)

    def _traced(self, name, function, element_spec, *more_specs):
        """`function` traced once per element spec and reused by every epoch's dataset.

        Each epoch builds a new dataset; without this every map was retraced (autograph
        and ~300 ops per epoch, most of a second on a CPU) before the first batch.
        """
        key = (name, repr(element_spec), repr(more_specs))
        if key not in self._traced_functions:
            # A tuple element is passed as positional arguments, a dict as one argument.
            specs = list(element_spec) if isinstance(element_spec, tuple) else [element_spec]
            self._traced_functions[key] = tf.function(function, input_signature=[*specs, *more_specs])
        return self._traced_functions[key]

    def _cached(self, ds, input_context):
        # The cache is owned by the dataset object: build it once, reuse every epoch.
        key = 0 if input_context is None else input_context.input_pipeline_id
        if key not in self._cache_by_pipeline:
            filename = "" if self.config.cache == "memory" else f"{self.config.cache}-{key}"
            decoded = ds.map(self._prepare, num_parallel_calls=AUTOTUNE)
            self._cache_by_pipeline[key] = decoded.cache(filename)
        return self._cache_by_pipeline[key]


def inference_elements(image, config: TrainConfig):
    """Grid windows and their saliency for one decoded image (shared with the export)."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    windows = crop_ops.grid_windows(height, width, config.crop_size, config.scales, config.grid_size)
    small = saliency_ops.spectral_residual_small(image, config.saliency_long_side)
    return windows, _window_saliency(small, windows, height, width)


def inference_dataset(paths, config: TrainConfig, batch_size: int = 16) -> tf.data.Dataset:
    """Deterministic grid crops of each image, in order, for evaluation and scoring."""

    def prepare(path):
        image = decode_image(tf.io.read_file(path), config.max_pixels)
        windows, saliency = inference_elements(image, config)
        return {"image": image, "windows": windows, "saliency": saliency}

    def cut(batch):
        return {"crops": crop_ops.cut_crops(batch["image"], batch["windows"], config.crop_size),
                "saliency": batch["saliency"]}

    ds = tf.data.Dataset.from_tensor_slices([os.fspath(p) for p in paths])
    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE).padded_batch(batch_size)
    return ds.map(cut, num_parallel_calls=AUTOTUNE).with_options(_options()).prefetch(AUTOTUNE)


_CHECKERS: dict[int, object] = {}


def _checker(max_pixels: int):
    """A traced `path -> decoded shape` function (one per pixel limit), as the pipelines decode."""
    if max_pixels not in _CHECKERS:
        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def check(path):
            return tf.shape(decode_image(tf.io.read_file(path), max_pixels))

        _CHECKERS[max_pixels] = check
    return _CHECKERS[max_pixels]


def image_problem(path, max_pixels: int) -> str | None:
    """Why `path` cannot be used (read or decode error, pixel limit), or None if it decodes."""
    try:
        _checker(max_pixels)(tf.constant(os.fspath(path)))
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.PermissionDeniedError,
            tf.errors.FailedPreconditionError, tf.errors.ResourceExhaustedError, tf.errors.UnknownError) as error:
        return image_io.error_reason(error.message)
    return None


def find_all_undecodable(paths, max_pixels: int, workers: int | None = None) -> list[tuple[str, str]]:
    """Every image of `paths` that cannot be used, as (path, reason), in the order given.

    Decodes each file with the pipelines' own decoder; TensorFlow ops release the GIL,
    so a few threads decode in parallel.
    """
    from concurrent.futures import ThreadPoolExecutor

    paths = [os.fspath(p) for p in paths]
    workers = workers or min(8, os.cpu_count() or 1)
    _checker(max_pixels)  # made (and later traced) once, not raced by the threads
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmiqa-check") as pool:
        problems = list(pool.map(lambda p: image_problem(p, max_pixels), paths))
    return [(path, reason) for path, reason in zip(paths, problems) if reason is not None]


def find_undecodable(paths, max_pixels: int):
    """The first image that fails to decode, with the reason, or None.

    Called only after the pipeline raised: tf.data's decode errors do not say which
    file failed, so this names it.
    """
    for path in paths:
        reason = image_problem(path, max_pixels)
        if reason is not None:
            return os.fspath(path), reason
    return None


def raise_for_bad_image(paths, max_pixels: int, error: Exception):
    """Re-raise a pipeline decode failure as an ImageError naming the file."""
    found = find_undecodable(paths, max_pixels)
    if found is None:
        raise error
    path, reason = found
    raise ImageError(f"cannot use image {path}: {reason}") from None
