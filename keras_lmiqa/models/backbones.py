"""Backbones by name, each with its own input preprocessing inside the model.

Every backbone maps `(n, S, S, 3)` float pixels in [0, 255] to `(n, features)`.
`weights` is "none", "imagenet" (Keras's own download, or keras-hub's preset for
`vit_s16`; needs internet) or a path: a weights file for a `keras.applications`
backbone (e.g. a Keras 3 `.weights.h5`), a keras-hub preset folder for `vit_s16`
(`keras_lmiqa.models.vit`).
"""

from __future__ import annotations

import os

import keras
from keras import layers

from keras_lmiqa.errors import ConfigError, ModelError
from keras_lmiqa.models.layers import LocalContrastNormalization, ReverseChannels

# name -> (keras.applications constructor name, preprocessing: "tf" [-1, 1], "torch", "caffe" or None (built in)).
APPLICATIONS = {
    "mobilenet_v2": ("MobileNetV2", "tf"),
    "mobilenet_v3_small": ("MobileNetV3Small", None),
    "resnet50": ("ResNet50", "caffe"),
    "efficientnet_v2_b0": ("EfficientNetV2B0", None),
    "convnext_tiny": ("ConvNeXtTiny", None),
}
NAMES = ("tiny", *APPLICATIONS, "vit_s16")


def _preprocess(x, mode: str | None):
    if mode == "tf":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(x)
    if mode == "caffe":  # RGB -> BGR, then the ImageNet BGR channel means subtracted
        x = ReverseChannels(name="rgb_to_bgr")(x)
        return layers.Normalization(mean=[103.939, 116.779, 123.68], variance=[1.0, 1.0, 1.0], name="caffe_means")(x)
    return x


def _tiny(inputs):
    """A small CNN for CPU tests and the demo (about 0.8M parameters).

    Its input is the colour image in [-1, 1] beside its local-contrast-normalised
    version (where distortions show); the first block keeps full resolution so
    pixel-level noise and blur are not aliased away. Batch statistics are
    synchronised across replicas, so a replicated step equals the single-device step.
    """
    colour = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    structure = LocalContrastNormalization(name="local_contrast")(inputs)
    x = layers.Concatenate(name="colour_and_structure")([colour, structure])
    for index, (filters, stride) in enumerate(((32, 1), (48, 2), (96, 2), (160, 2), (224, 2))):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"block{index}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, synchronized=True, name=f"block{index}_bn")(x)
        x = layers.Activation("relu")(x)
    # Mean and max pooling: quality cues are both global (blur) and local (blocking).
    return layers.Concatenate(name="pool")([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])


def build_backbone(name: str, crop_size: int, weights: str = "none", freeze_batchnorm: bool | None = None,
                   options=None) -> keras.Model:
    """Build backbone `name` for `crop_size` crops and load `weights`.

    `freeze_batchnorm` (default: whether `weights` is pretrained) freezes the
    BatchNormalization layers of a `keras.applications` net (inference mode, stored
    statistics): IQA batches are small and distorted, and their statistics pull a
    pretrained net off its features (the usual Keras fine-tuning rule).
    `options`: architecture overrides of an untrained `vit_s16` (config `backbone_options`).
    """
    if name not in NAMES:
        raise ConfigError(f"unknown backbone {name!r}; valid: {', '.join(NAMES)}")
    weights = weights or "none"
    is_path = weights not in ("none", "imagenet")
    if name == "vit_s16" and is_path and not os.path.isdir(weights):
        raise ConfigError(f"--weights folder not found: {weights} (vit_s16 loads a keras-hub preset folder)")
    if name != "vit_s16" and is_path and not os.path.isfile(weights):
        raise ConfigError(f"--weights file not found: {weights}")
    inputs = keras.Input((crop_size, crop_size, 3), name="pixels")
    if name == "vit_s16":
        from keras_lmiqa.models.vit import vit_features  # imports keras_hub

        return keras.Model(inputs, vit_features(inputs, crop_size, weights, options), name=f"{name}_backbone")
    if name == "tiny":
        if weights == "imagenet":
            raise ConfigError(f"backbone {name} has no ImageNet weights in keras.applications; "
                              "use --weights none or PATH")
        model = keras.Model(inputs, _tiny(inputs), name=f"{name}_backbone")
    else:
        constructor, mode = APPLICATIONS[name]
        kwargs = {"include_top": False, "pooling": "avg", "input_shape": (crop_size, crop_size, 3),
                  "weights": "imagenet" if weights == "imagenet" else None}
        if mode is None:
            kwargs["include_preprocessing"] = True
        try:
            application = getattr(keras.applications, constructor)(**kwargs)
        except Exception as error:  # download failures surface as several exception types
            raise ModelError(
                f"could not load ImageNet weights for {name} ({error.__class__.__name__}: {error}); "
                "on a machine without internet pass --weights PATH or --weights none"
            ) from None
        model = keras.Model(inputs, application(_preprocess(inputs, mode)), name=f"{name}_backbone")
        if is_path:
            _load_weights(application, weights, name)
        if freeze_batchnorm is None:
            freeze_batchnorm = weights != "none"
        if freeze_batchnorm:
            for layer in application.layers:
                if isinstance(layer, layers.BatchNormalization):
                    layer.trainable = False
        return model
    if is_path:
        _load_weights(model, weights, name)
    return model


def _load_weights(model: keras.Model, path: str, name: str) -> None:
    try:
        model.load_weights(path)
    except Exception as error:  # h5py/Keras raise ValueError, KeyError, OSError...
        raise ModelError(f"cannot load backbone weights {path} into {name}: {error}") from None
