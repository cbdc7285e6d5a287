"""gRPC and REST clients against every available server (`server` fixture)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from serving_helpers import SCALES, reference_scores

from keras_lmiqa.serving import Client, RequestError, RestClient


def _contents(paths):
    return [open(p, "rb").read() for p in paths]


@pytest.fixture(scope="module")
def grpc_client(server):
    with Client(server.grpc_target, timeout=20.0) as client:
        yield client


@pytest.fixture(scope="module")
def rest_client(server):
    return RestClient(server.rest_url, timeout=20.0)


def test_grpc_scores_equal_in_process_signature(grpc_client, server, photo_paths):
    expected = reference_scores(os.path.join(server.export_dir, "2"), _contents(photo_paths))
    scores = grpc_client.score(photo_paths)
    assert scores.dtype == np.float32 and scores.shape == (len(photo_paths),)
    np.testing.assert_allclose(scores, expected["score"], atol=1e-5)
    details = grpc_client.score_details(photo_paths[:3])
    for row, i in zip(details, range(3)):
        assert row["mos"] == pytest.approx(expected["mos"][i], abs=1e-5)
        np.testing.assert_allclose(row["crop_scores"], expected["crop_scores"][i], atol=1e-5)
        np.testing.assert_allclose(row["crop_weights"], expected["crop_weights"][i], atol=1e-6)
        assert row["error"] is None


def test_rest_scores_equal_grpc_scores(grpc_client, rest_client, photo_paths):
    np.testing.assert_allclose(rest_client.score(photo_paths), grpc_client.score(photo_paths), atol=1e-6)
    rest_rows, grpc_rows = rest_client.score_details(photo_paths[:2]), grpc_client.score_details(photo_paths[:2])
    for a, b in zip(rest_rows, grpc_rows):
        np.testing.assert_allclose(a["crop_scores"], b["crop_scores"], atol=1e-6)


def test_bytes_and_paths_mix(grpc_client, photo_paths):
    mixed = [photo_paths[0], open(photo_paths[1], "rb").read()]
    np.testing.assert_allclose(grpc_client.score(mixed), grpc_client.score(photo_paths[:2]), atol=1e-7)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_corrupt_image_is_invalid_argument_and_server_stays_up(grpc_client, rest_client, photo_paths, transport):
    client = grpc_client if transport == "grpc" else rest_client
    with pytest.raises(RequestError) as caught:
        client.score([photo_paths[0], b"definitely not an image", photo_paths[1]])
    error = caught.value
    assert error.code == "INVALID_ARGUMENT"
    assert "image" in error.details.lower()  # TensorFlow's own message
    assert error.batch == (0, 1) and error.labels[0] == photo_paths[0] and error.labels[1] == "<bytes #1>"
    assert "request 1/1" in str(error)
    assert client.score(photo_paths[:1]).shape == (1,)  # the next request still works


def test_on_error_nan_scores_the_other_images(grpc_client, photo_paths):
    rows = grpc_client.score_details([photo_paths[0], b"junk", photo_paths[1]], on_error="nan")
    assert np.isnan(rows[1]["score"]) and rows[1]["error"]
    assert rows[0]["error"] is None and not np.isnan(rows[2]["score"])


def test_metadata_lists_both_signatures(grpc_client, rest_client):
    for client in (grpc_client, rest_client):
        meta = client.metadata()
        assert meta["model"] == "lmiqa" and meta["version"] == 2
        default, pixels = meta["signatures"]["serving_default"], meta["signatures"]["score_pixels"]
        assert default["inputs"]["images"]["dtype"] == "DT_STRING" and default["inputs"]["images"]["shape"] == [-1]
        assert pixels["inputs"]["pixels"]["dtype"] == "DT_UINT8"
        assert pixels["inputs"]["pixels"]["shape"] == [-1, -1, -1, 3]
        for signature in (default, pixels):
            assert set(signature["outputs"]) >= {"score", "mos", "crop_scores", "crop_weights"}
            assert signature["outputs"]["score"]["dtype"] == "DT_FLOAT"
            assert signature["outputs"]["crop_scores"]["shape"][0] == -1
        assert client.metadata(version=1)["version"] == 1


def test_status_shows_available_versions(grpc_client, rest_client):
    for client in (grpc_client, rest_client):
        states = client.status()
        assert {s["version"] for s in states} == set(SCALES)
        assert all(s["state"] == "AVAILABLE" and s["error_code"] == "OK" for s in states)
        assert [s["version"] for s in client.status(version=1)] == [1]


def test_unknown_model_and_version_are_not_found(server, photo_paths):
    for client in (Client(server.grpc_target, model_name="nope", retries=0), RestClient(server.rest_url, "nope")):
        with client:
            for call in (lambda client=client: client.score(photo_paths[:1]), client.status, client.metadata):
                with pytest.raises(RequestError) as caught:
                    call()
                assert caught.value.code == "NOT_FOUND"
    with Client(server.grpc_target) as client:
        with pytest.raises(RequestError) as caught:
            client.score(photo_paths[:1], version=99)
        assert caught.value.code == "NOT_FOUND"
        with pytest.raises(RequestError) as caught:
            client.status(version=99)
        assert caught.value.code == "NOT_FOUND"


def test_specific_version_is_selectable(grpc_client, rest_client, photo_paths):
    latest = grpc_client.score(photo_paths[:4])
    first = grpc_client.score(photo_paths[:4], version=1)
    np.testing.assert_allclose(latest, first * SCALES[2] / SCALES[1], atol=1e-5)
    np.testing.assert_allclose(rest_client.score(photo_paths[:4], version=1), first, atol=1e-6)


def test_pixels_signature(server, photo_paths):
    import cv2

    pixels = [cv2.imread(p)[..., ::-1].copy() for p in photo_paths[:4]]  # two sizes
    with Client(server.grpc_target, signature="score_pixels", batch_size=8) as client:
        scores = client.score(pixels)
    expected = np.array([p.mean() / 255 * SCALES[2] for p in pixels])
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_70_images_go_in_requests_of_32(server, photo_paths):
    items = (photo_paths * 9)[:70]
    with Client(server.grpc_target, batch_size=32) as client:
        sizes, send = [], client._predict_rpc

        def counting(request, timeout=None):
            sizes.append(request.inputs["images"].tensor_shape.dim[0].size)
            return send(request, timeout=timeout)

        client._predict_rpc = counting
        progress = []
        scores = client.score(items, progress=lambda done, total: progress.append((done, total)))
    assert sizes == [32, 32, 6]
    assert progress == [(32, 70), (64, 70), (70, 70)]
    np.testing.assert_allclose(scores[8:16], scores[:8], atol=1e-7)
