"""The SavedModel export: signatures, exactness against predict_quality, versions, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa import export, image_io, loading
from keras_lmiqa.constants import version_dirs
from keras_lmiqa.errors import ConfigError, ModelError
from keras_lmiqa.models.scoring import predict_quality

TOLERANCE = 1e-5


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[1])


@pytest.fixture(scope="module")
def served(loaded, image_files):
    """serving_default outputs for all test images in one request."""
    out = loaded.signatures["serving_default"](images=tf.constant([_read(p) for p in image_files]))
    return {key: value.numpy() for key, value in out.items()}


def test_serving_default_matches_predict_quality(served, image_files, reference):
    model, config, _ = reference
    expected = predict_quality(model, image_files, config)
    windows = served["crop_windows"]
    count = windows.shape[1]  # the longest window list of the request
    assert served["score"].shape == (len(image_files),) and served["score"].dtype == np.float32
    assert served["crop_scores"].shape == served["crop_weights"].shape == (len(image_files), count)
    valid = windows[..., 2] > windows[..., 0]
    assert (served["crop_weights"][~valid] == 0).all() and valid[:, 0].all()
    np.testing.assert_allclose(served["score"], expected, atol=TOLERANCE)
    np.testing.assert_allclose(served["crop_weights"].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose((served["crop_weights"] * served["crop_scores"]).sum(-1), served["score"], atol=1e-5)
    assert served["score"].std() > 0  # different images, different scores


def test_mos_is_the_dataset_scale_mapping(served, reference, exported):
    _, _, scale = reference
    np.testing.assert_allclose(served["mos"], scale.to_mos(served["score"].astype(np.float64)), rtol=1e-6, atol=1e-5)
    assert loading.read_metadata(exported[1])["dataset"]["scale"] == scale.to_dict()


def test_score_pixels_matches_serving_default(loaded, image_files, toy_dataset):
    pixels_fn = loaded.signatures["score_pixels"]
    for path in image_files[:4]:  # one at a time: each image's own size
        pixels = image_io.decode_image(_read(path), 10**8)  # as the export decodes (JPEGs: accurate IDCT)
        alone = loaded.signatures["serving_default"](images=tf.constant([_read(path)]))
        by_pixels = pixels_fn(pixels=pixels[tf.newaxis])
        np.testing.assert_allclose(by_pixels["score"].numpy(), alone["score"].numpy(), atol=TOLERANCE)
        np.testing.assert_allclose(by_pixels["crop_weights"].numpy(), alone["crop_weights"].numpy(), atol=TOLERANCE)
    folder = os.path.dirname(toy_dataset)  # a batch of same-size images
    same_size = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".png"))[:5]
    batch = tf.stack([tf.io.decode_png(_read(p), channels=3) for p in same_size])
    by_pixels = pixels_fn(pixels=batch)["score"].numpy()
    by_bytes = loaded.signatures["serving_default"](images=tf.constant([_read(p) for p in same_size]))["score"]
    np.testing.assert_allclose(by_pixels, by_bytes.numpy(), atol=TOLERANCE)


def test_score_does_not_depend_on_the_other_images_of_the_request(loaded, served, image_files):
    # Each image is cut and scored on its own (no padding to the batch's largest), so
    # its outputs are bit-identical alone and in any request.
    signature = loaded.signatures["serving_default"]
    for index, path in enumerate(image_files):
        alone = signature(images=tf.constant([_read(path)]))
        count = alone["crop_scores"].shape[1]  # its own windows; the request's longer lists are padding
        assert served["score"][index] == alone["score"].numpy()[0], path
        for key in ("crop_scores", "crop_weights", "crop_windows", "crop_saliency"):
            np.testing.assert_array_equal(served[key][index, :count], alone[key].numpy()[0], err_msg=f"{path} {key}")
            assert not served[key][index, count:].any(), f"{path} {key}: padding windows are empty"
    reordered = signature(images=tf.constant([_read(p) for p in image_files[::-1]]))["score"].numpy()
    np.testing.assert_array_equal(reordered[::-1], served["score"])


@pytest.mark.parametrize("contents, message", [
    (b"", "images[1] is empty"),
    (b"this is not an image", "images[1] is not a JPEG, PNG, GIF or BMP image"),
])
def test_bad_images_fail_the_request(loaded, image_files, contents, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        loaded.signatures["serving_default"](images=tf.constant([_read(image_files[0]), contents]))


def test_empty_request_fails(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="images holds no image"):
        loaded.signatures["serving_default"](images=tf.constant([], tf.string))


def test_truncated_image_fails_the_request(loaded, image_files):
    truncated = _read(image_files[0])[:200]
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_default"](images=tf.constant([truncated]))


def test_image_above_the_pixel_limit_fails(loaded, reference):
    _, config, _ = reference
    side = int(np.ceil(np.sqrt(config.max_pixels))) + 1  # a flat PNG: small file, too many pixels
    big = tf.io.encode_png(tf.zeros([side, side, 1], tf.uint8)).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError, match="image exceeds the pixel limit"):
        loaded.signatures["serving_default"](images=tf.constant([big]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="pixels is empty"):
        loaded.signatures["score_pixels"](pixels=tf.zeros([1, 0, 5, 3], tf.uint8))


def test_warmup_request_is_a_valid_prediction_log(loaded, exported):
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(exported[1], "assets.extra", "tf_serving_warmup_requests")
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    assert len(records) == 1
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    request = log.predict_log.request
    assert request.model_spec.name == "lmiqa" and request.model_spec.signature_name == "serving_default"
    images = tf.make_ndarray(request.inputs["images"])
    assert images.shape == (1,)
    assert tf.io.decode_png(images[0]).shape[-1] == 3
    score = loaded.signatures["serving_default"](images=tf.constant(images))["score"].numpy()
    assert score.shape == (1,) and np.isfinite(score).all()


def test_metadata_file_and_module_function(loaded, exported, reference):
    _, config, _ = reference
    metadata = loading.read_metadata(exported[1])
    assert metadata["crops"]["grid_size"] == config.grid_size and "native scale tiles" in metadata["crops"]["windows"]
    assert metadata["crops"]["crop_size"] == config.crop_size
    assert metadata["dataset"]["name"] == "csv" and metadata["version"] == 1
    assert metadata["score"]["higher_better"] is True and "exported_at" in metadata
    assert {"tensorflow", "keras", "keras_lmiqa", "export"} <= set(metadata["versions"])
    in_graph = json.loads(loaded.metadata()["json"].numpy())
    assert {key: metadata[key] for key in in_graph} == in_graph
    with pytest.raises(ModelError, match="no LML-IQA metadata"):
        loading.read_metadata(os.path.dirname(exported[1]))


def test_tfsm_layer_serves_the_export(exported, loaded, image_files):
    import keras

    # The same request both ways: a request's images are padded to its largest one.
    request = tf.constant([_read(p) for p in image_files[:3]])
    layer = keras.layers.TFSMLayer(exported[1], call_endpoint="serving_default")
    expected = loaded.signatures["serving_default"](images=request)["score"].numpy()
    np.testing.assert_allclose(np.asarray(layer(request)["score"]), expected, atol=TOLERANCE)


def test_versions_overwrite_and_cli(exported, trained_run, tmp_path, capsys):
    from keras_lmiqa.cli import main as lmiqa_main

    base = str(tmp_path / "lmiqa")
    shutil.copytree(exported[1], os.path.join(base, "1"))
    os.makedirs(os.path.join(base, ".tmp-9-leftover"))  # a killed export's: not a version, removed by the next
    os.makedirs(os.path.join(base, "notes"))
    model = os.path.join(trained_run, "model.keras")
    assert loading.latest_version(base) == 1

    second = export.export_model(model, base)
    assert second == os.path.join(base, "2") and loading.latest_version(base) == 2
    assert version_dirs(base) == {1: os.path.join(base, "1"), 2: second}
    assert sorted(os.listdir(base)) == ["1", "2", "notes"]  # the leftover removed, no temp dir of ours left
    assert os.stat(second).st_mode & 0o755 == 0o755

    with pytest.raises(ModelError, match="version 1 already exists"):
        export.export_model(model, base, version=1)
    assert lmiqa_main(["export", "--model", model, "--export-dir", base, "--version", "2"]) == 2
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="positive integer"):
        export.export_model(model, base, version=0)

    before = loading.read_metadata(second)
    with open(os.path.join(second, "stale-marker"), "w") as handle:
        handle.write("old")
    assert lmiqa_main(["export", "--model", model, "--export-dir", base, "--version", "2", "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == second
    assert not os.path.exists(os.path.join(second, "stale-marker"))
    assert loading.read_metadata(second)["version"] == before["version"] == 2
    assert sorted(os.listdir(base)) == ["1", "2", "notes"]


def test_missing_config_and_corrupt_model(trained_run, tmp_path):
    from keras_lmiqa import artifacts

    run = tmp_path / "run"
    run.mkdir()
    model = str(run / "model.keras")
    # The branch alone is not a model file keras_lmiqa reads.
    artifacts.save_keras(loading.load_branch(os.path.join(trained_run, "model.keras")), model)
    with pytest.raises(ModelError, match="not an LML-IQA model"):
        export.export_model(model, str(tmp_path / "out"))
    shutil.copy(os.path.join(trained_run, "config.json"), run / "config.json")
    with open(model, "r+b") as handle:  # a partial copy
        handle.truncate(os.path.getsize(model) // 2)
    with pytest.raises(ModelError, match="cannot load model .*model.keras"):
        export.export_model(model, str(tmp_path / "out"))
    with open(model, "wb") as handle:
        handle.write(b"not a zip file")
    with pytest.raises(ModelError, match=str(model)):
        export.export_model(model, str(tmp_path / "out"))
    with pytest.raises(ModelError, match="model file not found"):
        export.export_model(str(run / "missing.keras"), str(tmp_path / "out"), config_path=str(run / "config.json"))
    in_memory = loading.load_image_model(os.path.join(trained_run, "model.keras"))
    with pytest.raises(ModelError, match="config_path=.*config.json.*model file only"):
        export.export_model(in_memory, str(tmp_path / "out"), config_path=str(run / "config.json"))
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


FRESH_PROCESS = """
import json, sys
import keras
import keras_lmiqa
from keras_lmiqa.loading import read_run_record
from keras_lmiqa.models.scoring import predict_quality
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
config, _, _ = read_run_record(sys.argv[2])
print(json.dumps(predict_quality(model, sys.argv[3:], config).tolist()))
"""


def test_fresh_process_load_model_gives_the_export_scores(trained_run, image_files, served):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, os.path.join(trained_run, "model.keras"),
         os.path.join(trained_run, "config.json"), *image_files],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(scores, served["score"], atol=TOLERANCE)
