"""The export scores each image of a request on its own: never padded to the request's
largest image, its windows through the model a chunk at a time. So an image scores
bit-identically alone and in any request, a thin strip cannot make millions of
windows, and the server's errors carry the reason only."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from crafted import jpeg, photo, png

KEYS = ("crop_scores", "crop_weights", "crop_windows", "crop_saliency")
# A tall and a wide strip, a small JPEG, a large photo: padding all four to one size
# (the old export) would have made 1200 x 1200 images of mostly zeros.
IMAGES = {"tall": png(photo(1200, 24)), "wide": png(photo(24, 1200)), "small": jpeg(photo(50, 70)),
          "large": png(photo(900, 1000))}


@pytest.fixture(scope="module")
def loaded(untrained_export):
    return tf.saved_model.load(untrained_export)


@pytest.fixture(scope="module")
def signature(loaded):
    return loaded.signatures["serving_default"]


def _own(outputs: dict, row: int) -> dict:
    """One image's outputs without the padding windows its request added."""
    count = int((outputs["crop_windows"][row, :, 2] > 0).sum())
    return {"score": outputs["score"][row], **{key: outputs[key][row, :count] for key in KEYS}}


@pytest.mark.parametrize("order", [
    ["tall", "small"], ["small", "wide", "tall"], ["large", "tall", "wide", "small"], ["small", "small", "large"],
])
def test_an_image_scores_bit_identically_alone_and_in_any_request(signature, order):
    alone = {name: _own({k: v.numpy() for k, v in signature(images=tf.constant([IMAGES[name]])).items()}, 0)
             for name in set(order)}
    together = {k: v.numpy() for k, v in signature(images=tf.constant([IMAGES[n] for n in order])).items()}
    for row, name in enumerate(order):
        own = _own(together, row)
        assert own["score"] == alone[name]["score"], (name, order)
        for key in KEYS:
            np.testing.assert_array_equal(own[key], alone[name][key], err_msg=f"{name} {key} in {order}")
        assert not together["crop_weights"][row, len(own["crop_weights"]):].any()  # padding weighs nothing


def test_the_model_sees_one_image_and_at_most_one_chunk_per_call(untrained_model):
    from keras_lmiqa.crops import grid_window_count
    from keras_lmiqa.export import build_module
    from keras_lmiqa.models.scoring import prepare_encoded, score_each_image, windows_per_call

    module, _ = build_module(untrained_model)
    spec = module.spec
    calls = tf.Variable(0)
    largest = tf.Variable(0)

    class Counting:  # the branch, counting its calls and the largest crop batch it is given
        def __call__(self, crops, training=False):
            calls.assign_add(1)
            largest.assign(tf.maximum(largest, tf.shape(crops)[0] * tf.shape(crops)[1]))
            return module.model(crops, training=training)

    images = [IMAGES["large"], IMAGES["small"], IMAGES["tall"]]
    function = tf.function(lambda batch: score_each_image(Counting(), spec, batch,
                                                      lambda c, i: prepare_encoded(c, i, spec))["score"])
    scores = function(tf.constant(images)).numpy()
    chunk = windows_per_call(spec)
    counts = [grid_window_count(h, w, spec.crop_size, spec.scales, spec.grid_size)
              for h, w in ((900, 1000), (50, 70), (1200, 24))]
    assert counts[0] > chunk  # the large photo needs more than one call
    assert int(calls.numpy()) == sum(-(-g // chunk) for g in counts)
    assert int(largest.numpy()) == chunk
    np.testing.assert_array_equal(scores, module.serving_default(tf.constant(images))["score"].numpy())


def test_a_thin_strip_is_refused_naming_max_windows(loaded, untrained_model):
    from keras_lmiqa.export import build_module

    limit = build_module(untrained_model)[0].spec.max_windows
    assert limit < 30000
    strip = png(np.full((1, 30000, 3), 128, np.uint8))  # 30 000 windows of one pixel each, in a 200-byte file
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        loaded.signatures["serving_default"](images=tf.constant([IMAGES["small"], strip]))
    assert (f"images[1] (30000x1 pixels) would need 30000 crop windows, above the limit of {limit} (max_windows)"
            in caught.value.message)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        loaded.signatures["score_pixels"](pixels=tf.zeros([1, 30000, 1, 3], tf.uint8))
    assert "pixels[0] (1x30000 pixels) would need 30000 crop windows" in caught.value.message


@pytest.fixture(scope="module")
def served(untrained_export):
    from keras_lmiqa.serving.local_server import LocalServer

    server = LocalServer(os.path.dirname(untrained_export), port=0, rest_port=0, poll_seconds=0).start()
    yield server
    server.stop()


@pytest.mark.parametrize("images, reason", [
    ([IMAGES["small"], b""], "images[1] is empty"),
    ([IMAGES["small"], b"\x89PNG\r\n\x1a\n but the rest is not"], None),  # the decoder's own message
    ([png(np.full((1, 30000, 3), 9, np.uint8))], "images[0] (30000x1 pixels) would need 30000 crop windows"),
])
def test_errors_reach_clients_as_the_reason_only(served, images, reason):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lmiqa"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=120)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    body = json.dumps({"instances": [{"b64": base64.b64encode(i).decode()} for i in images]})
    with pytest.raises(urllib.error.HTTPError) as rest:
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{served.rest_port}/v1/models/lmiqa:predict",
                                                      data=body.encode()), timeout=120)
    assert rest.value.code == 400
    over_rest = json.loads(rest.value.read())["error"]
    for message in (caught.value.details(), over_rest):
        assert len(message.splitlines()) == 1, message
        for internal in ("{{node", "[Op:", "Graph execution error", "Detected at node", "__inference", "map/while"):
            assert internal not in message, message
        if reason is not None:
            assert message.startswith(reason), message
    assert caught.value.details() == over_rest
