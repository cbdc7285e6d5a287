"""vit_s16 through keras-hub's DeiTBackbone: untrained, from a preset folder, saved,
reloaded in a fresh process, exported, trained from the command line."""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa.config import TrainConfig
from keras_lmiqa.errors import ConfigError, ModelError
from keras_lmiqa.models import build_backbone, build_branch, vit

ROOT = os.path.dirname(os.path.dirname(__file__))
# A DeiT small enough for a CPU test: 2 blocks of width 32, 8-px patches.
SMALL = {"patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}
CONFIG = TrainConfig(backbone="vit_s16", weights="none", backbone_options=SMALL, crop_size=32, num_crops=3,
                     num_positives=1, batch_size=4, dropout=0.0, head_units=16, embedding_dim=8, lr=1e-3,
                     warmup_epochs=0.0)


def _crops(seed, shape=(2, 4, 32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _batch(seed=0, size=4, crops=4):
    rng = np.random.default_rng(seed)
    return {
        "crops": tf.constant(_crops(seed, (size, crops, 32, 32, 3))),
        "saliency": tf.constant(rng.random((size, crops), dtype=np.float32)),
        "roles": tf.constant(np.tile(np.array([[0, 1, 2, 2]], np.int32), (size, 1))),
        "quality": tf.constant(rng.random(size, dtype=np.float32)),
        "image_id": tf.range(size),
    }


def _small_deit(image_side=32):
    import keras_hub

    return keras_hub.models.DeiTBackbone(image_shape=(image_side, image_side, 3), **SMALL)


def _standardised(pixels):
    """DeiT's preprocessing written out: /255, ImageNet mean and std."""
    return (pixels / 255.0 - np.array(vit.IMAGENET_MEAN)) / np.array(vit.IMAGENET_STD)


def test_untrained_vit_s16_is_deit_s16_and_small_settings_apply():
    assert vit.VIT_S16 == dict(zip(("patch_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim"),
                                   (16, 12, 6, 384, 1536)))
    full = build_backbone("vit_s16", 32, "none")
    deit = vit.deit_of(full)
    assert (deit.num_layers, deit.hidden_dim, deit.num_heads) == (12, 384, 6)
    # The preset's 21,666,432 parameters, less the positions of 196 - 4 patches (224 -> 32 px).
    assert deit.count_params() == 21_666_432 - (196 - 4) * 384
    small = build_backbone("vit_s16", 32, "none", options=SMALL)
    pixels = np.random.default_rng(0).random((3, 32, 32, 3)).astype("float32") * 255
    features = np.asarray(small(pixels))
    assert features.shape == (3, 32)
    # The class token of DeiT on the standardised pixels: the preprocessing is inside the model.
    tokens = vit.deit_of(small)(_standardised(pixels).astype("float32"))
    np.testing.assert_allclose(features, np.asarray(tokens)[:, 0], atol=1e-5)


def test_backbone_options_are_validated():
    with pytest.raises(ConfigError, match="untrained vit_s16 only"):
        CONFIG.replace(weights="imagenet")
    with pytest.raises(ConfigError, match="not one of patch_size"):
        CONFIG.replace(backbone_options={"depth": 2})
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        CONFIG.replace(backbone_options={**SMALL, "num_heads": 3})
    with pytest.raises(ConfigError, match="crop_size divisible by its patch size 8"):
        build_branch(CONFIG.replace(crop_size=36))


def test_one_step_then_model_keras_reloads_in_a_fresh_process_in_safe_mode(tmp_path):
    from keras_lmiqa.artifacts import save_keras
    from keras_lmiqa.inference_spec import InferenceSpec
    from keras_lmiqa.models.image_quality import image_quality_model, run_info
    from keras_lmiqa.training.step import LMIQATrainer

    trainer = LMIQATrainer(CONFIG, 10)
    deit = vit.deit_of(trainer.student.get_layer("vit_s16_backbone"))
    before = [w.numpy().copy() for w in deit.trainable_weights]
    trainer.make_train_function(tf.distribute.get_strategy())(_batch())
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, deit.trainable_weights))
    path, crops_path = str(tmp_path / "model.keras"), str(tmp_path / "crops.npy")
    spec = InferenceSpec.from_config(CONFIG)
    save_keras(image_quality_model(trainer.student, spec, run_info(CONFIG)), path)
    crops = _crops(1)
    np.save(crops_path, crops)
    expected = np.asarray(trainer.student(crops, training=False)["score"])
    script = (
        "import json, sys, numpy as np\n"
        "from keras_lmiqa.loading import load_branch\n"
        "model = load_branch(sys.argv[1])\n"  # safe_mode=True, checksum verified
        "print(json.dumps(np.asarray(model(np.load(sys.argv[2]), training=False)['score']).tolist()))\n")
    result = subprocess.run([sys.executable, "-c", script, path, crops_path], capture_output=True, text=True,
                            timeout=600, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(json.loads(result.stdout.strip().splitlines()[-1]), expected, atol=1e-5)
    assert np.ptp(expected) > 0


def test_weights_dir_loads_a_keras_hub_preset_folder(tmp_path):
    keras.utils.set_random_seed(3)
    deit = _small_deit()
    folder = str(tmp_path / "preset")
    deit.save_to_preset(folder)  # keras-hub's own API: config.json, model.weights.h5
    pixels = np.random.default_rng(2).random((2, 32, 32, 3)).astype("float32") * 255
    loaded = build_backbone("vit_s16", 32, folder)
    features = np.asarray(loaded(pixels))
    saved = np.asarray(deit(_standardised(pixels).astype("float32")))[:, 0]
    np.testing.assert_allclose(features, saved, atol=1e-5)
    scratch = np.asarray(build_backbone("vit_s16", 32, "none", options=SMALL)(pixels))
    assert np.abs(features - scratch).mean() > 0.1  # the weights arrived
    # The teacher is a copy of the student: same architecture and weights, nothing loaded twice.
    from keras_lmiqa.training.step import LMIQATrainer

    trainer = LMIQATrainer(CONFIG.replace(weights=folder, backbone_options={}), 10)
    for teacher, student in zip(trainer.teacher.weights, trainer.student.weights):
        np.testing.assert_array_equal(teacher.numpy(), student.numpy())
    assert trainer.head_optimizer is not None  # a pretrained backbone: heads at 10x its lr


def test_another_crop_side_resamples_the_position_table(tmp_path):
    deit = _small_deit(32)  # a 4x4 patch grid
    folder = str(tmp_path / "preset")
    deit.save_to_preset(folder)
    larger = vit.deit_of(build_backbone("vit_s16", 48, folder))  # 6x6
    assert tuple(larger.image_shape) == (48, 48, 3)
    old = deit.get_layer("deit_patching_and_embedding").position_embedding.numpy()
    new = larger.get_layer("deit_patching_and_embedding").position_embedding.numpy()
    assert new.shape == (1, 2 + 36, 32)
    np.testing.assert_array_equal(new[:, :2], old[:, :2])  # class and distillation positions kept
    # Bicubic resampling: a linear ramp along the grid stays a ramp over the same range.
    ramp = np.zeros_like(old)
    ramp[0, 2:, 0] = np.tile(np.arange(4, dtype="float32"), 4)
    resampled = vit.resample_positions(ramp, (1, 38, 32))[0, 2:, 0].reshape(6, 6)
    assert np.all(np.diff(resampled, axis=1) > 0) and np.allclose(resampled, resampled[0:1])
    assert abs(resampled.min()) < 0.25 and abs(resampled.max() - 3) < 0.25
    for a, b in zip(larger.weights, deit.weights):  # every other weight is the preset's
        if "position_embedding" not in a.path:
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_imagenet_preset_without_internet_is_one_clear_line(monkeypatch):
    import keras_hub
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com'\nretries exceeded")

    monkeypatch.setattr(keras_hub.models.DeiTBackbone, "from_preset", offline)
    with pytest.raises(ModelError) as caught:
        build_backbone("vit_s16", 224, "imagenet")
    message = str(caught.value)
    assert "\n" not in message and vit.IMAGENET_PRESET in message
    assert "--weights DIR" in message and "--weights none" in message and "ConnectionError" in message
    with pytest.raises(ConfigError, match="not a keras-hub preset folder"):
        build_backbone("vit_s16", 224, ROOT)


def test_keras_hub_loads_only_when_a_vit_is_built():
    script = ("import sys, numpy as np\n"
              "from keras_lmiqa.models import build_branch\n"
              "from keras_lmiqa.config import TrainConfig\n"
              "build_branch(TrainConfig(backbone='tiny', weights='none', crop_size=32))\n"
              "print('keras_hub' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow
def test_train_py_trains_a_vit_on_the_demo_then_the_export_scores_like_the_keras_model(tmp_path):
    """`train.py --backbone vit_s16 --weights none --crop-size 32` on a small demo set
    (the full ViT-S/16 on 2x2 patch grids), then the SavedModel scores image bytes as
    the Keras model scores the same crops."""
    from keras_lmiqa.export import export_model
    from keras_lmiqa.loading import load_branch, read_run_record
    from keras_lmiqa.models.scoring import predict_quality

    run = str(tmp_path / "run")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "train.py", "--dataset", "demo", "--data-root", str(tmp_path / "demo"),
         "--dataset-option", "max_references=4", "--dataset-option", "image_size=64",
         "--backbone", "vit_s16", "--weights", "none", "--crop-size", "32", "--epochs", "1",
         "--steps-per-epoch", "3", "--batch-size", "4", "--output-dir", run],
        capture_output=True, text=True, timeout=2400, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    config, _, _ = read_run_record(os.path.join(run, "config.json"))
    assert (config.backbone, config.weights, config.crop_size) == ("vit_s16", "none", 32)
    print(f"train.py vit_s16 on the demo: {elapsed:.0f} s")

    version = export_model(os.path.join(run, "model.keras"), str(tmp_path / "export"))
    served = tf.saved_model.load(version).signatures["serving_default"]
    images = sorted(os.path.join(dp, f) for dp, _, files in os.walk(str(tmp_path / "demo")) for f in files
                    if f.endswith(".png") and "images" in dp)[:6]
    contents = [open(path, "rb").read() for path in images]
    outputs = {key: value.numpy() for key, value in served(images=tf.constant(contents)).items()}
    model = load_branch(os.path.join(run, "model.keras"))
    expected = predict_quality(model, images, config)
    # The pooled score before the export's [0, 1] guard (a 3-step model may score below 0),
    # then the guarded score itself.
    pooled = (outputs["crop_weights"] * outputs["crop_scores"]).sum(axis=1)
    np.testing.assert_allclose(pooled, expected, atol=1e-4)
    np.testing.assert_allclose(outputs["score"], np.clip(expected, 0.0, 1.0), atol=1e-4)
    assert np.ptp(expected) > 0
