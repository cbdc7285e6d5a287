"""TF Serving's gRPC services (PredictionService, ModelService) over a :class:`Predictor`.

Same request/response protos and status codes as `tensorflow_model_server`; Classify,
Regress and MultiInference answer UNIMPLEMENTED (the LML-IQA export has only Predict
signatures).
"""

from __future__ import annotations

import logging
import math

import grpc
import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_lmiqa.serving.predictor import Predictor
from keras_lmiqa.serving.status import RequestError

log = logging.getLogger(__name__)


def _version(model_spec) -> int | None:
    return int(model_spec.version.value) if model_spec.HasField("version") else None


def _to_array(alias: str, tensor, max_bytes: int):
    """A request TensorProto as numpy, refusing a declared size above `max_bytes` first.

    A TensorProto may hold a single value for a whole shape (TensorFlow repeats it), so a
    few bytes can declare gigabytes; the shape is checked before anything is allocated.
    """
    if tensor.tensor_shape.unknown_rank:
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' has no shape (unknown rank)")
    dims = [int(d.size) for d in tensor.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' has a negative dimension: {dims}")
    try:
        dtype = tf.as_dtype(tensor.dtype)
    except TypeError:
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' has an unknown dtype ({tensor.dtype})") from None
    count = math.prod(dims)
    if dtype == tf.string:
        if count != len(tensor.string_val):
            raise RequestError("INVALID_ARGUMENT", f"input '{alias}' declares shape {dims} but holds "
                                                   f"{len(tensor.string_val)} strings")
    elif count * dtype.size > max_bytes:
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' declares shape {dims} ({count * dtype.size} bytes "
                                               f"of {dtype.name}), above the request limit of {max_bytes} bytes")
    try:
        return tf.make_ndarray(tensor)
    except (TypeError, ValueError) as error:
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' is not a valid tensor: {error}") from None


def _abort(context: grpc.ServicerContext, error: RequestError):
    log.debug("request failed: %s", error)
    context.abort(grpc.StatusCode[error.code], error.details)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        try:
            with self.predictor.slot():  # the arrays are built under the same bound as the scoring
                inputs = {}
                for alias, tensor in request.inputs.items():
                    inputs[alias] = _to_array(alias, tensor, self.predictor.max_input_bytes)
                spec = request.model_spec
                servable, signature, outputs = self.predictor.predict(
                    spec.name, _version(spec), spec.signature_name, inputs, list(request.output_filter),
                    label=spec.version_label)
                del inputs
        except RequestError as error:
            _abort(context, error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            spec = request.model_spec
            servable, signature_defs = self.predictor.metadata(spec.name, _version(spec),
                                                               list(request.metadata_field))
        except RequestError as error:
            _abort(context, error)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signature_defs)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def GetModelStatus(self, request, context):  # noqa: N802
        try:
            states = self.predictor.status(request.model_spec.name, _version(request.model_spec))
        except RequestError as error:
            _abort(context, error)
        response = get_model_status_pb2.GetModelStatusResponse()
        for row in states:
            entry = response.model_version_status.add()
            entry.version = row["version"]
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(row["state"])
            entry.status.error_code = error_codes_pb2.Code.Value(row["error_code"])
            entry.status.error_message = row["error_message"]
        return response


def add_services(server: grpc.Server, predictor: Predictor) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(predictor), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(predictor), server)
