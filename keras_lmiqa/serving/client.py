"""gRPC client for TF Serving (or `lmiqa serve`) serving an LML-IQA export.

    from keras_lmiqa.serving import Client

    with Client("127.0.0.1:8500") as client:
        scores = client.score(["a.jpg", "b.png"])          # float32 (2,), higher = better
        details = client.score_details(["a.jpg"], version=3)
        client.status()     # [{"version": 3, "state": "AVAILABLE", ...}]
        client.metadata()   # signatures with their inputs and outputs

Imports neither TensorFlow nor Keras: the TF Serving messages come from
:mod:`keras_lmiqa.serving.protos`, the calls use the same method paths as
`PredictionServiceStub`/`ModelServiceStub` of tensorflow-serving-api.
"""

from __future__ import annotations

import grpc
import numpy as np

from keras_lmiqa.constants import BYTES_SIGNATURE, MAX_MESSAGE_BYTES, MODEL_NAME
from keras_lmiqa.serving import protos
from keras_lmiqa.serving.base_client import BaseClient
from keras_lmiqa.serving.status import RequestError

DEFAULT_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES


class Client(BaseClient):
    """Scores images over TF Serving's gRPC API (PredictionService / ModelService).

    Args:
        target: `host:port` of the gRPC endpoint, e.g. `"127.0.0.1:8500"`.
        model_name: served model name. Defaults to `"lmiqa"`.
        signature: `"serving_default"` (encoded image bytes) or `"score_pixels"`
            (uint8 arrays). Defaults to `"serving_default"`.
        timeout: deadline of each RPC in seconds. Defaults to 10.
        batch_size: images per Predict request. Defaults to 32.
        retries: extra attempts on UNAVAILABLE (only), with exponential backoff starting
            at `backoff` seconds. Defaults to 3.
        backoff: first retry delay in seconds. Defaults to 0.25.
        max_message_bytes: gRPC send/receive limit. Defaults to 32 MiB.
        credentials: optional `grpc.ChannelCredentials` for TLS (e.g. behind Envoy).
    """

    def __init__(self, target: str, model_name: str = MODEL_NAME, signature: str = BYTES_SIGNATURE,
                 timeout: float = 10.0, batch_size: int = 32, retries: int = 3, *, backoff: float = 0.25,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 credentials: grpc.ChannelCredentials | None = None):
        super().__init__(model_name, signature, timeout, batch_size, retries, backoff)
        self.target = target
        options = [
            ("grpc.max_send_message_length", int(max_message_bytes)),
            ("grpc.max_receive_message_length", int(max_message_bytes)),
            # Reconnect quickly after a server (re)start so our own retries can succeed.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        self._channel = (grpc.secure_channel(target, credentials, options) if credentials
                         else grpc.insecure_channel(target, options))
        msgs = protos.messages()
        self._msgs = msgs
        self._predict_rpc = self._channel.unary_unary(
            protos.PREDICT_METHOD, request_serializer=msgs.PredictRequest.SerializeToString,
            response_deserializer=msgs.PredictResponse.FromString)
        self._metadata_rpc = self._channel.unary_unary(
            protos.METADATA_METHOD, request_serializer=msgs.GetModelMetadataRequest.SerializeToString,
            response_deserializer=msgs.GetModelMetadataResponse.FromString)
        self._status_rpc = self._channel.unary_unary(
            protos.STATUS_METHOD, request_serializer=msgs.GetModelStatusRequest.SerializeToString,
            response_deserializer=msgs.GetModelStatusResponse.FromString)

    def close(self) -> None:
        self._channel.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r}, model_name={self.model_name!r}, signature={self.signature!r})"

    def _call(self, rpc, request):
        try:
            return rpc(request, timeout=self.timeout)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
            details = (error.details() if hasattr(error, "details") else None) or str(error)
            raise RequestError(code.name, f"{details} [{self.target}]") from None

    def _model_spec(self, request, version: int | None, signature: str | None = None) -> None:
        request.model_spec.name = self.model_name
        if version is not None:
            request.model_spec.version.value = int(version)
        if signature:
            request.model_spec.signature_name = signature

    def _predict_once(self, inputs: dict[str, np.ndarray], version: int | None) -> dict[str, np.ndarray]:
        request = self._msgs.PredictRequest()
        self._model_spec(request, version, self.signature)
        for key, array in inputs.items():
            request.inputs[key].CopyFrom(protos.make_tensor_proto(array))
        response = self._call(self._predict_rpc, request)
        return {key: protos.to_numpy(tensor) for key, tensor in response.outputs.items()}

    def metadata(self, version: int | None = None) -> dict:
        """{"model", "version", "signatures": {name: {"method_name", "inputs", "outputs"}}};
        each input/output: {"dtype": "DT_STRING", "shape": [-1], "name": tensor name}."""
        request = self._msgs.GetModelMetadataRequest()
        self._model_spec(request, version)
        request.metadata_field.append("signature_def")
        response = self._call(self._metadata_rpc, request)
        signature_map = self._msgs.SignatureDefMap()
        if "signature_def" in response.metadata:
            response.metadata["signature_def"].Unpack(signature_map)
        signatures = {}
        for name, signature in signature_map.signature_def.items():
            signatures[name] = {"method_name": signature.method_name, **{
                side: {alias: {"dtype": protos.DT_NAMES.get(info.dtype, str(info.dtype)),
                               "shape": protos.shape_list(info.tensor_shape), "name": info.name}
                       for alias, info in getattr(signature, side).items()}
                for side in ("inputs", "outputs")}}
        return {"model": response.model_spec.name, "version": int(response.model_spec.version.value),
                "signatures": signatures}

    def status(self, version: int | None = None) -> list[dict]:
        """[{"version", "state" ("AVAILABLE", "LOADING", ...), "error_code", "error_message"}]."""
        request = self._msgs.GetModelStatusRequest()
        self._model_spec(request, version)
        response = self._call(self._status_rpc, request)
        state_enum = self._msgs.ModelVersionStatus.DESCRIPTOR.enum_types_by_name["State"]
        result = []
        for entry in response.model_version_status:
            code_field = entry.status.DESCRIPTOR.fields_by_name["error_code"]
            code = code_field.enum_type.values_by_number.get(entry.status.error_code)
            result.append({"version": int(entry.version),
                           "state": state_enum.values_by_number[entry.state].name,
                           "error_code": code.name if code else str(entry.status.error_code),
                           "error_message": entry.status.error_message})
        return result
