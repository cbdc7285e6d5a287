"""How a model scores images: the graph the Keras model, the SavedModel and `load_scorer` run.

Two paths, for two kinds of input:

- **One image at a time** (`score_each_image`, `score_encoded_batch`, `score_pixel_batch`):
  encoded bytes or pixels of any size, as requests bring them. Each image is decoded
  (a JPEG above the working size at reduced scale), brought to the working size
  (`keras_lmiqa.working_size`), given its windows and saliency, and scored a chunk of
  `windows_per_call` windows at a time, never padded to the others. Memory holds one
  image and one chunk of its crops whatever the batch, and an image scores
  bit-identically alone or in any batch. `ImageQualityModel`, the export's signatures
  and `Scorer` all run it.
- **Padded batches of a dataset** (`predict_quality`, `evaluate_records`): the files of
  a dataset through `pipeline.inference_dataset`, whose batches hold images of one
  padded size and window lists padded with empty windows (masked out of the pooling).
  Validation during training and `lmiqa eval` score thousands of files this way, with
  tf.data's parallel decode and the model called on whole batches.

Both cut the same windows with the same crop op and pool with `importance_pool`, so a
file scores the same by either (`tests/export/test_export.py` checks it to 1e-5).

Outputs (`constants.OUTPUT_KEYS`) of the per-image path:
    score          float32 [batch]        normalised quality in [0, 1], higher = better
    mos            float32 [batch]        the score on the training dataset's own scale
    crop_scores    float32 [batch, G]     per-crop quality of the inference windows
    crop_weights   float32 [batch, G]     importance weights (softmax), sum to 1
    crop_windows   float32 [batch, G, 4]  windows [y0, x0, y1, x1] in image pixels
    crop_saliency  float32 [batch, G]     mean spectral-residual saliency per window
G is the request's longest window list; shorter lists are padded at the end with empty
windows [0, 0, 0, 0] of weight, score and saliency 0 (`crops.window_mask`). A bad image
fails the whole request with INVALID_ARGUMENT naming the problem (`images[2] is empty`,
`image exceeds the pixel limit`, more than `max_windows` windows); no score is made up.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from keras_lmiqa import metrics as iqa_metrics
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.constants import SCORING_BATCH_SIZE
from keras_lmiqa.crops import cut_crops, native_window_count
from keras_lmiqa.image_io import image_format
from keras_lmiqa.inference_spec import InferenceSpec, ScoreScale, as_inference_spec
from keras_lmiqa.models.layers import importance_pool
from keras_lmiqa.pipeline import inference_dataset, inference_elements, raise_for_bad_image
from keras_lmiqa.working_size import decode_working, in_full_pixels, to_working_size

# ---------------------------------------------------------------- one image at a time


def _check_encoded(contents, index):
    """Asserts one encoded image is non-empty and in a known format (`image_io.image_format`); returns it."""
    empty = tf.debugging.Assert(
        tf.strings.length(contents) > 0, [tf.strings.format("images[{}] is empty", index)])
    with tf.control_dependencies([empty]):
        format_ok = tf.debugging.Assert(
            image_format(contents) > 0, [tf.strings.format("images[{}] is not a JPEG, PNG, GIF or BMP image", index)])
    with tf.control_dependencies([format_ok]):
        return tf.identity(contents)


# Crop pixels per call of the branch: 16 crops of 224 px (more of smaller crops). One
# image's windows go through the model in chunks of this size, so the activations of a
# call stay the same whatever the image size (a 50 MP photo has ~1000 windows of 224 px).
CHUNK_PIXELS = 16 * 224 * 224


def windows_per_call(spec: InferenceSpec) -> int:
    """Windows one call of the branch scores: CHUNK_PIXELS worth of crops, at least one."""
    return max(1, CHUNK_PIXELS // (spec.crop_size * spec.crop_size))


def _check_window_count(image, spec: InferenceSpec, name: str, index):
    """Assert `image` (`name[index]` of the request) has at most `spec.max_windows`
    native-scale windows (`crops.grid_windows`), before the window list is built; returns
    the image. Without a working size only a strip thinner than crop_size can exceed it
    (a 1 x 50 000 000 PNG would make 5e7 windows): it is refused."""
    if not any(float(s) >= 1.0 for s in spec.scales):  # grids only: grid_size^2 per scale
        return image
    shape = tf.shape(image, out_type=tf.int64)
    count = native_window_count(shape[0], shape[1], spec.crop_size)
    limit = spec.max_windows
    check = tf.debugging.Assert(count <= limit, [tf.strings.format(
        name + "[{}] ({}x{} pixels) would need {} crop windows, above the limit of {} (max_windows): too thin a strip",
        (index, shape[1], shape[0], count, tf.constant(limit, tf.int64)))])
    with tf.control_dependencies([check]):
        return tf.identity(image)


def prepare_encoded(contents, index, spec: InferenceSpec):
    """One encoded image -> (working pixels [h, w, 3] uint8, windows [G, 4], saliency [G],
    full displayed size int32 [2]), checked. A JPEG above the working size is decoded at
    reduced scale (`working_size.decode_working`)."""
    image, full_size = decode_working(_check_encoded(contents, index), spec.max_pixels, spec.working_long_side)
    image = _check_window_count(image, spec, "images", index)
    windows, saliency = inference_elements(image, spec)
    return image, windows, saliency, full_size


def prepare_pixels(image, index, spec: InferenceSpec):
    """One decoded image [H, W, 3] uint8 of `score_pixels` -> (working pixels, windows [G, 4], saliency [G],
    its size int32 [2]), checked; an image above the working size is downscaled (`working_size`)."""
    shape = tf.shape(image, out_type=tf.int64)
    checks = [
        tf.debugging.assert_positive(shape[0] * shape[1], message="pixels is empty (zero height or width)"),
        tf.debugging.assert_less_equal(shape[0] * shape[1], tf.constant(spec.max_pixels, tf.int64),
                                       message="image exceeds the pixel limit (max_pixels)"),
    ]
    with tf.control_dependencies(checks):
        image = to_working_size(tf.identity(image), spec.working_long_side)
    image = _check_window_count(image, spec, "pixels", index)
    windows, saliency = inference_elements(image, spec)
    return image, windows, saliency, tf.cast(shape[:2], tf.int32)


def crop_outputs(model, spec: InferenceSpec, image, windows):
    """Per-window (quality [G], importance logits [G]) of one image, `windows_per_call` windows per call.

    The crops of a chunk are cut from the image's own pixels (no padding) just before
    the call that scores them, so memory holds one chunk of crops and its activations.
    """
    chunk = windows_per_call(spec)
    steps = (tf.shape(windows)[0] + chunk - 1) // chunk

    def body(step, scores, logits):
        part = windows[step * chunk:(step + 1) * chunk]
        outputs = model(cut_crops(image[tf.newaxis], part[tf.newaxis], spec.crop_size), training=False)
        return (step + 1, scores.write(step, tf.cast(outputs["crop_scores"][0], tf.float32)),
                logits.write(step, tf.cast(outputs["crop_logits"][0], tf.float32)))

    parts = tf.TensorArray(tf.float32, size=steps, infer_shape=False, element_shape=[None])
    _, scores, logits = tf.while_loop(lambda step, *_: step < steps, body, (tf.constant(0), parts, parts),
                                      parallel_iterations=1)
    return scores.concat(), logits.concat()


def score_each_image(model, spec: InferenceSpec, elements, prepare, name: str = "images") -> dict:
    """Score each image of a request on its own; returns `OUTPUT_KEYS`.

    `prepare(element, index)` turns one element of `elements` (input `name`: encoded
    bytes, or one image of a pixel batch) into (working pixels [h, w, 3] uint8, windows
    [G, 4], saliency [G], the image's full size [2]); `crop_windows` are given in the
    full image's pixels (scaled from the working image's when it was downscaled). Images
    are taken one at a time (`tf.map_fn`, no parallel iterations): memory holds one
    decoded image and one chunk of its crops whatever the batch, and an image's outputs
    are bit-identical alone or in any batch. Only the outputs are padded:
    per-window ones to the request's longest window list, with empty windows of weight,
    score and saliency 0. `spec` (the model's `InferenceSpec`) gives the windows, the
    chunk size and the score scale of `mos`.
    """

    def one(args):
        image, windows, saliency, full_size = prepare(*args)
        crop_scores, logits = crop_outputs(model, spec, image, windows)
        score, weights = importance_pool(crop_scores, logits)  # every window of one image holds pixels
        return score, crop_scores, weights, in_full_pixels(windows, tf.shape(image)[:2], full_size), saliency

    elements = tf.convert_to_tensor(elements)
    count = tf.shape(elements)[0]
    some = tf.debugging.assert_positive(count, message=f"{name} holds no image: send at least one")
    with tf.control_dependencies([some]):
        elements = tf.identity(elements)
    per_window = tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0)
    score, crop_scores, weights, windows, saliency = tf.map_fn(
        one, (elements, tf.range(count)), parallel_iterations=1,
        fn_output_signature=(tf.TensorSpec([], tf.float32), per_window, per_window,
                             tf.RaggedTensorSpec([None, 4], tf.float32, ragged_rank=0), per_window))
    score = bounded_score(score)
    return {
        "score": score,
        "mos": spec.scale.to_mos(score),
        "crop_scores": crop_scores.to_tensor(),
        "crop_weights": weights.to_tensor(),
        "crop_windows": windows.to_tensor(),
        "crop_saliency": saliency.to_tensor(),
    }


def score_pixel_batch(branch, spec: InferenceSpec, pixels) -> dict:
    """uint8 [B, H, W, 3] -> `OUTPUT_KEYS` (graph ops; the export's `score_pixels`)."""
    return score_each_image(branch, spec, tf.convert_to_tensor(pixels, tf.uint8),
                            lambda image, index: prepare_pixels(image, index, spec), "pixels")


def score_encoded_batch(branch, spec: InferenceSpec, images) -> dict:
    """Encoded images tf.string [B] -> `OUTPUT_KEYS` (graph ops; the export's `serving_default`)."""
    return score_each_image(branch, spec, tf.convert_to_tensor(images, tf.string),
                            lambda contents, index: prepare_encoded(contents, index, spec), "images")


# The documented range of `score`. A trained model's linear head overshoots it on images
# unlike its training set (by up to about 1); beyond SCORE_MARGIN, or not finite, the
# score comes from a broken model (corrupt weights score around 1e25) and the request
# fails rather than return it.
SCORE_RANGE = (0.0, 1.0)
SCORE_MARGIN = 10.0
SCORE_ERROR = "the score is not finite or far outside"  # how bounded_score fails a request (no quote: TF escapes it)


def bounded_score(score):
    """`score` [batch] clipped to SCORE_RANGE, after asserting every value is finite and
    within SCORE_MARGIN of it; otherwise the request fails with INVALID_ARGUMENT
    ("the score is not finite or far outside [0, 1]: ..."). Call it on the pooled
    score before `mos` is computed from it."""
    score = tf.convert_to_tensor(score, tf.float32)
    low, high = SCORE_RANGE
    check = tf.debugging.Assert(tf.reduce_all(sane_scores(score)), [
        f"{SCORE_ERROR} [{low:g}, {high:g}]: the model is broken (corrupt weights?)", score], summarize=8)
    with tf.control_dependencies([check]):
        return tf.clip_by_value(score, low, high)


def sane_scores(score):
    """bool [...]: finite and within SCORE_MARGIN of SCORE_RANGE (a tensor, or a NumPy
    array for scores a SavedModel of another version returned)."""
    low, high = SCORE_RANGE
    finite = tf.math.is_finite(score) if tf.is_tensor(score) else np.isfinite(score)
    return finite & (score >= low - SCORE_MARGIN) & (score <= high + SCORE_MARGIN)


# ---------------------------------------------------------------- padded batches of a dataset

# One traced scoring function per model: validation runs every epoch on the same model.
_SCORE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _score_function(model):
    """crops [B, G, S, S, 3], mask [B, G] -> image scores [B], padding crops left out."""
    if model not in _SCORE_FUNCTIONS:
        held = weakref.ref(model)  # the cached function must not keep its model alive

        def score(crops, mask):
            outputs = held()(crops, training=False)
            return importance_pool(outputs["crop_scores"], outputs["crop_logits"], mask)[0]

        _SCORE_FUNCTIONS[model] = tf.function(score, reduce_retracing=True)
    return _SCORE_FUNCTIONS[model]


def predict_quality(model, paths, settings: InferenceSpec | TrainConfig,
                    batch_size: int = SCORING_BATCH_SIZE) -> np.ndarray:
    """Normalised quality (higher = better) of each image, on the inference crop grid."""
    return predict_quality_many({"model": model}, paths, settings, batch_size)["model"]


def predict_quality_many(models: dict, paths, settings: InferenceSpec | TrainConfig,
                         batch_size: int = SCORING_BATCH_SIZE) -> dict[str, np.ndarray]:
    """`predict_quality` for several models of one spec, cutting each batch's crops once.

    `settings`: the models' `InferenceSpec`, or the run's TrainConfig (its spec is
    derived). A model is a branch (crops in) or a standalone `ImageQualityModel`,
    scored here by its branch.
    """
    if not len(paths):
        return {name: np.zeros([0], np.float32) for name in models}
    spec = as_inference_spec(settings)
    score_fns = {name: _score_function(getattr(model, "branch", model))  # an ImageQualityModel by its branch
                 for name, model in models.items()}
    scores: dict[str, list] = {name: [] for name in models}
    try:
        for batch in inference_dataset(paths, spec, batch_size):
            for name, score_fn in score_fns.items():
                scores[name].append(score_fn(batch["crops"], batch["mask"]).numpy())
    except tf.errors.InvalidArgumentError as error:
        raise_for_bad_image(paths, spec.max_pixels, error)
    return {name: np.concatenate(values).astype(np.float32) for name, values in scores.items()}


def evaluate_records(model, records, scale: ScoreScale,
                     settings: InferenceSpec | TrainConfig) -> tuple[dict, np.ndarray]:
    """Metrics on the dataset's own scale, and the predicted scores on that scale."""
    return evaluate_many({"model": model}, records, scale, settings)["model"]


def evaluate_many(models: dict, records, scale: ScoreScale,
                  settings: InferenceSpec | TrainConfig) -> dict[str, tuple[dict, np.ndarray]]:
    """`evaluate_records` for each of several models (e.g. the two branches) in one pass."""
    qualities = predict_quality_many(models, [r.path for r in records], settings)
    target = np.array([r.mos for r in records], np.float64)
    results = {}
    for name, quality in qualities.items():
        predicted_mos = np.asarray(scale.to_mos(quality), np.float64)
        results[name] = (iqa_metrics.evaluate(predicted_mos, target), predicted_mos)
    return results
