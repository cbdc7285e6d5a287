"""Train (the shared `trained_run`) -> `export_model` -> serve -> score, end to end."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from serving_helpers import SERVER_KINDS, reference_scores, start_server

from keras_lmiqa.serving import Client, RestClient


@pytest.fixture(scope="module")
def real_export(trained_run, tmp_path_factory) -> tuple[str, str]:
    from keras_lmiqa.export import export_model

    base = str(tmp_path_factory.mktemp("real_exports") / "lmiqa")
    return base, export_model(os.path.join(trained_run, "model.keras"), base)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_served_export_scores_equal_in_process_signature(kind, real_export, photo_paths, tmp_path, capsys):
    base, version_dir = real_export
    contents = [open(p, "rb").read() for p in photo_paths]
    expected = reference_scores(version_dir, contents)  # one call, as one request (same padding)
    running = start_server(kind, base)
    try:
        with Client(running.grpc_target, timeout=60) as client:
            rows = client.score_details(photo_paths)
            meta = client.metadata()
        rest = RestClient(running.rest_url, timeout=60).score(photo_paths)
    finally:
        running.stop()
    scores = np.array([r["score"] for r in rows], np.float32)
    np.testing.assert_allclose(scores, expected["score"], atol=1e-5)
    np.testing.assert_allclose(rest, expected["score"], atol=1e-5)
    np.testing.assert_allclose([r["mos"] for r in rows], expected["mos"], atol=1e-4)
    grid = expected["crop_scores"].shape[1]
    assert rows[0]["crop_windows"].shape == (grid, 4)
    np.testing.assert_allclose(rows[0]["crop_weights"].sum(), 1.0, atol=1e-5)
    assert meta["version"] == int(os.path.basename(version_dir))
    assert {"crop_windows", "crop_saliency"} <= set(meta["signatures"]["serving_default"]["outputs"])
    assert meta["signatures"]["score_pixels"]["inputs"]["pixels"]["dtype"] == "DT_UINT8"
    if kind == "local":  # the in-process CLI path gives the same scores
        from keras_lmiqa.cli import main

        out = tmp_path / "local.json"
        assert main(["score", "--model", base, *photo_paths, "--json", str(out)]) == 0
        local = json.loads(out.read_text())
        assert [row["path"] for row in local] == photo_paths
        np.testing.assert_allclose([row["score"] for row in local], expected["score"], atol=1e-5)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_served_model_scores_pristine_photos_above_heavy_blur_and_noise(kind, real_export, toy_dataset):
    # The toy set (6 references) is too small to generalise to unseen references, so
    # this checks the ordering the model learned on its training references, end to
    # end through export, server and client.
    from toy_data import TOY_TRAIN_SETTINGS

    from keras_lmiqa import datasets
    from keras_lmiqa.datasets.splits import split_dataset

    dataset = datasets.load("csv", toy_dataset, **TOY_TRAIN_SETTINGS["dataset_options"])
    split = split_dataset(dataset, 0, TOY_TRAIN_SETTINGS["test_fraction"], TOY_TRAIN_SETTINGS["val_fraction"])
    folder = os.path.dirname(toy_dataset)
    images = [os.path.join(folder, f"{ref}_{distortion}.png") for ref in split.groups("train")
              for distortion in ("blur0", "blur5", "noise5")]
    running = start_server(kind, real_export[0])
    try:
        with Client(running.grpc_target, timeout=60) as client:
            scores = client.score(images).reshape(-1, 3)
    finally:
        running.stop()
    assert len(scores) >= 2
    assert (scores[:, 0] > scores[:, 1]).all() and (scores[:, 0] > scores[:, 2]).all(), scores
