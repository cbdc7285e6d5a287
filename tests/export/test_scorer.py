"""load_scorer: the same scores from a model.keras, a version folder and an export folder."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from keras_lmiqa.errors import ImageError, ModelError
from keras_lmiqa.models.scoring import predict_quality
from keras_lmiqa.scorer import load_scorer

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def scorers(trained_run, exported):
    base, version_dir = exported
    return {
        "keras": load_scorer(os.path.join(trained_run, "model.keras")),
        "version": load_scorer(version_dir),
        "base": load_scorer(base),
    }


@pytest.fixture(scope="module")
def mixed(image_files):
    """Paths, bytes and decoded arrays, mixed in one list."""
    with open(image_files[1], "rb") as handle:
        contents = handle.read()
    with open(image_files[3], "rb") as handle:
        pixels = tf.io.decode_image(handle.read(), channels=3).numpy()
    return [image_files[0], contents, pixels, *image_files[4:]]


def test_all_sources_give_the_same_scores(scorers, image_files, reference, mixed):
    model, config, _ = reference
    expected = predict_quality(model, image_files, config)
    for name, scorer in scorers.items():
        scores = scorer.score(image_files)
        assert scores.dtype == np.float32 and scores.shape == (len(image_files),), name
        np.testing.assert_allclose(scores, expected, atol=TOLERANCE, err_msg=name)
    results = {name: scorer.score(mixed) for name, scorer in scorers.items()}
    np.testing.assert_allclose(results["keras"], results["version"], atol=TOLERANCE)
    np.testing.assert_allclose(results["base"], results["version"], atol=TOLERANCE)
    alone = predict_quality(model, [image_files[3]], config)[0]  # the array, scored on its own
    np.testing.assert_allclose(results["base"][2], alone, atol=TOLERANCE)


def test_score_mos_and_explain(scorers, image_files, reference):
    _, config, scale = reference
    scorer = scorers["base"]
    scores = scorer.score(image_files[:3])
    np.testing.assert_allclose(scorer.score_mos(image_files[:3]), scale.to_mos(scores.astype(np.float64)), atol=1e-5)
    explained = scorer.explain(image_files[0])
    from keras_lmiqa.crops import grid_window_count

    count = grid_window_count(110, 150, config.crop_size, config.scales, config.grid_size)  # rgb.png
    assert explained["windows"].shape == (count, 4)
    assert explained["crop_scores"].shape == explained["crop_weights"].shape == (count,)
    assert explained["score"] == pytest.approx(float(np.sum(explained["crop_weights"] * explained["crop_scores"])),
                                               abs=1e-5)
    height, width = 110, 150  # rgb.png
    assert (explained["windows"][:, 2] <= height + 1e-3).all() and (explained["windows"][:, 3] <= width + 1e-3).all()
    assert scorers["keras"].explain(image_files[0])["score"] == pytest.approx(explained["score"], abs=TOLERANCE)


def test_bad_inputs_name_the_image(scorers, image_files, tmp_path):
    scorer = scorers["version"]
    with pytest.raises(ImageError, match=r"images\[1\] \(bytes\).*is empty"):
        scorer.score([image_files[0], b""])
    with pytest.raises(ImageError, match="cannot read image"):
        scorer.score([str(tmp_path / "missing.png")])
    with pytest.raises(ImageError, match="uint8"):
        scorer.score([np.zeros([8, 8, 3], np.float32)])
    with pytest.raises(ImageError, match="list"):
        scorer.score(image_files[0])
    assert scorer.score([]).shape == (0,)


def test_bad_model_paths(trained_run, tmp_path):
    model = tmp_path / "model.keras"
    shutil.copy(os.path.join(trained_run, "config.json"), tmp_path / "config.json")
    model.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="model.keras"):
        load_scorer(str(model))
    with pytest.raises(ModelError, match="not found"):
        load_scorer(str(tmp_path / "nothing"))
    (tmp_path / "empty_exports").mkdir()
    with pytest.raises(ModelError, match="no SavedModel"):
        load_scorer(str(tmp_path / "empty_exports"))
