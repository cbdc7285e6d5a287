"""The standalone LML-IQA model: images in, the score dict out, nothing else needed.

A keras-hub style task (`ImageQualityModel`) holding the trained branch (crops in,
`branch.build_branch`) and a serialisable preprocessor (`ImageQualityPreprocessor`)
that carries the run's `InferenceSpec` (window grid, saliency, pixel limit, score scale)
in its `get_config`. A run's `model.keras` is this model:

    import keras, keras_lmiqa
    model = keras.saving.load_model("runs/demo/model.keras")
    out = model(pixels)                           # uint8 [B, H, W, 3], one size
    out = model.score_images([a, b, png_bytes])   # mixed sizes: arrays, bytes or paths

Both return `constants.OUTPUT_KEYS` (score, mos, crop_scores, crop_weights, crop_windows,
crop_saliency), computed by the very graph the SavedModel export serves
(`scoring.score_each_image`: each image on its own, its windows a chunk at a time), so
the scores equal the export's. `model.branch` is the crop model for training and research.
"""

from __future__ import annotations

import json
import weakref

import keras
import tensorflow as tf

from keras_lmiqa.constants import (
    BYTES_SIGNATURE,
    MODEL_NAME,
    OUTPUT_KEYS,
    PIXELS_SIGNATURE,
    SCORING_BATCH_SIZE,
    SIGNATURE_INPUTS,
)
from keras_lmiqa.errors import ImageError, ModelError
from keras_lmiqa.inference_spec import InferenceSpec
from keras_lmiqa.models.preprocessor import ImageQualityPreprocessor

# `scoring` and `scorer` (and through them the tf.data pipeline) are imported where they
# are used: this module is imported to register the model as soon as TensorFlow loads
# (`keras_lmiqa._registration`), for the gRPC client's protos too, which need none of it.

# Traced scoring functions per model (not attributes: Keras and tf.saved_model would
# track and save them with the model).
_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_pixels(images):
    """`images` as a uint8 [B, H, W, 3] tensor; ImageError saying what it got otherwise."""
    if isinstance(images, (list, tuple)):
        raise ImageError("images: the model takes one uint8 array [B, H, W, 3]; for a list of images of "
                         "different sizes (arrays, encoded bytes or paths) use model.score_images(list)")
    dtype = getattr(images, "dtype", None)
    shape = tuple(getattr(images, "shape", ()) or ())
    if dtype is None or tf.as_dtype(dtype) != tf.uint8 or len(shape) != 4 or shape[-1] not in (3, None):
        name = tf.as_dtype(dtype).name if dtype is not None else type(images).__name__
        raise ImageError(f"images must be uint8 [batch, height, width, 3] (one size; model.score_images takes "
                         f"mixed sizes), got {name} {list(shape)}")
    return tf.convert_to_tensor(images, tf.uint8)


def check_branch_input(branch, spec: InferenceSpec) -> None:
    """ModelError unless the branch takes the spec's crops ([B, G, S, S, 3], S = crop_size):
    a model file whose spec and branch disagree is refused at load, not at scoring."""
    inputs = getattr(branch, "inputs", None) or []
    shape = tuple(inputs[0].shape) if inputs else ()
    if len(shape) != 5 or shape[-1] != 3 or shape[2] != shape[3] or shape[2] not in (None, spec.crop_size):
        raise ModelError(f"inference spec: crop_size {spec.crop_size} does not fit the model, whose input is "
                         f"{list(shape)} (expected [batch, crops, {spec.crop_size}, {spec.crop_size}, 3])")


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class ImageQualityModel(keras.Model):
    """Images -> quality: the trained branch with its preprocessor (keras-hub's task pattern).

    Args:
        branch: the crop model (`build_branch`): crops [B, G, S, S, 3] uint8 -> dict.
        preprocessor: an `ImageQualityPreprocessor` holding the run's `InferenceSpec`.
        info: JSON-serialisable provenance (backbone, commit, versions) for the export metadata.

    Input contract of `call`: one uint8 tensor or array [B, H, W, 3] of RGB images of
    one size (any H, W with H * W <= spec.max_pixels). Other dtypes or ranks raise
    ImageError. For images of different sizes, encoded JPEG/PNG/GIF/BMP bytes or
    file paths use `score_images(list)`. Returns `constants.OUTPUT_KEYS`: `score` float32
    [B] (normalised quality in [0, 1], higher = better), `mos` [B] (on the training
    dataset's scale and direction), and per-window `crop_*` [B, G(, 4)] padded to the
    batch's longest window list with empty windows.
    """

    def __init__(self, branch, preprocessor, info: dict | None = None, **kwargs):
        kwargs.setdefault("name", "lmiqa_image_quality")
        check_branch_input(branch, preprocessor.spec)
        super().__init__(**kwargs)
        self.branch = branch
        self.preprocessor = preprocessor
        self._info_json = json.dumps(info or {}, sort_keys=True)  # a string: Keras would wrap a dict
        self.built = True

    @property
    def spec(self) -> InferenceSpec:
        return self.preprocessor.spec

    @property
    def info(self) -> dict:
        return json.loads(self._info_json)

    def __call__(self, images, *args, **kwargs):
        # Checked before Keras sees it: Keras would cast a float array to float32 silently,
        # refuse a list with its own message, and wrap any error raised in `call`.
        return super().__call__(check_pixels(images), *args, **kwargs)

    def call(self, images, training=False):
        from keras_lmiqa.models.scoring import score_pixel_batch

        pixels = tf.convert_to_tensor(images, tf.uint8)
        if tf.executing_eagerly():  # one traced graph rather than eager while-loops
            return self.functions()[1](pixels)
        return score_pixel_batch(self.branch, self.spec, pixels)

    def functions(self):
        """(encoded tf.string [B] -> outputs, uint8 [B, H, W, 3] -> outputs), traced once per model."""
        if self not in _FUNCTIONS:
            from keras_lmiqa.models.scoring import score_encoded_batch, score_pixel_batch

            held = weakref.ref(self)  # the cached functions must not keep the model alive
            _FUNCTIONS[self] = (
                tf.function(lambda images: score_encoded_batch(held().branch, held().spec, images),
                            input_signature=[tf.TensorSpec([None], tf.string, name="images")]),
                tf.function(lambda pixels: score_pixel_batch(held().branch, held().spec, pixels),
                            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")]),
            )
        return _FUNCTIONS[self]

    def score_images(self, images, batch_size: int = SCORING_BATCH_SIZE) -> dict:
        """Outputs for a list of images of any sizes: uint8 [H, W, 3] arrays, encoded bytes or
        file paths. Each image scores as it would alone; per-window outputs are padded to
        the longest window list. NumPy arrays, as `keras_lmiqa.load_scorer(...).run`."""
        return self.scorer(batch_size).run(images)

    def scorer(self, batch_size: int = SCORING_BATCH_SIZE, source: str | None = None, **options):
        """A `Scorer` running this model's graph (`options`: its max_file_bytes)."""
        from keras_lmiqa.models.scorer import Scorer

        by_bytes, by_pixels = self.functions()
        return Scorer(by_bytes, by_pixels, build_metadata(self.spec, self.info), source or self.name,
                      batch_size, owner=self, **options)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "branch": keras.saving.serialize_keras_object(self.branch),
                "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
                "info": self.info}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        branch = keras.saving.deserialize_keras_object(config.pop("branch"))
        preprocessor = keras.saving.deserialize_keras_object(config.pop("preprocessor"))
        return cls(branch, preprocessor, **config)


def image_quality_model(branch, spec: InferenceSpec, info: dict | None = None) -> ImageQualityModel:
    """The standalone model of a trained branch and its run's spec."""
    return ImageQualityModel(branch, ImageQualityPreprocessor(spec, name="preprocessor"), info=info)


def run_info(config, record: dict | None = None) -> dict:
    """Provenance kept in the model for the export metadata: backbone, commit, versions."""
    record = record or {}
    return {"backbone": config.backbone, "commit": record.get("commit"), "versions": record.get("versions", {})}


METADATA_FORMAT = 2  # 2: the window count depends on the image (no fixed "grid_windows")


def build_metadata(spec: InferenceSpec, info: dict) -> dict:
    """What a model says about itself (the export's `lmiqa_metadata.json` without the
    export's own fields): its spec, outputs and provenance."""
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
        "signatures": {BYTES_SIGNATURE: {"inputs": {SIGNATURE_INPUTS[BYTES_SIGNATURE]: "string [batch]"}},
                       PIXELS_SIGNATURE: {"inputs": {SIGNATURE_INPUTS[PIXELS_SIGNATURE]: "uint8 [batch, H, W, 3]"}},
                       "outputs": list(OUTPUT_KEYS)},
        "commit": info.get("commit"),
        "versions": {**info.get("versions", {}), "export": {"tensorflow": tf.__version__,
                                                            "keras": keras.__version__}},
    }


__all__ = ["ImageQualityModel", "ImageQualityPreprocessor", "build_metadata", "check_pixels", "image_quality_model",
           "run_info"]
