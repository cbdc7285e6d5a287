"""ViT-S/16 from keras-hub: `keras_hub.models.DeiTBackbone`, the paper's backbone class.

`weights`:
  - "imagenet": the keras-hub preset `deit_small_distilled_patch16_224_imagenet`
    (DeiT-S/16 distilled, ImageNet-1k, 21.7M parameters; downloaded from Kaggle once);
  - a folder: a local keras-hub preset, what `backbone.save_to_preset(folder)` writes;
  - "none": the same architecture untrained (`architecture` overrides its size, for
    tests and CPU-sized runs).

The preset's preprocessing (pixels / 255, then ImageNet mean/std) runs inside the model
as a `Normalization` layer, so training, `model.keras` and the exported SavedModel see
the same inputs. DeiTBackbone's position table is sized for its `image_shape` and it
does not interpolate; a crop side other than the preset's (224) gets the preset's
patch position embeddings resampled bicubically to the new patch grid at load time
(the DeiT/timm fine-tuning recipe), the class and distillation positions unchanged.

The crop embedding is the class token's final features. The distillation token was
trained to imitate a CNN teacher's ImageNet class predictions (the most semantic
signal of the two); the class token is the one DEIQT and LML-IQA read from their ViT,
and it keeps this code valid for presets without a distillation token.

keras_hub is imported here only, when a vit_s16 is built: the rest of the product
does not pay its import time.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import layers

from keras_lmiqa.errors import ConfigError, ModelError
from keras_lmiqa.models.layers import ClassTokenOutput

IMAGENET_PRESET = "deit_small_distilled_patch16_224_imagenet"
# DeiT-S/16 (Touvron et al., ICML 2021): the geometry of IMAGENET_PRESET.
VIT_S16 = {"patch_size": 16, "num_layers": 12, "num_heads": 6, "hidden_dim": 384, "intermediate_dim": 1536}
# ImageNet mean/std on [0, 1] pixels: DeiT's training normalisation, held by its presets'
# image converter. Used where a preset folder has no converter (a backbone's
# save_to_preset writes none) and for untrained models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LEADING_TOKENS = 2  # DeiT's class and distillation tokens, before the patch tokens


def vit_features(pixels, crop_size: int, weights: str, architecture=None):
    """`(n, S, S, 3)` pixels in [0, 255] -> `(n, hidden_dim)` class-token features."""
    import keras_hub  # lazy: see the module docstring

    architecture = dict(architecture or {})
    if weights == "none":
        geometry = {**VIT_S16, **architecture}
        _check_divisible(crop_size, geometry["patch_size"])
        backbone = keras_hub.models.DeiTBackbone(image_shape=(crop_size, crop_size, 3), **geometry)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        if architecture:
            raise ConfigError("backbone_options apply to an untrained vit_s16 only (--weights none): "
                              "a preset fixes its architecture")
        source = IMAGENET_PRESET if weights == "imagenet" else weights
        backbone = _load_preset(keras_hub, source, crop_size)
        mean, std = _preset_normalisation(keras_hub, source)
    # Float32 whatever the policy: float16 steps of 0.125 near 255 would blur the input.
    x = layers.Normalization(mean=[255.0 * m for m in mean], variance=[(255.0 * s) ** 2 for s in std],
                             dtype="float32", name="preset_normalisation")(pixels)
    return ClassTokenOutput(name="class_token")(backbone(x))


def deit_of(backbone: keras.Model):
    """The DeiTBackbone inside a built `vit_s16` backbone model (its name is the preset's)."""
    import keras_hub

    return next(layer for layer in backbone.layers if isinstance(layer, keras_hub.models.DeiTBackbone))


def _check_divisible(crop_size: int, patch_size) -> None:
    patch = patch_size[0] if isinstance(patch_size, (tuple, list)) else patch_size
    if crop_size % patch:
        raise ConfigError(f"vit_s16 needs crop_size divisible by its patch size {patch}, got {crop_size}")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _load_preset(keras_hub, source: str, crop_size: int):
    """The preset's DeiTBackbone with its weights, for `crop_size` crops."""
    if source != IMAGENET_PRESET and not os.path.isfile(os.path.join(source, "config.json")):
        raise ConfigError(f"--weights {source} is not a keras-hub preset folder (no config.json); "
                          "pass imagenet, none or a folder written by save_to_preset")
    try:
        # The run's dtype policy (mixed precision included), not the one saved with the preset.
        native = keras_hub.models.DeiTBackbone.from_preset(source, dtype=keras.config.dtype_policy().name)
    except Exception as error:  # kagglehub, h5py and keras-hub raise many types
        if source == IMAGENET_PRESET:
            raise ModelError(f"cannot load keras-hub preset {IMAGENET_PRESET} ({_first_line(error)}); without "
                             "internet pass --weights DIR (a keras-hub preset folder) or --weights none") from None
        raise ModelError(f"cannot load keras-hub DeiT preset {source}: {_first_line(error)}") from None
    _check_divisible(crop_size, native.patch_size)
    if tuple(native.image_shape[:2]) == (crop_size, crop_size):
        return native
    resized = keras_hub.models.DeiTBackbone.from_config(
        {**native.get_config(), "image_shape": (crop_size, crop_size, 3)})
    for target, value in zip(resized.weights, native.get_weights()):
        if target.shape != value.shape:  # only the position table depends on the image side
            value = resample_positions(value, tuple(target.shape))
        target.assign(value)
    return resized


def resample_positions(table: np.ndarray, shape: tuple) -> np.ndarray:
    """`(1, 2 + g*g, d)` position embeddings -> `shape` `(1, 2 + G*G, d)`: the patch part
    resampled bicubically on its square grid, the class/distillation rows kept."""
    dim = table.shape[-1]
    old, new = (round((n - LEADING_TOKENS) ** 0.5) for n in (table.shape[1], shape[1]))
    grid = table[:, LEADING_TOKENS:].reshape(1, old, old, dim)
    grid = keras.ops.image.resize(grid, (new, new), interpolation="bicubic", antialias=new < old)
    patches = keras.ops.convert_to_numpy(grid).reshape(1, new * new, dim)
    return np.concatenate([table[:, :LEADING_TOKENS], patches], axis=1).astype(table.dtype)


def _preset_normalisation(keras_hub, source: str):
    """(mean, std) on [0, 1] pixels from the preset's image converter, when it has one."""
    if source != IMAGENET_PRESET and not os.path.isfile(os.path.join(source, "image_converter.json")):
        return IMAGENET_MEAN, IMAGENET_STD
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(source)
    except Exception as error:
        raise ModelError(f"cannot load the image converter of keras-hub preset {source}: "
                         f"{_first_line(error)}") from None
    # The converter computes x * scale + offset on [0, 255] pixels: mean = -offset / scale.
    scale = np.broadcast_to(np.asarray(1.0 if converter.scale is None else converter.scale, "float64"), (3,))
    offset = np.broadcast_to(np.asarray(0.0 if converter.offset is None else converter.offset, "float64"), (3,))
    mean = tuple(float(v) for v in -offset / scale / 255.0)
    std = tuple(float(v) for v in 1.0 / scale / 255.0)
    return mean, std
