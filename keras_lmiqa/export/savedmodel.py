"""SavedModel export: encoded images (or pixels) in, quality out, all inside the graph.

`export_model(model.keras, EXPORTS/lmiqa)` writes `EXPORTS/lmiqa/<version>/`, the layout
TF Serving watches, from a standalone `model.keras` (`models.image_quality`) or an
`ImageQualityModel`. The version folder is written beside its final place and moved
into place (`export.versions`), so a server never loads a half-written version. It holds

    saved_model.pb, variables/     a `tf.Module` tracking the branch model, with signatures
      serving_default  images  tf.string [batch]             encoded JPEG/PNG/BMP/GIF
      score_pixels     pixels  uint8 [batch, H, W, 3]         decoded images of one size
    assets.extra/lmiqa_metadata.json        dataset, score scale and direction, crops, ...
    assets.extra/tf_serving_warmup_requests one PredictionLog for `--enable_model_warmup`

Both signatures run the graph of `keras_lmiqa.models.scoring` and return its outputs
(`constants.OUTPUT_KEYS`). The metadata JSON is the documented form; the module's
`metadata()` function returns the same JSON string.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import time

import tensorflow as tf

from keras_lmiqa import artifacts
from keras_lmiqa.constants import (
    ASSETS_EXTRA,
    BYTES_SIGNATURE,
    METADATA_FILE,
    MODEL_NAME,
    PIXELS_SIGNATURE,
    SIGNATURE_INPUTS,
    WARMUP_FILE,
)
from keras_lmiqa.errors import ConfigError, ModelError
from keras_lmiqa.export.versions import locked_temporary, move_into_place, recover_exports
from keras_lmiqa.loading import latest_version, load_image_model
from keras_lmiqa.models.image_quality import ImageQualityModel, build_metadata
from keras_lmiqa.models.scoring import score_encoded_batch, score_pixel_batch

logger = logging.getLogger("keras_lmiqa.export")  # the name users see in its log lines


class LMIQAModule(tf.Module):
    """The exported object: the branch model and the scoring functions around it.

    Args:
        model: the standalone `ImageQualityModel` (its branch and `InferenceSpec`).
        metadata: a JSON-serialisable dict returned by `metadata()` as a JSON string.

    `serving_default(images)` takes encoded images tf.string [batch];
    `score_pixels(pixels)` uint8 [batch, H, W, 3]. Both return `OUTPUT_KEYS`, by the
    graph functions the Keras model runs (`models.scoring`).
    """

    def __init__(self, model, metadata: dict, **kwargs):
        super().__init__(name=kwargs.pop("name", MODEL_NAME), **kwargs)
        self.model = model.branch  # only the branch's variables go into the SavedModel
        self.spec = model.spec
        self._metadata_json = json.dumps(metadata, sort_keys=True)
        self.serving_default = tf.function(self._serve_bytes, input_signature=[
            tf.TensorSpec([None], tf.string, name=SIGNATURE_INPUTS[BYTES_SIGNATURE])])
        self.score_pixels = tf.function(self._serve_pixels, input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.uint8, name=SIGNATURE_INPUTS[PIXELS_SIGNATURE])])
        self.metadata = tf.function(self._metadata, input_signature=[])

    def _serve_bytes(self, images):
        return score_encoded_batch(self.model, self.spec, images)

    def _serve_pixels(self, pixels):
        return score_pixel_batch(self.model, self.spec, pixels)

    def _metadata(self):
        return {"json": tf.constant(self._metadata_json)}


def build_module(model, config_path: str | None = None) -> tuple[LMIQAModule, dict]:
    """An `LMIQAModule` of an `ImageQualityModel`, or of a model.keras path
    (`load_image_model`); returns it and its metadata."""
    if not isinstance(model, ImageQualityModel):
        model = load_image_model(os.fspath(model), config_path)
    elif config_path is not None:
        # an in-memory model carries its own spec; a config beside it would be silently ignored
        raise ModelError(f"config_path={config_path!r} applies to a model file only; this ImageQualityModel "
                         "carries its own settings")
    metadata = build_metadata(model.spec, model.info)
    return LMIQAModule(model, metadata), metadata


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
    request.model_spec.signature_name = BYTES_SIGNATURE
    tensor = tf.make_tensor_proto([contents], dtype=tf.string, shape=[1])
    request.inputs[SIGNATURE_INPUTS[BYTES_SIGNATURE]].CopyFrom(tensor)
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
    (`recover_exports`). `config_path`, if given, is checked against the model's settings.
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
    temporary, lock = locked_temporary(export_dir, f".tmp-{version}-")
    try:
        contents = warmup_image()
        module.serving_default(tf.constant([contents]))  # traces, and checks the warm-up request runs
        tf.saved_model.save(module, temporary, signatures={
            BYTES_SIGNATURE: module.serving_default, PIXELS_SIGNATURE: module.score_pixels})
        extra = os.path.join(temporary, ASSETS_EXTRA)
        os.makedirs(extra, exist_ok=True)
        metadata = {**metadata, "version": version, "source_model": source,
                    "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        artifacts.write_json(os.path.join(extra, METADATA_FILE), metadata)
        with tf.io.TFRecordWriter(os.path.join(temporary, WARMUP_FILE)) as writer:
            writer.write(warmup_record(contents))
        os.chmod(temporary, 0o755)  # mkdtemp makes it private; a server may run as another user
        move_into_place(temporary, final, overwrite)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    finally:
        os.close(lock)
    logger.info("exported %s to %s in %.1fs", source, final, time.time() - started)
    return final
