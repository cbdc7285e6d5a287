"""The clients' request messages are tensorflow-serving-api's own generated classes."""

import numpy as np
import tensorflow as tf

from keras_lmiqa.serving import protos


def test_client_messages_are_the_installed_tensorflow_serving_api_classes():
    # Pins the choice: the generated modules imported as published, no rebuilt copy.
    from tensorflow.core.framework import tensor_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

    msgs = protos.messages()
    assert msgs.PredictRequest is predict_pb2.PredictRequest
    assert msgs.GetModelStatusResponse is get_model_status_pb2.GetModelStatusResponse
    assert msgs.SignatureDefMap is get_model_metadata_pb2.SignatureDefMap
    assert msgs.TensorProto is tensor_pb2.TensorProto


def test_tensor_protos_round_trip_through_tensorflow():
    for value in (np.float32([[1.5, -2.0]]), np.uint8([[[1, 2, 3]]]), np.int64([7, 8, 9])):
        proto = protos.make_tensor_proto(value)
        np.testing.assert_array_equal(tf.make_ndarray(proto), value)
        back = protos.to_numpy(tf.make_tensor_proto(value))
        np.testing.assert_array_equal(back, value)
        assert back.dtype == value.dtype
    strings = protos.make_tensor_proto(np.array([b"a", b"bc"], dtype=object))
    assert list(tf.make_ndarray(strings)) == [b"a", b"bc"] and protos.shape_list(strings.tensor_shape) == [2]
