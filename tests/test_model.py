"""The branch model and its layers: shapes, serialisation, backbones, weights."""

import keras
import numpy as np
import pytest

from keras_lmiqa.config import TrainConfig
from keras_lmiqa.errors import ConfigError, ModelError
from keras_lmiqa.models import build_backbone, build_branch
from keras_lmiqa.models import layers as lmiqa_layers

CONFIG = TrainConfig(backbone="tiny", weights="none", crop_size=32, head_units=16, embedding_dim=8)


def test_branch_outputs_and_importance_weighting():
    model = build_branch(CONFIG)
    crops = np.random.default_rng(0).integers(0, 256, (3, 5, 32, 32, 3), dtype=np.uint8)
    out = {k: np.asarray(v) for k, v in model(crops, training=False).items()}
    assert out["score"].shape == (3,) and out["crop_scores"].shape == (3, 5) and out["embeddings"].shape == (3, 5, 8)
    np.testing.assert_allclose(out["crop_weights"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["score"], (out["crop_weights"] * out["crop_scores"]).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["embeddings"], axis=-1), 1.0, rtol=1e-4)
    # The crop axis is dynamic: the same model scores 12 grid crops.
    assert model(np.zeros((1, 12, 32, 32, 3), np.uint8))["crop_scores"].shape == (1, 12)


@pytest.mark.parametrize("layer", [
    lmiqa_layers.MergeCropAxis(), lmiqa_layers.Squeeze(), lmiqa_layers.ReverseChannels(),
    lmiqa_layers.ClassTokenOutput(), lmiqa_layers.LocalContrastNormalization(sigma=1.5, radius=2),
])
def test_layers_round_trip_their_config(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_name(layer.__class__).startswith("keras_lmiqa>")


def test_local_contrast_normalisation_removes_brightness_and_contrast():
    rng = np.random.default_rng(1)
    texture = rng.random((1, 16, 16, 1)).astype("float32") * 50
    layer = lmiqa_layers.LocalContrastNormalization(epsilon=1e-3)
    a = np.asarray(layer(texture + 20))
    b = np.asarray(layer(texture * 3 + 100))
    np.testing.assert_allclose(a[:, 3:-3, 3:-3], b[:, 3:-3, 3:-3], atol=2e-2)


@pytest.mark.parametrize("backbone", ["tiny", "vit_s16"])
def test_keras_file_round_trip_predicts_the_same(tmp_path, backbone):
    small_vit = {"patch_size": 8, "num_layers": 1, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}
    model = build_branch(CONFIG.replace(backbone=backbone, backbone_options=small_vit if backbone == "vit_s16" else {}))
    crops = np.random.default_rng(2).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(restored(crops)["score"]), np.asarray(model(crops)["score"]), atol=1e-6)


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])  # vit_s16: tests/test_vit.py
def test_backbones_build_and_map_pixels_to_features(name):
    backbone = build_backbone(name, 32, "none")
    features = np.asarray(backbone(np.random.default_rng(3).random((2, 32, 32, 3)).astype("float32") * 255))
    assert features.shape[0] == 2 and features.ndim == 2 and np.isfinite(features).all()


def test_local_contrast_normalisation_stays_float32_under_mixed_precision():
    """Under mixed_float16, E[x^2] - E[x]^2 of 0-255 pixels in float16 is mostly rounding
    error (mean 0.2, max ~9 against float32); the layer of the tiny backbone computes in float32."""
    import skimage.data

    pixels = skimage.data.astronaut()[::4, ::4][None].astype("float32")  # a real photo, 128x128
    reference = np.asarray(lmiqa_layers.LocalContrastNormalization()(pixels))
    float16 = np.asarray(lmiqa_layers.LocalContrastNormalization(dtype="mixed_float16")(pixels)).astype("float32")
    assert np.abs(float16 - reference).mean() > 0.05  # what a float16 layer gets wrong
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        backbone = build_backbone("tiny", 128, "none")
        layer = backbone.get_layer("local_contrast")
        assert layer.compute_dtype == "float32"
        output = np.asarray(keras.Model(backbone.input, layer.output)(pixels)).astype("float32")
    finally:
        keras.config.set_dtype_policy(previous)
    np.testing.assert_allclose(output, reference, atol=1e-4)


def test_weights_path_loads_into_the_backbone(tmp_path):
    source = build_backbone("mobilenet_v2", 32, "none")
    path = str(tmp_path / "mnv2.weights.h5")
    source.layers[-1].save_weights(path)  # the keras.applications model inside
    loaded = build_backbone("mobilenet_v2", 32, path)
    x = np.random.default_rng(4).random((1, 32, 32, 3)).astype("float32") * 255
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(source(x)), atol=1e-5)


def test_weight_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        build_backbone("mobilenet_v2", 32, str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        build_backbone("tiny", 32, "imagenet")
    wrong = tmp_path / "tiny.weights.h5"
    build_backbone("tiny", 32, "none").save_weights(str(wrong))
    with pytest.raises(ModelError, match="cannot load backbone weights"):
        build_backbone("mobilenet_v2", 32, str(wrong))


def test_pretrained_backbone_batchnorm_is_frozen_unless_asked(tmp_path):
    path = str(tmp_path / "backbone.weights.h5")
    build_backbone("mobilenet_v2", 32, "none").layers[-1].save_weights(path)
    pixels = np.random.default_rng(4).random((4, 32, 32, 3)).astype("float32") * 255
    for freeze, backbone in ((True, build_backbone("mobilenet_v2", 32, path)),
                             (False, build_backbone("mobilenet_v2", 32, path, freeze_batchnorm=False))):
        norms = [layer for layer in backbone.layers[-1].layers if isinstance(layer, keras.layers.BatchNormalization)]
        before = [np.asarray(layer.moving_mean).copy() for layer in norms]
        backbone(pixels, training=True)
        moved = sum(not np.allclose(b, np.asarray(layer.moving_mean)) for b, layer in zip(before, norms))
        assert all(layer.trainable != freeze for layer in norms)
        assert (moved == 0) == freeze
    scratch = build_backbone("mobilenet_v2", 32, "none")
    assert all(layer.trainable for layer in scratch.layers[-1].layers
               if isinstance(layer, keras.layers.BatchNormalization))
    # The teacher branch is a copy of the student (config and weights): its BatchNorm stays frozen.
    from keras_lmiqa.training.step import copy_branch

    teacher = copy_branch(build_branch(CONFIG.replace(backbone="mobilenet_v2", weights=path)), "teacher")
    norms = [layer for layer in teacher.get_layer("mobilenet_v2_backbone").layers[-1].layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
