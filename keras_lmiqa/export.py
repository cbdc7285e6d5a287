"""SavedModel export: encoded images (or pixels) in, quality out, all inside the graph.

`export_model(model.keras, EXPORTS/lmiqa)` writes `EXPORTS/lmiqa/<version>/`, the layout
TF Serving watches. The standalone `model.keras` (`models.image_quality`) is all it
reads; an older run's crop-only model.keras needs the run's config.json beside it. The
version folder is written beside its final place (`.tmp-<version>-xxxx`, a name TF
Serving ignores) and renamed into place, so a server
never loads a half-written version; `--overwrite` exchanges it with the old folder in
one syscall, so version N never goes missing. The next export (or `lmiqa export
--clean`) removes what killed exports left (`recover_exports`). It holds

    saved_model.pb, variables/     a `tf.Module` tracking the branch model, with signatures
      serving_default  images  tf.string [batch]             encoded JPEG/PNG/BMP/GIF
      score_pixels     pixels  uint8 [batch, H, W, 3]         decoded images of one size
    assets.extra/lmiqa_metadata.json        dataset, score scale and direction, crops, ...
    assets.extra/tf_serving_warmup_requests one PredictionLog for `--enable_model_warmup`

Both signatures return
    score          float32 [batch]        normalised quality in [0, 1], higher = better
    mos            float32 [batch]        the score on the training dataset's own scale
                                          and direction (MOS or DMOS, see the metadata)
    crop_scores    float32 [batch, G]     per-crop quality of the inference windows
    crop_weights   float32 [batch, G]     importance weights (softmax), sum to 1
    crop_windows   float32 [batch, G, 4]  windows [y0, x0, y1, x1] in image pixels
    crop_saliency  float32 [batch, G]     mean spectral-residual saliency per window
G is the request's longest window list: an image's windows depend on its size (native
scale tiles the image); shorter lists are padded at the end with empty windows
[0, 0, 0, 0] of weight, score and saliency 0 (`crops.window_mask`).

Decoding, the working-size downscale (`keras_lmiqa.working_size`: a photo larger than
the model's working long side is scored downscaled to it, a large JPEG decoded at reduced
scale), the crop grid, saliency, crop cutting and the importance-weighted average run
in the graph as `keras_lmiqa.evaluation.predict_quality` runs them on one image: each
image of a request is decoded, cut and scored on its own (`score_images`), its windows
`windows_per_call` at a time, never padded to the others. Memory holds one image and
one chunk of its crops whatever the batch, and an image scores bit-identically alone
or in any batch. A bad image fails the whole request with INVALID_ARGUMENT naming the
problem (`images[2] is empty`, `image exceeds the pixel limit`, more than `max_windows`
windows); no score is made up. The metadata JSON is the
documented form; the module's `metadata()` function returns the same JSON string.
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import fcntl
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from keras_lmiqa import artifacts
from keras_lmiqa.config import TrainConfig, from_dict
from keras_lmiqa.constants import ASSETS_EXTRA, MODEL_NAME, OUTPUT_KEYS, WARMUP_FILE, version_dirs
from keras_lmiqa.crops import cut_crops
from keras_lmiqa.datasets.records import ScoreScale
from keras_lmiqa.errors import ConfigError, ModelError
from keras_lmiqa.inference_spec import InferenceSpec, as_inference_spec
from keras_lmiqa.models.image_quality import (
    ImageQualityModel,
    image_quality_model,
    run_info,
    score_encoded_batch,
    score_pixel_batch,
)
from keras_lmiqa.models.layers import importance_pool
from keras_lmiqa.pipeline import inference_elements
from keras_lmiqa.working_size import decode_working, in_full_pixels, to_working_size

logger = logging.getLogger(__name__)

METADATA_FILE = "lmiqa_metadata.json"
METADATA_FORMAT = 2  # 2: the window count depends on the image (no fixed "grid_windows")
# Leading bytes of the formats tf.io.decode_image reads.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


# ---------------------------------------------------------------- graph functions


def _check_encoded(contents, index):
    """Asserts one encoded image is non-empty and in a known format; returns it."""
    empty = tf.debugging.Assert(
        tf.strings.length(contents) > 0, [tf.strings.format("images[{}] is empty", index)])
    with tf.control_dependencies([empty]):
        known = tf.reduce_any(tf.stack([tf.strings.substr(contents, 0, len(m)) == m for m in _MAGIC]))
        format_ok = tf.debugging.Assert(
            known, [tf.strings.format("images[{}] is not a JPEG, PNG, GIF or BMP image", index)])
    with tf.control_dependencies([format_ok]):
        return tf.identity(contents)


# Crop pixels per call of the branch: 16 crops of 224 px (more of smaller crops). One
# image's windows go through the model in chunks of this size, so the activations of a
# call stay the same whatever the image size (a 50 MP photo has ~1000 windows of 224 px).
CHUNK_PIXELS = 16 * 224 * 224


def windows_per_call(spec: InferenceSpec) -> int:
    """Windows one call of the branch scores: CHUNK_PIXELS worth of crops, at least one."""
    return max(1, CHUNK_PIXELS // (spec.crop_size * spec.crop_size))


def max_windows(spec: InferenceSpec) -> int:
    """Most inference windows the export accepts for one image: `InferenceSpec.max_windows`.

    Without a working size, an image with both sides >= crop_size S and at most
    max_pixels P pixels has at most 2 P / S^2 + 2 native windows, plus the coarser grids;
    only a strip thinner than S has more, one per short side along its length (a
    1 x 50 000 000 PNG would make 5e7 windows), and it is refused. With one, every image
    is within the bound.
    """
    return spec.max_windows


def _check_window_count(image, spec: InferenceSpec, name: str, index):
    """Assert `image` (`name[index]` of the request) has at most `max_windows` native-scale
    windows (`crops.grid_windows`), before the window list is built; returns the image."""
    if not any(float(s) >= 1.0 for s in spec.scales):  # grids only: grid_size^2 per scale
        return image
    shape = tf.shape(image, out_type=tf.int64)
    side = tf.maximum(tf.minimum(tf.constant(spec.crop_size, tf.int64), tf.minimum(shape[0], shape[1])), 1)
    count = ((shape[0] + side - 1) // side) * ((shape[1] + side - 1) // side)
    limit = max_windows(spec)
    check = tf.debugging.Assert(count <= limit, [tf.strings.format(
        name + "[{}] ({}x{} pixels) would need {} crop windows, above the limit of {} (max_windows): too thin a strip",
        (index, shape[1], shape[0], count, tf.constant(limit, tf.int64)))])
    with tf.control_dependencies([check]):
        return tf.identity(image)


def decode_one(contents, index, spec: InferenceSpec):
    """One encoded image -> (working pixels [h, w, 3] uint8, windows [G, 4], saliency [G],
    full displayed size int32 [2]), checked. A JPEG above the working size is decoded at
    reduced scale (`working_size.decode_working`)."""
    image, full_size = decode_working(_check_encoded(contents, index), spec.max_pixels, spec.working_long_side)
    image = _check_window_count(image, spec, "images", index)
    windows, saliency = inference_elements(image, spec)
    return image, windows, saliency, full_size


def decode_batch(images, spec: InferenceSpec):
    """Encoded images [B] -> (padded pixels [B, Hmax, Wmax, 3] uint8, windows [B, G, 4], saliency [B, G]).

    The batch `inference_dataset` would make (zero-padded at the bottom/right, window
    lists padded with empty windows): for benchmarks on the very crops the export cuts.
    The export itself never pads: `score_images` takes one image at a time.
    """

    spec = as_inference_spec(spec)

    def one(args):
        image, windows, saliency, _ = decode_one(*args, spec)
        return tf.RaggedTensor.from_tensor(image, ragged_rank=1), windows, saliency

    images = tf.convert_to_tensor(images, tf.string)
    decoded, windows, saliency = tf.map_fn(
        one, (images, tf.range(tf.shape(images)[0])),
        fn_output_signature=(tf.RaggedTensorSpec([None, None, 3], tf.uint8, ragged_rank=1),
                             tf.RaggedTensorSpec([None, 4], tf.float32, ragged_rank=0),
                             tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0)))
    return decoded.to_tensor(), windows.to_tensor(), saliency.to_tensor()


def pixels_one(image, index, spec: InferenceSpec):
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


def score_images(model, spec: InferenceSpec, elements, prepare, name: str = "images") -> dict:
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
    scale = spec.scale
    unit = score if scale.higher_better else 1.0 - score
    return {
        "score": score,
        "mos": scale.low + unit * (scale.high - scale.low),
        "crop_scores": crop_scores.to_tensor(),
        "crop_weights": weights.to_tensor(),
        "crop_windows": windows.to_tensor(),
        "crop_saliency": saliency.to_tensor(),
    }


class LMIQAModule(tf.Module):
    """The exported object: the branch model and the scoring functions around it.

    Args:
        model: the standalone `ImageQualityModel` (its branch and `InferenceSpec`).
        metadata: a JSON-serialisable dict returned by `metadata()` as a JSON string.

    `serving_default(images)` takes encoded images tf.string [batch];
    `score_pixels(pixels)` uint8 [batch, H, W, 3]. Both return `OUTPUT_KEYS`, by the
    graph functions the Keras model runs (`models.image_quality`).
    """

    def __init__(self, model, metadata: dict, **kwargs):
        super().__init__(name=kwargs.pop("name", MODEL_NAME), **kwargs)
        self.model = model.branch  # only the branch's variables go into the SavedModel
        self.spec = model.spec
        self._metadata_json = json.dumps(metadata, sort_keys=True)
        self.serving_default = tf.function(
            self._serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        self.score_pixels = tf.function(
            self._serve_pixels, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")])
        self.metadata = tf.function(self._metadata, input_signature=[])

    def _serve_bytes(self, images):
        return score_encoded_batch(self.model, self.spec, images)

    def _serve_pixels(self, pixels):
        return score_pixel_batch(self.model, self.spec, pixels)

    def _metadata(self):
        return {"json": tf.constant(self._metadata_json)}


# The documented range of `score`. A trained model's linear head overshoots it on images
# unlike its training set (a demo model scored the 48 x 64 warm-up gradient -0.74, which a
# margin of 0.5 refused, failing its export); beyond SCORE_MARGIN, or not finite, the
# score comes from a broken model (corrupt weights scored -2.1e25) and the request fails
# rather than return it.
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
    sane = tf.reduce_all(tf.math.is_finite(score) & (score >= low - SCORE_MARGIN) & (score <= high + SCORE_MARGIN))
    check = tf.debugging.Assert(sane, [f"{SCORE_ERROR} [{low:g}, {high:g}]: the model is broken (corrupt weights?)",
                                       score], summarize=8)
    with tf.control_dependencies([check]):
        return tf.clip_by_value(score, low, high)


# ---------------------------------------------------------------- loading a run


def load_model_file(model_path: str):
    """Load a `model.keras` (safe mode) after checking its checksum (`artifacts.verify_keras`):
    a standalone `ImageQualityModel`, or the branch alone (run folders made before it).
    ModelError naming the file if it cannot."""
    if not os.path.isfile(model_path):
        raise ModelError(f"model file not found: {model_path}")
    import keras_lmiqa.models  # noqa: F401  (registers the custom layers)

    try:
        artifacts.verify_keras(model_path)  # the checksum save_keras wrote, and every member's CRC-32
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except ModelError as error:  # the file's own settings refused (its spec), raised as is by Keras
        raise ModelError(f"cannot load model {model_path} (refused): {error}") from None
    except Exception as error:  # checksum, zipfile, h5py, JSON and Keras errors all mean "unreadable"
        reason = load_failure_reason(error)
        what = "refused" if reason.startswith(_REFUSALS) else "corrupt or partial file?"
        raise ModelError(f"cannot load model {model_path} ({what}): {reason}") from None
    if isinstance(model, ImageQualityModel):
        return model
    if not isinstance(model.output, dict) or "score" not in model.output:
        raise ModelError(f"{model_path} is not an LML-IQA model (no 'score' output)")
    return model


_KERAS_WRAPPED = "Exception encountered: "
_UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([^']*)'")
_REFUSALS = ("inference spec:", "unknown class")


def load_failure_reason(error: Exception) -> str:
    """One line saying why Keras could not build a model from its config: Keras wraps an
    error raised inside `from_config` in "could not be deserialized properly ... config=
    {the whole config} ... Exception encountered: REASON"; this returns the innermost REASON
    (an unknown class named as such), truncated."""
    text = str(error).strip()
    if _KERAS_WRAPPED in text:
        text = text.rsplit(_KERAS_WRAPPED, 1)[1]
    unknown = _UNKNOWN_CLASS.search(text)
    if unknown:
        return f"unknown class {unknown.group(1)!r} (not a keras_lmiqa or Keras class; safe mode loads no other)"
    line = text.splitlines()[0].strip() if text else ""
    return _truncated(line) if line else type(error).__name__


def _truncated(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_branch(model_path: str):
    """The branch (crops in) of a `model.keras`, standalone or branch-only (`load_model_file`)."""
    model = load_model_file(model_path)
    return model.branch if isinstance(model, ImageQualityModel) else model


def read_run_record(config_path: str) -> tuple[TrainConfig, ScoreScale, dict]:
    """The run's config.json -> (TrainConfig, ScoreScale, the whole record)."""
    if not os.path.isfile(config_path):
        raise ModelError(f"run config not found: {config_path} (expected config.json beside the model)")
    try:
        record = artifacts.read_json(config_path)
        config = from_dict(record["config"])
        scale = ScoreScale(**record["dataset"]["scale"])
    except (ValueError, KeyError, TypeError, ConfigError) as error:
        raise ModelError(f"invalid run config {config_path}: {error}") from None
    return config, scale, record


def run_spec(config: TrainConfig, scale: ScoreScale, record: dict) -> InferenceSpec:
    """The `InferenceSpec` of a run folder's config.json record."""
    return InferenceSpec.from_config(config, scale, record.get("dataset", {}).get("name", config.dataset))


def build_metadata(spec: InferenceSpec, info: dict) -> dict:
    """What `lmiqa_metadata.json` holds (without the export time): the model's spec and provenance."""
    scale = spec.scale
    return {
        "format": METADATA_FORMAT,
        "model_name": MODEL_NAME,
        "dataset": {"name": spec.dataset, "scale": scale.to_dict()},
        "score": {"range": [0.0, 1.0], "higher_better": True,
                  "mos": {"low": scale.low, "high": scale.high, "higher_better": scale.higher_better,
                          "kind": scale.kind}},
        "crops": {"crop_size": spec.crop_size, "scales": list(spec.scales), "grid_size": spec.grid_size,
                  "windows": "native scale tiles the image (ceil(H/S) x ceil(W/S)), grid_size^2 per coarser "
                             "scale, duplicates removed; padded with empty windows in a batch",
                  "window_rule": spec.window_rule, "working_long_side": spec.working_long_side,
                  "max_windows": spec.max_windows,
                  "saliency_long_side": spec.saliency_long_side, "max_pixels": spec.max_pixels},
        "model": {"backbone": info.get("backbone"), "branch": spec.export_branch},
        "signatures": {"serving_default": {"inputs": {"images": "string [batch]"}},
                       "score_pixels": {"inputs": {"pixels": "uint8 [batch, H, W, 3]"}},
                       "outputs": list(OUTPUT_KEYS)},
        "commit": info.get("commit"),
        "versions": {**info.get("versions", {}), "export": {"tensorflow": tf.__version__,
                                                            "keras": keras.__version__}},
    }


# The spec fields an explicit --config must agree on with a standalone model's own.
_SCORING_FIELDS = ("crop_size", "scales", "grid_size", "saliency_long_side", "max_pixels", "working_long_side",
                   "score_low", "score_high", "higher_better")


def load_image_model(model_path: str, config_path: str | None = None) -> ImageQualityModel:
    """The standalone model of a `model.keras`.

    A standalone file carries its spec: config.json is not read (an explicit
    `config_path` is checked against it). A branch-only file (run folders made before)
    is wrapped with the spec of `config_path`, default the config.json beside it.
    """
    model_path = os.fspath(model_path)
    model = load_model_file(model_path)
    if isinstance(model, ImageQualityModel):
        if config_path is not None:
            config, scale, record = read_run_record(config_path)
            given = run_spec(config, scale, record)
            differ = [name for name in _SCORING_FIELDS if getattr(given, name) != getattr(model.spec, name)]
            if differ:
                raise ModelError(f"{config_path} disagrees with the settings saved in {model_path} "
                                 f"({', '.join(differ)}); leave out --config to use the model's own")
        return model
    config_path = config_path or os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.json")
    config, scale, record = read_run_record(config_path)
    input_side = model.inputs[0].shape[2]
    if input_side is not None and input_side != config.crop_size:
        raise ModelError(f"{model_path} takes {input_side}px crops but {config_path} says crop_size={config.crop_size}")
    return image_quality_model(model, run_spec(config, scale, record), run_info(config, record))


def build_module(model, config_path: str | None = None) -> tuple[LMIQAModule, dict]:
    """An `LMIQAModule` of an `ImageQualityModel`, or of a run's model.keras path
    (`load_image_model`); returns it and its metadata."""
    if not isinstance(model, ImageQualityModel):
        model = load_image_model(os.fspath(model), config_path)
    elif config_path is not None:
        # an in-memory model carries its own spec; a config beside it would be silently ignored
        raise ModelError(f"config_path={config_path!r} applies to a model file only; this ImageQualityModel "
                         "carries its own settings")
    metadata = build_metadata(model.spec, model.info)
    return LMIQAModule(model, metadata), metadata


# ---------------------------------------------------------------- versions


def latest_version(export_dir: str) -> int | None:
    """The highest version under `export_dir` (`constants.version_dirs`), or None."""
    return max(version_dirs(export_dir), default=None)


def read_metadata(version_dir: str) -> dict:
    """The export's `assets.extra/lmiqa_metadata.json`."""
    path = os.path.join(version_dir, ASSETS_EXTRA, METADATA_FILE)
    if not os.path.isfile(path):
        raise ModelError(f"no LML-IQA metadata in {version_dir} (missing {ASSETS_EXTRA}/{METADATA_FILE})")
    try:
        return artifacts.read_json(path)
    except ValueError as error:
        raise ModelError(f"invalid metadata {path}: {error}") from None


# ---------------------------------------------------------------- writing


def warmup_image() -> bytes:
    """A small PNG (a colour gradient, 48 x 64) for the warm-up request."""
    y, x = tf.meshgrid(tf.range(48) * 5, tf.range(64) * 4, indexing="ij")
    image = tf.cast(tf.stack([y, x, tf.fill([48, 64], 128)], axis=-1), tf.uint8)
    return tf.io.encode_png(image).numpy()


def warmup_record(contents: bytes) -> bytes:
    """A serialised PredictionLog: a `serving_default` PredictRequest with one image."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([contents], dtype=tf.string, shape=[1]))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    return log.SerializeToString()


def _next_version(export_dir: str, version) -> int:
    if version is None:
        return (latest_version(export_dir) or 0) + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"version must be a positive integer, got {version!r}")
    return version


def export_model(model_path, export_dir, version: int | None = None, overwrite: bool = False,
                 config_path: str | None = None, source: str | None = None) -> str:
    """Write the SavedModel of a run's `model.keras` to `<export_dir>/<version>/`; returns that folder.

    `model_path` may also be an `ImageQualityModel` (e.g. `keras_lmiqa.pretrained()`);
    `source` then names it in the metadata (`source_model`; default the model's name).

    `version` defaults to one above the highest present (1 for a new folder). An
    existing version is refused unless `overwrite`, which swaps the new folder in with
    one atomic exchange (Linux `renameat2(RENAME_EXCHANGE)`): version N is present at
    every moment, old then new. First it recovers what killed exports left
    (`recover_exports`). `config_path` defaults to the config.json beside the model.
    """
    started = time.time()
    export_dir = os.path.abspath(os.fspath(export_dir))
    artifacts.writable_folder(export_dir, "export folder")
    for action in recover_exports(export_dir):
        logger.info("%s", action)
    version = _next_version(export_dir, version)
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final) and not overwrite:
        raise ModelError(f"version {version} already exists: {final}; pass --overwrite (overwrite=True) "
                         "to replace it, or choose another --version")
    if isinstance(model_path, ImageQualityModel):
        source = source or model_path.name
    else:
        model_path = os.fspath(model_path)
        source = source or os.path.abspath(model_path)
    module, metadata = build_module(model_path, config_path)
    os.makedirs(export_dir, exist_ok=True)
    temporary, lock = _locked_temporary(export_dir, f".tmp-{version}-")
    try:
        contents = warmup_image()
        module.serving_default(tf.constant([contents]))  # traces, and checks the warm-up request runs
        tf.saved_model.save(module, temporary, signatures={
            "serving_default": module.serving_default, "score_pixels": module.score_pixels})
        extra = os.path.join(temporary, ASSETS_EXTRA)
        os.makedirs(extra, exist_ok=True)
        metadata = {**metadata, "version": version, "source_model": source,
                    "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        artifacts.write_json(os.path.join(extra, METADATA_FILE), metadata)
        with tf.io.TFRecordWriter(os.path.join(temporary, WARMUP_FILE)) as writer:
            writer.write(warmup_record(contents))
        os.chmod(temporary, 0o755)  # mkdtemp makes it private; a server may run as another user
        _move_into_place(temporary, final, overwrite)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    finally:
        os.close(lock)
    logger.info("exported %s to %s in %.1fs", source, final, time.time() - started)
    return final


# ---------------------------------------------------------------- crash-safe replacement
#
# An export writes `.tmp-<N>-xxxx/` (a name TF Serving ignores) and holds an flock on
# that folder while it lives; the lock dies with the process, so an unlocked `.tmp-*`
# folder is a leftover of a killed export. `--overwrite` exchanges the new folder with
# version N in one syscall; where the file system cannot (no RENAME_EXCHANGE), it moves
# N aside into a locked `.tmp-old-<N>-xxxx/previous` and the new folder in: a kill
# between those two renames leaves no N until the next export (or `lmiqa export
# --clean`) moves `previous` back.

_TEMPORARY = re.compile(r"\.tmp-(old-)?(\d+)-[A-Za-z0-9_]+")
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _renameat2(source: str, target: str, flags: int) -> bool:
    """`renameat2(source, target, flags)`; False when this system or file system lacks it."""
    function = getattr(_libc(), "renameat2", None)
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), source, None, target)


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _exchange(temporary: str, final: str) -> bool:
    """Atomically swap two folders (True), or False when the file system cannot."""
    return _renameat2(temporary, final, _RENAME_EXCHANGE)


def _set_aside(final: str, previous: str) -> None:
    os.rename(final, previous)


def _lock(path: str, blocking: bool = True) -> int | None:
    """An fd holding an exclusive flock on folder `path`; None if another process holds it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _locked_temporary(export_dir: str, prefix: str) -> tuple[str, int]:
    """A new folder `export_dir/<prefix>xxxx` and the fd of its lock. The base folder's
    shared lock keeps `recover_exports` (exclusive) from seeing it before it is locked."""
    base = os.open(export_dir, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(base, fcntl.LOCK_SH)
        temporary = tempfile.mkdtemp(prefix=prefix, dir=export_dir)
        return temporary, _lock(temporary)
    finally:
        os.close(base)


def recover_exports(export_dir: str) -> list[str]:
    """Undo what killed exports left in `export_dir`; returns what was done, one line each.

    A `.tmp-old-<N>-*/previous` whose version N is missing is moved back to N; then
    every `.tmp-<N>-*` and `.tmp-old-<N>-*` folder no live export holds is removed. A
    folder a running export holds (its flock) is left alone.
    """
    if not os.path.isdir(export_dir):
        return []
    actions = []
    base = os.open(export_dir, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(base, fcntl.LOCK_EX)
        for name in sorted(os.listdir(export_dir)):
            match = _TEMPORARY.fullmatch(name)
            path = os.path.join(export_dir, name)
            if not match or os.path.islink(path) or not os.path.isdir(path):
                continue
            lock = _lock(path, blocking=False)
            if lock is None:  # a running export's
                continue
            try:
                previous, final = os.path.join(path, "previous"), os.path.join(export_dir, match.group(2))
                if match.group(1) and os.path.isdir(previous) and not os.path.lexists(final):
                    os.rename(previous, final)
                    actions.append(f"restored version {match.group(2)} from {name}/previous (an overwrite was killed)")
                shutil.rmtree(path)
                actions.append(f"removed {name} (left by a killed export)")
            finally:
                os.close(lock)
    finally:
        os.close(base)
    return actions


def _move_into_place(temporary: str, final: str, overwrite: bool) -> None:
    if not os.path.lexists(final):
        try:
            if not _renameat2(temporary, final, _RENAME_NOREPLACE):
                os.rename(temporary, final)  # replaces only an empty folder
            return
        except OSError as error:
            if not os.path.lexists(final):
                raise ModelError(f"cannot move the export into place at {final}: {error}") from None
    if not overwrite:
        raise ModelError(f"version folder appeared while exporting: {final}")
    if _exchange(temporary, final):  # `final` is the new version; `temporary` holds the old one
        shutil.rmtree(temporary, ignore_errors=True)
        return
    logger.warning("%s: this file system cannot exchange folders atomically; version %s is missing "
                   "between two renames", os.path.dirname(final), os.path.basename(final))
    old, lock = _locked_temporary(os.path.dirname(final), f".tmp-old-{os.path.basename(final)}-")
    previous = os.path.join(old, "previous")
    try:
        _set_aside(final, previous)
        try:
            os.rename(temporary, final)
        except OSError as error:
            os.rename(previous, final)  # put the previous version back
            raise ModelError(f"cannot move the export into place at {final}: {error}") from None
    finally:
        if os.path.lexists(final) or not os.path.lexists(previous):  # else recover_exports puts it back
            shutil.rmtree(old, ignore_errors=True)
        os.close(lock)


__all__ = [
    "LMIQAModule", "OUTPUT_KEYS", "SCORE_ERROR", "SCORE_MARGIN", "SCORE_RANGE", "bounded_score", "build_metadata",
    "build_module", "crop_outputs", "decode_batch", "decode_one", "export_model", "latest_version", "load_branch",
    "load_image_model", "load_model_file", "max_windows", "pixels_one", "read_metadata", "read_run_record",
    "recover_exports", "run_spec", "score_images",
    "version_dirs", "windows_per_call",
]
