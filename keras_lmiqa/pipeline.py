"""tf.data input pipelines: decode -> saliency -> crop windows -> one batched crop cut.

Everything runs as graph-mode `map`s with `num_parallel_calls=AUTOTUNE`; crops stay
uint8 until the model normalises them (a quarter of float32's bytes on the host).

Training elements (`TrainPipeline.epoch_dataset`) are dicts with
    crops     [B, K+P, S, S, 3] uint8   anchor first, then K-1 non-salient, then P positives
    saliency  [B, K+P] float32          mean saliency inside each window
    roles     [B, K+P] int32            per image: crops.ROLE_ANCHOR, then ROLE_NON_SALIENT (an intra
                                        negative) or ROLE_NEUTRAL (a window overlapping the anchor or a
                                        positive: neither positive nor negative), then ROLE_POSITIVE
    quality   [B] float32               normalised MOS, higher = better
    image_id  [B] int32                 index of the image in the split
With `synthetic_groups` on, a batch appends the members of its synthetic groups (each a
photo and its distorted copies, adjacent) to the B photos, and every element also holds
    level     int32                     0 for a photo as it is, 1..5 for a distorted copy
    family    int32                     the copy's `synthetic.FAMILIES` index, -1 for a photo
(a copy's `quality` is its photo's MOS, which only level-0 elements are trained on).
Inference elements (`inference_dataset`) hold `crops` [B, G, S, S, 3], `saliency` [B, G]
and `mask` [B, G] for the deterministic windows of each image (G: the batch's longest
grid; shorter grids are padded with empty windows, mask False).
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from keras_lmiqa import crops as crop_ops
from keras_lmiqa import image_io, synthetic, working_size
from keras_lmiqa import saliency as saliency_ops
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.errors import ConfigError, ImageError
from keras_lmiqa.inference_spec import InferenceSpec, as_inference_spec

AUTOTUNE = tf.data.AUTOTUNE
SYNTHETIC_SEED_OFFSET = 7_919  # the synthetic groups' shuffle and draws differ from the photos'
logger = logging.getLogger(__name__)


def decode_image(contents, max_pixels: int) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF bytes to [H, W, 3] uint8: `keras_lmiqa.image_io.decode_image`
    (grey/RGBA/16-bit/CMYK to 8-bit RGB, GIF first frame, EXIF orientation applied,
    pixel limit checked on the header before decoding)."""
    return image_io.decode_image(contents, max_pixels)


def _append_groups(photos, groups):
    """One batch: the photos (level 0, family -1), then the synthetic groups' members."""
    size = tf.shape(photos["quality"])[0]
    photos = {**photos, "level": tf.zeros([size], tf.int32), "family": tf.fill([size], -1)}
    return {key: tf.concat([photos[key], groups[key]], 0) for key in photos}


def _flatten_groups(batch):
    """[G, 1 + C, ...] group fields to [G * (1 + C), ...], members of a group adjacent."""
    return {key: tf.reshape(value, tf.concat([[-1], tf.shape(value)[2:]], 0)) for key, value in batch.items()}


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


def window_iou(a, b) -> tf.Tensor:
    """Pairwise intersection over union of windows `a` [N, 4] and `b` [M, 4]: [N, M].

    Windows are `[y0, x0, y1, x1]` (any consistent units); a pair whose union is empty
    (two degenerate windows) has IoU 0.
    """
    a = tf.convert_to_tensor(a, tf.float32)
    b = tf.convert_to_tensor(b, tf.float32)
    ay0, ax0, ay1, ax1 = (a[:, i, tf.newaxis] for i in range(4))  # [N, 1]
    by0, bx0, by1, bx1 = (b[tf.newaxis, :, i] for i in range(4))  # [1, M]
    inter_h = tf.maximum(tf.minimum(ay1, by1) - tf.maximum(ay0, by0), 0.0)
    inter_w = tf.maximum(tf.minimum(ax1, bx1) - tf.maximum(ax0, bx0), 0.0)
    inter = inter_h * inter_w
    union = (ay1 - ay0) * (ax1 - ax0) + (by1 - by0) * (bx1 - bx0) - inter
    return tf.math.divide_no_nan(inter, union)


# `cache` values. "memory" (old config files) means "decoded".
CACHE_NONE, CACHE_ENCODED, CACHE_DECODED = "none", "encoded", "decoded"
CACHE_ALIASES = {"memory": CACHE_DECODED}


def cache_mode(cache: str) -> str:
    """"none", "encoded", "decoded", or "file" for any other value (a tf.data file cache prefix)."""
    cache = CACHE_ALIASES.get(cache, cache)
    return cache if cache in (CACHE_NONE, CACHE_ENCODED, CACHE_DECODED) else "file"


def _human_bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.3g} {unit}" if count < 100 * size else f"{count / size:.0f} {unit}"
    return f"{int(count)} bytes"


def encoded_bytes(paths) -> int:
    """Total size of the files (what the "encoded" cache holds); unreadable files count 0."""
    total = 0
    for path in paths:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass  # the pipeline reports it when it reads the file
    return total


def decoded_bytes(paths, saliency_long_side: int) -> int:
    """Estimated RAM of the "decoded" cache: H*W*3 (uint8 pixels) from each image's header,
    plus its float32 saliency map. Files whose header cannot be read count 0 (the pipeline
    reports them when it decodes)."""

    def size(path):
        contents = tf.io.read_file(path)
        dims = image_io.header_size(contents, image_io.image_format(contents))
        small_h, small_w = saliency_ops._small_size(dims[0], dims[1], saliency_long_side)  # the map's size
        return dims[0] * dims[1] * 3 + tf.cast(small_h * small_w * 4, tf.int64)

    ds = tf.data.Dataset.from_tensor_slices(tf.constant([os.fspath(p) for p in paths], tf.string))
    ds = ds.map(size, num_parallel_calls=AUTOTUNE).ignore_errors()
    return int(ds.reduce(tf.constant(0, tf.int64), lambda total, value: total + value))


class TrainPipeline:
    """Builds the training dataset for each epoch from (path, quality) records.

    `config.cache` says what is kept between epochs:
    - "encoded" (default): the file bytes in RAM (about the dataset's size on disk);
      images are decoded and their saliency maps computed every pass;
    - "decoded" (alias "memory"): decoded pixels and saliency maps in RAM, refused
      (ConfigError) when the estimate from the image headers exceeds
      `config.cache_budget_gb`;
    - "none": files are read and decoded every pass;
    - any other value: a file prefix for tf.data's file cache of decoded images.
    All give the same batches. Window sampling, shuffling and flips are redrawn every
    epoch from stateless seeds, so a run is deterministic under `config.seed` and an
    epoch can be resumed mid-way (`skip_batches`).
    """

    def __init__(self, paths, qualities, config: TrainConfig):
        if len(paths) != len(qualities):
            raise ValueError(f"paths and qualities differ in length. Received: {len(paths)} and {len(qualities)}")
        self.config = config
        self.paths = [os.fspath(p) for p in paths]
        self.qualities = [float(q) for q in qualities]
        self.size = len(self.paths)
        self._cache_by_pipeline: dict[int, tf.data.Dataset] = {}
        self._cache_checked: dict[int, str] = {}
        self._traced_functions: dict[tuple, tf.types.experimental.GenericFunction] = {}

    def steps_per_epoch(self, global_batch_size: int, num_workers: int = 1) -> int:
        """Global steps per epoch: every worker reads its shard of the images."""
        steps = (self.size // num_workers) // (global_batch_size // num_workers)
        if self.config.steps_per_epoch:
            steps = min(steps, self.config.steps_per_epoch)
        return steps

    def _read(self, path, quality, image_id):
        return {"contents": tf.io.read_file(path), "quality": quality, "image_id": image_id}

    def _decode(self, element):
        # Above the working size a photo is trained on at the scale it is scored at.
        image, _ = working_size.decode_working(element["contents"], self.config.max_pixels,
                                               self.config.working_long_side)
        small = saliency_ops.spectral_residual_small(image, self.config.saliency_long_side)
        return {"image": image, "saliency_map": small, "quality": element["quality"], "image_id": element["image_id"]}

    def _prepare(self, path, quality, image_id):
        return self._decode(self._read(path, quality, image_id))

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
        rest = tf.range(k - 1)
        order = tf.concat([[anchor], rest + tf.cast(rest >= anchor, tf.int32)], 0)  # anchor, then the others
        windows, scores = tf.gather(windows, order), tf.gather(scores, order)
        windows = tf.concat([windows, candidates[anchor]], axis=0)
        scores = tf.concat([scores, tf.reshape(all_scores[k:], [k, p])[anchor]], 0)
        # A non-salient window is an intra negative only if it overlaps neither the anchor
        # nor any of its views by the threshold IoU; otherwise it is neutral (a near-copy of
        # a positive must not be pushed away from it).
        references = tf.concat([windows[:1], windows[k:]], 0)  # the anchor and its P views
        overlap = tf.reduce_max(window_iou(windows[1:k], references), axis=1)  # [K-1]
        intra = overlap < c.intra_iou_threshold
        non_salient = tf.where(intra, crop_ops.ROLE_NON_SALIENT, crop_ops.ROLE_NEUTRAL)
        count = c.crops_per_image
        if c.flip:
            flip = tf.random.stateless_uniform([count], seed + 2) < 0.5
        else:
            flip = tf.zeros([count], tf.bool)
        roles = tf.concat([[crop_ops.ROLE_ANCHOR], non_salient, tf.fill([p], crop_ops.ROLE_POSITIVE)], 0)
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

        A fixed batch count keeps every worker of a multi-worker run in step. With
        `synthetic_groups` on, each batch also holds this pipeline's share of the
        synthetic groups (`_synthetic_batches`), appended after the photos.
        """
        c = self.config
        ds = self._source(input_context)
        epoch_seed = c.seed * 100_003 + epoch
        mode = cache_mode(c.cache)
        self.check_cache(input_context)  # logs what is cached; refuses "decoded" over its budget
        # The same shuffle (seed, buffer, length) in every mode: the same order of images.
        # Skipped images are dropped before they are decoded.
        if mode == CACHE_NONE:  # shuffle file names (cheap), then read and decode every epoch
            ds = ds.shuffle(self.size, seed=epoch_seed, reshuffle_each_iteration=False)
            ds = ds.skip(skip_batches * batch_size)
            ds = ds.map(self._traced("prepare", self._prepare, ds.element_spec), num_parallel_calls=AUTOTUNE)
        else:
            ds = self._cached(ds, input_context, mode).shuffle(self.size, seed=epoch_seed,
                                                                 reshuffle_each_iteration=False)
            ds = ds.skip(skip_batches * batch_size)
            if mode == CACHE_ENCODED:  # decode the cached bytes and compute saliency every epoch
                ds = ds.map(self._traced("decode", self._decode, ds.element_spec), num_parallel_calls=AUTOTUNE)
        ds = self._sampled(ds, epoch_seed)
        ds = ds.padded_batch(batch_size, drop_remainder=True)
        cut = self._traced("cut", self._cut, ds.element_spec)
        ds = ds.take(max(num_batches - skip_batches, 0)).map(cut, num_parallel_calls=AUTOTUNE)
        if c.synthetic_groups:
            groups = max(1, c.synthetic_groups * batch_size // c.batch_size)  # this pipeline's share
            synthetic = self._synthetic_batches(epoch_seed, groups, num_batches, input_context, skip_batches)
            ds = tf.data.Dataset.zip(ds, synthetic).map(_append_groups, num_parallel_calls=AUTOTUNE)
        options = _options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(options).prefetch(AUTOTUNE)

    def _source(self, input_context):
        ids = tf.range(self.size, dtype=tf.int32)
        ds = tf.data.Dataset.from_tensor_slices((self.paths, tf.constant(self.qualities, tf.float32), ids))
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return ds

    def _sampled(self, ds, epoch_seed):
        sample = self._traced("sample", self._sample, ds.element_spec, tf.TensorSpec([], tf.int32))
        seed = tf.constant(epoch_seed, tf.int32)

        def sample_epoch(element):
            return sample(element, seed)

        return ds.map(sample_epoch, num_parallel_calls=AUTOTUNE)

    def _synthetic_batches(self, epoch_seed, groups, num_batches, input_context, skip_batches):
        """`groups` synthetic groups a batch: photos in their own shuffle, read from the
        files (no second cache), each with its copies (`_make_group`), flattened image-major."""
        group_seed = epoch_seed + SYNTHETIC_SEED_OFFSET
        ds = self._source(input_context).shuffle(self.size, seed=group_seed, reshuffle_each_iteration=False)
        ds = ds.skip(skip_batches * groups)
        ds = ds.map(self._traced("prepare", self._prepare, ds.element_spec), num_parallel_calls=AUTOTUNE)
        ds = self._sampled(ds, group_seed)
        make = self._traced("group", self._make_group, ds.element_spec, tf.TensorSpec([], tf.int32))
        seed = tf.constant(group_seed, tf.int32)
        ds = ds.map(lambda element: make(element, seed), num_parallel_calls=AUTOTUNE)
        ds = ds.padded_batch(groups, drop_remainder=True).map(_flatten_groups, num_parallel_calls=AUTOTUNE)
        cut = self._traced("cut", self._cut, ds.element_spec)
        return ds.take(max(num_batches - skip_batches, 0)).map(cut, num_parallel_calls=AUTOTUNE)

    def _make_group(self, element, group_seed):
        """The photo (level 0) and `synthetic_copies` distorted copies of one family at
        distinct ascending levels, all cut at the photo's windows: every field gains a
        leading [1 + C] axis; `level` and `family` say what each member is."""
        c = self.config
        seed = tf.stack([tf.cast(group_seed, tf.int32), element["image_id"]])
        family, levels = synthetic.sample_group(synthetic.family_indices(c.synthetic_families),
                                                c.synthetic_copies, seed)
        copies = [synthetic.distort(element["image"], family, levels[i], seed + 2 + i)
                  for i in range(c.synthetic_copies)]
        members = 1 + c.synthetic_copies
        group = {key: tf.stack([value] * members) for key, value in element.items() if key != "image"}
        group["image"] = tf.stack([element["image"], *copies])
        group["level"] = tf.concat([[0], levels], 0)
        group["family"] = tf.fill([members], family)
        return group

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

    def _cached(self, ds, input_context, mode):
        # The cache is owned by the dataset object: build it once, reuse every epoch.
        key = 0 if input_context is None else input_context.input_pipeline_id
        if key not in self._cache_by_pipeline:
            if mode == CACHE_ENCODED:
                self._cache_by_pipeline[key] = ds.map(self._read, num_parallel_calls=AUTOTUNE).cache()
            else:
                filename = "" if mode == CACHE_DECODED else f"{self.config.cache}-{key}"
                decoded = ds.map(self._prepare, num_parallel_calls=AUTOTUNE)
                self._cache_by_pipeline[key] = decoded.cache(filename)
        return self._cache_by_pipeline[key]

    def _shard_paths(self, input_context=None) -> list[str]:
        """The paths this input pipeline reads (`Dataset.shard` keeps every n-th from its id)."""
        if input_context is None or input_context.num_input_pipelines <= 1:
            return self.paths
        return self.paths[input_context.input_pipeline_id::input_context.num_input_pipelines]

    def check_cache(self, input_context=None) -> str:
        """What the cache will hold, as one line, logged once; ConfigError if "decoded" is
        over budget.

        Called by the first `epoch_dataset`; callable earlier to fail fast. "decoded"
        reads every file once for the header sizes of its estimate.
        """
        key = 0 if input_context is None else input_context.input_pipeline_id
        if key not in self._cache_checked:
            self._cache_checked[key] = self._describe_cache(input_context)
            logger.info("%s", self._cache_checked[key])
        return self._cache_checked[key]

    def _describe_cache(self, input_context) -> str:
        c = self.config
        mode = cache_mode(c.cache)
        paths = self._shard_paths(input_context)
        if mode == CACHE_NONE:
            return f"no cache: reading and decoding {len(paths)} images every epoch"
        if mode == CACHE_ENCODED:
            return f"caching {len(paths)} encoded images in RAM ({_human_bytes(encoded_bytes(paths))})"
        if mode == "file":
            return f"caching {len(paths)} decoded images in the tf.data file cache {c.cache}-*"
        budget = float(c.cache_budget_gb)
        estimate = decoded_bytes(paths, c.saliency_long_side)
        if estimate > budget * 1e9:
            raise ConfigError(
                f"cache {c.cache!r} would hold {len(paths)} decoded images and saliency maps in RAM, an estimated "
                f"{_human_bytes(estimate)} (H*W*3 bytes per image from its header, plus its saliency map), over "
                f"cache_budget_gb={budget:g} GB; use cache 'encoded' (the file bytes in RAM, "
                f"{_human_bytes(encoded_bytes(paths))}, decoded every epoch), raise cache_budget_gb, or give a file "
                f"prefix for an on-disk cache")
        return (f"caching {len(paths)} decoded images and saliency maps in RAM ({_human_bytes(estimate)} "
                f"estimated, cache_budget_gb={budget:g})")


def inference_elements(image, spec: InferenceSpec):
    """Inference windows [G, 4] and their saliency [G] for one image at its working size
    (`working_size.to_working_size`), by the model's `InferenceSpec` (shared with the
    standalone model and the export). G depends on the image size (`crops.grid_windows`)."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    windows = crop_ops.grid_windows(height, width, spec.crop_size, spec.scales, spec.grid_size)
    small = saliency_ops.spectral_residual_small(image, spec.saliency_long_side)
    return windows, _window_saliency(small, windows, height, width)


def inference_dataset(paths, spec: InferenceSpec | TrainConfig, batch_size: int = 16) -> tf.data.Dataset:
    """Deterministic grid crops of each image, in order, for evaluation and scoring.

    Images have different window counts: a batch is padded to its longest grid with
    empty windows, whose crops are black and whose `mask` is False; `crops`
    [B, G, S, S, 3], `saliency` [B, G], `mask` [B, G] bool. Pool with the mask
    (`models.layers.importance_pool(..., mask)`): padding must not change a score.
    `spec`: the model's `InferenceSpec`, or a run's TrainConfig (its spec is derived).
    """
    spec = as_inference_spec(spec)

    def prepare(path):
        image, _ = working_size.decode_working(tf.io.read_file(path), spec.max_pixels, spec.working_long_side)
        windows, saliency = inference_elements(image, spec)
        return {"image": image, "windows": windows, "saliency": saliency}

    def cut(batch):
        return {"crops": crop_ops.cut_crops(batch["image"], batch["windows"], spec.crop_size),
                "saliency": batch["saliency"], "mask": crop_ops.window_mask(batch["windows"])}

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
