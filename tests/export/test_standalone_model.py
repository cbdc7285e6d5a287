"""A run's model.keras stands alone: images in, the export's scores out, no config.json needed."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_lmiqa
from keras_lmiqa import artifacts, loading
from keras_lmiqa.constants import OUTPUT_KEYS
from keras_lmiqa.errors import ImageError, ModelError
from keras_lmiqa.inference_spec import InferenceSpec

TOLERANCE = 1e-5
# The fresh process imports the keras_lmiqa these tests import (a worktree's, when run from one).
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(keras_lmiqa.__file__)))

# Run in a fresh process, in a folder holding model.keras and nothing else: images come
# in on stdin (an .npz), the outputs go out on stdout as JSON.
FRESH_PROCESS = """
import io, json, sys
import numpy as np
import keras
import keras_lmiqa

model = keras.saving.load_model("model.keras")
arrays = np.load(io.BytesIO(sys.stdin.buffer.read()))
same_size = model(arrays["batch"])
mixed = model.score_images([arrays["first"], arrays["second"], arrays["jpeg"].tobytes()])
print(json.dumps({"same_size": {k: np.asarray(v).tolist() for k, v in same_size.items()},
                  "mixed": {k: np.asarray(v).tolist() for k, v in mixed.items()},
                  "class": type(model).__name__}))
"""


def _decoded(path: str) -> np.ndarray:
    with open(path, "rb") as handle:
        return tf.io.decode_image(handle.read(), channels=3, expand_animations=False).numpy()


def _png(pixels: np.ndarray) -> bytes:
    return tf.io.encode_png(pixels).numpy()


def _assert_outputs_close(got: dict, expected: dict) -> None:
    assert set(got) == set(OUTPUT_KEYS)
    for key in OUTPUT_KEYS:
        np.testing.assert_allclose(np.asarray(got[key], np.float32), np.asarray(expected[key]), atol=TOLERANCE,
                                   err_msg=key)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[1])


@pytest.fixture(scope="module")
def model(trained_run):
    import keras

    return keras.saving.load_model(os.path.join(trained_run, "model.keras"))


@pytest.fixture(scope="module")
def inputs(image_files):
    """Three photos cut to one size (a batch), two of different sizes, and a JPEG file's bytes."""
    photos = [_decoded(path) for path in image_files[:3]]  # 150x110, 97x131, 80x60 (W x H)
    batch = np.stack([photo[:56, :72] for photo in photos])
    jpeg = next(path for path in image_files if path.endswith(".jpg"))
    with open(jpeg, "rb") as handle:
        contents = handle.read()
    return {"batch": batch, "first": photos[0], "second": photos[1], "jpeg": contents}


def test_fresh_process_loads_model_keras_alone_and_gives_serving_default_scores(trained_run, loaded, inputs,
                                                                                 tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(os.path.join(trained_run, "model.keras"), alone / "model.keras")
    payload = io.BytesIO()
    np.savez(payload, batch=inputs["batch"], first=inputs["first"], second=inputs["second"],
             jpeg=np.frombuffer(inputs["jpeg"], np.uint8))
    env = {**os.environ, "PYTHONPATH": PACKAGE_PARENT, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS], cwd=alone, input=payload.getvalue(),
                          capture_output=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert sorted(os.listdir(alone)) == ["model.keras"]  # nothing else was there, nothing was written
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert result["class"] == "ImageQualityModel"

    serve = loaded.signatures["serving_default"]
    same_size = serve(images=tf.constant([_png(image) for image in inputs["batch"]]))
    _assert_outputs_close(result["same_size"], same_size)
    mixed = serve(images=tf.constant([_png(inputs["first"]), _png(inputs["second"]), inputs["jpeg"]]))
    _assert_outputs_close(result["mixed"], mixed)
    assert len(set(np.round(result["same_size"]["score"], 6))) == 3  # three photos, three scores


def test_model_keras_holds_the_runs_inference_spec(model, trained_run):
    config, scale, record = loading.read_run_record(os.path.join(trained_run, "config.json"))
    metrics = artifacts.read_json(os.path.join(trained_run, "metrics.json"))
    assert model.spec == InferenceSpec.from_config(config, scale, record["dataset"]["name"], metrics["export_branch"])
    assert model.spec.export_branch in ("teacher", "student")
    assert InferenceSpec.from_dict(model.spec.to_dict()) == model.spec
    assert model.info["backbone"] == config.backbone and model.info["versions"] == record["versions"]


def test_export_cli_works_with_model_keras_alone(trained_run, loaded, exported, inputs, tmp_path):
    from keras_lmiqa.cli.export_cmd import main

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(os.path.join(trained_run, "model.keras"), alone / "model.keras")
    base = tmp_path / "exports"
    assert main(["--model", str(alone / "model.keras"), "--export-dir", str(base)]) == 0  # what export.py runs
    assert sorted(os.listdir(alone)) == ["model.keras"]
    version = str(base / "1")
    metadata, reference = loading.read_metadata(version), loading.read_metadata(exported[1])
    for key in ("dataset", "score", "crops", "model", "commit"):
        assert metadata[key] == reference[key], key
    request = tf.constant([_png(image) for image in inputs["batch"]] + [inputs["jpeg"]])
    again = tf.saved_model.load(version).signatures["serving_default"](images=request)
    _assert_outputs_close({k: v.numpy() for k, v in again.items()},
                          loaded.signatures["serving_default"](images=request))


def test_a_file_of_the_branch_alone_is_refused_by_name(model, tmp_path):
    from keras_lmiqa.scorer import load_scorer

    path = str(tmp_path / "model.keras")
    artifacts.save_keras(model.branch, path)  # a crop model, not an ImageQualityModel
    with pytest.raises(ModelError, match=r"model.keras is not an LML-IQA model \(a Functional"):
        load_scorer(path)


def test_explicit_config_that_disagrees_with_the_model_is_refused(trained_run, tmp_path):
    record = artifacts.read_json(os.path.join(trained_run, "config.json"))
    record["config"]["grid_size"] += 1
    other = tmp_path / "config.json"
    artifacts.write_json(str(other), record)
    with pytest.raises(ModelError, match=r"disagrees with the settings saved in .*model.keras \(grid_size\)"):
        loading.load_image_model(os.path.join(trained_run, "model.keras"), str(other))


@pytest.mark.parametrize("make_input, message", [
    (lambda batch: batch.astype(np.float32), r"images must be uint8 \[batch, height, width, 3\].*got float32"),
    (lambda batch: batch[0], r"images must be uint8 \[batch, height, width, 3\].*got uint8 \[56, 72, 3\]"),
    (lambda batch: batch[..., :1], r"got uint8 \[3, 56, 72, 1\]"),
    (lambda batch: [batch[0], batch[1]], r"for a list of images of different sizes .* model.score_images"),
])
def test_bad_input_gets_a_clear_error(model, inputs, make_input, message):
    with pytest.raises(ImageError, match=message) as caught:
        model(make_input(inputs["batch"]))
    assert "\n" not in str(caught.value)


def test_spec_refuses_a_changed_or_incomplete_record(model):
    saved = model.spec.to_dict()
    with pytest.raises(ModelError, match="window_rule 'other' is not this version's"):
        InferenceSpec.from_dict({**saved, "window_rule": "other"})
    with pytest.raises(ModelError, match="lacks field.* grid_size"):
        InferenceSpec.from_dict({k: v for k, v in saved.items() if k != "grid_size"})
    with pytest.raises(ModelError, match=r"crop_size must be an integer in \[16, 1024\], got 0"):
        InferenceSpec.from_dict({**saved, "crop_size": 0})
