"""TF Serving's gRPC services (PredictionService, ModelService) over a :class:`Predictor`.

Same request/response protos and status codes as `tensorflow_model_server`; Classify,
Regress and MultiInference answer UNIMPLEMENTED (the LML-IQA export has only Predict
signatures).
"""

from __future__ import annotations

import logging

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from keras_lmiqa.serving.predictor import Predictor
from keras_lmiqa.serving.status import RequestError

log = logging.getLogger(__name__)


def _version(model_spec) -> int | None:
    return int(model_spec.version.value) if model_spec.HasField("version") else None


def _abort(context: grpc.ServicerContext, error: RequestError):
    log.debug("request failed: %s", error)
    context.abort(grpc.StatusCode[error.code], error.details)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        try:
            inputs = {}
            for alias, tensor in request.inputs.items():
                try:
                    inputs[alias] = tf.make_ndarray(tensor)
                except (TypeError, ValueError) as error:
                    raise RequestError("INVALID_ARGUMENT", f"input '{alias}' is not a valid tensor: {error}") from None
            spec = request.model_spec
            servable, signature, outputs = self.predictor.predict(
                spec.name, _version(spec), spec.signature_name, inputs, list(request.output_filter),
                label=spec.version_label)
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
            versions = self.predictor.status(request.model_spec.name, _version(request.model_spec))
        except RequestError as error:
            _abort(context, error)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in versions:
            entry = response.model_version_status.add()
            entry.version = version
            entry.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


def add_services(server: grpc.Server, predictor: Predictor) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(predictor), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(predictor), server)
