"""Requests the development server must refuse with a status and a message, staying up:
inputs declaring more bytes than they carry, REST dtype/batch errors, hostile JSON."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from serving_helpers import start_local

MAX_BATCH = 4


@pytest.fixture(scope="module")
def limited(fake_export):
    running = start_local(fake_export, poll_seconds=0, max_batch_size=MAX_BATCH, max_request_bytes=1 << 20)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(limited):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(limited.grpc_target)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def _request(alias, proto, signature="score_pixels"):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lmiqa"
    request.model_spec.signature_name = signature
    request.inputs[alias].CopyFrom(proto)
    return request


def _still_serving(stub, photo_paths):
    import tensorflow as tf

    ok = stub.Predict(_request("images", tf.make_tensor_proto([open(photo_paths[0], "rb").read()]),
                               "serving_default"), timeout=20)
    assert ok.outputs["score"].tensor_shape.dim[0].size == 1


def test_tensor_declaring_a_huge_shape_is_refused_before_it_is_built(stub, photo_paths):
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    # One value for a [2, 20000, 20000, 3] uint8 shape: TensorFlow would repeat it into 2.4 GB.
    bomb = tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8, int_val=[7], tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in (2, 20000, 20000, 3)]))
    assert len(bomb.SerializeToString()) < 64
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(_request("pixels", bomb), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "declares shape [2, 20000, 20000, 3] (2400000000 bytes of uint8)" in caught.value.details()
    negative = tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1)]))
    strings = tf.make_tensor_proto([b"a", b"b"])
    strings.tensor_shape.dim[0].size = 3  # shape says 3, two strings sent
    unknown = tf.make_tensor_proto(np.zeros([1, 2, 2, 3], np.uint8))
    unknown.dtype = 999
    for proto, alias, words in ((negative, "pixels", "negative dimension"), (strings, "images", "holds 2 strings"),
                                (unknown, "pixels", "unknown dtype")):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(_request(alias, proto, "serving_default" if alias == "images" else "score_pixels"),
                         timeout=20)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, words
        assert words in caught.value.details()
    _still_serving(stub, photo_paths)


def test_grpc_batch_limit_is_the_configured_one(stub, photo_paths):
    import tensorflow as tf

    image = open(photo_paths[0], "rb").read()
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(_request("images", tf.make_tensor_proto([image] * (MAX_BATCH + 1)), "serving_default"), timeout=20)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"batch size {MAX_BATCH + 1}, above the server maximum of {MAX_BATCH}" in caught.value.details()
    answer = stub.Predict(_request("images", tf.make_tensor_proto([image] * MAX_BATCH), "serving_default"), timeout=20)
    assert answer.outputs["score"].tensor_shape.dim[0].size == MAX_BATCH


def _post(url: str, body: bytes):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("body, status, words", [
    ({"instances": [1, 2]}, 400, 'expected a string or {"b64": ...}'),  # numbers for the string input
    ({"signature_name": "score_pixels", "instances": [[[["red", 0, 0]]]]}, 400, "must hold integers (uint8); got str"),
    # Numbers are checked, never cast: 1.5 is not truncated to 1, 300 not wrapped to 44.
    ({"signature_name": "score_pixels", "instances": [[[[0, 1.5, 2]]]]}, 400, "non-integer numbers such as 1.5"),
    ({"signature_name": "score_pixels", "instances": [[[[0, 300, 2]]]]}, 400, "holds 300, outside the uint8 range"),
    ({"signature_name": "score_pixels", "instances": [[[[0, -1, 2]]]]}, 400, "holds -1, outside the uint8 range"),
    ({"signature_name": "score_pixels", "instances": [[[[True, False, True]]]]}, 400, "got true/false such as true"),
    ({"signature_name": "score_pixels", "instances": [[[[0, 1, 2]], [[3, 4]]]]}, 400, "not a valid uint8 tensor"),
    ({"signature_name": "score_pixels", "instances": [[[[1, 2]]]]}, 400, "must have shape [-1, -1, -1, 3]"),
    ({"instances": [{"b64": "bm90IGJhc2U2NA=="}] * (MAX_BATCH + 1)}, 400, f"above the server maximum of {MAX_BATCH}"),
    ({"inputs": {"images": []}}, 400, "empty batch"),
    ({"inputs": {"imagez": [{"b64": "AAAA"}]}}, 400, "Missing but required: ['images']"),
    ({"instances": [{"b64": "!!not base64!!"}]}, 400, "invalid base64"),
])
def test_rest_bad_inputs(limited, photo_paths, body, status, words):
    code, answer = _post(limited.rest_url + "/v1/models/lmiqa:predict", json.dumps(body).encode())
    assert (code, words in answer["error"]) == (status, True), answer
    good = {"instances": [{"b64": base64.b64encode(open(photo_paths[0], "rb").read()).decode()}]}
    code, answer = _post(limited.rest_url + "/v1/models/lmiqa:predict", json.dumps(good).encode())
    assert code == 200 and len(answer["predictions"]) == 1


def test_rest_hostile_json_gets_an_answer(limited):
    url = limited.rest_url + "/v1/models/lmiqa:predict"
    code, answer = _post(url, b"[" * 200_000)  # nesting deeper than Python's recursion limit
    assert code == 400 and "JSON Parse error" in answer["error"]
    deep = '{"signature_name": "score_pixels", "instances": ' + "[" * 5000 + "1" + "]" * 5000 + "}"
    code, answer = _post(url, deep.encode())
    assert code == 400 and answer["error"]
    code, answer = _post(url, b'"just a string"')
    assert code == 400 and "JSON object" in answer["error"]
