"""TF Serving's request/response messages for the clients: the generated modules of the
installed tensorflow-serving-api (and TensorFlow's tensor protos), imported as published.

The gRPC client needs TensorFlow installed: tensorflow-serving-api's `*_pb2` modules
import TensorFlow's, on the first request (`messages()`). That is the supported route:
the message classes are the official ones, whatever protobuf's code generator does next.
tests/serving/test_protos.py pins this choice.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np

# gRPC method paths (as in prediction_service_pb2_grpc / model_service_pb2_grpc).
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
METADATA_METHOD = "/tensorflow.serving.PredictionService/GetModelMetadata"
STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"

# tensorflow.DataType values and their numpy dtypes.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_STRING, DT_INT64, DT_BOOL = 1, 2, 3, 4, 7, 9, 10
DT_NAMES = {1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 7: "DT_STRING",
            9: "DT_INT64", 10: "DT_BOOL"}
_NUMPY = {DT_FLOAT: np.float32, DT_DOUBLE: np.float64, DT_INT32: np.int32, DT_UINT8: np.uint8,
          DT_INT64: np.int64, DT_BOOL: np.bool_}
_VALUE_FIELD = {DT_FLOAT: "float_val", DT_DOUBLE: "double_val", DT_INT32: "int_val",
                DT_UINT8: "int_val", DT_INT64: "int64_val", DT_BOOL: "bool_val"}


@functools.cache
def messages() -> SimpleNamespace:
    """Message classes by short name: `messages().PredictRequest`, ... (imported on first use)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

    return SimpleNamespace(
        TensorProto=tensor_pb2.TensorProto, TensorShapeProto=tensor_shape_pb2.TensorShapeProto,
        PredictRequest=predict_pb2.PredictRequest, PredictResponse=predict_pb2.PredictResponse,
        GetModelMetadataRequest=get_model_metadata_pb2.GetModelMetadataRequest,
        GetModelMetadataResponse=get_model_metadata_pb2.GetModelMetadataResponse,
        SignatureDefMap=get_model_metadata_pb2.SignatureDefMap,
        GetModelStatusRequest=get_model_status_pb2.GetModelStatusRequest,
        GetModelStatusResponse=get_model_status_pb2.GetModelStatusResponse,
        ModelVersionStatus=get_model_status_pb2.ModelVersionStatus,
    )


def make_tensor_proto(array: np.ndarray):
    """A `tensorflow.TensorProto` for a numpy array (object/bytes arrays -> DT_STRING)."""
    msgs = messages()
    array = np.asarray(array)
    proto = msgs.TensorProto()
    proto.tensor_shape.dim.extend(msgs.TensorShapeProto.Dim(size=int(n)) for n in array.shape)
    if array.dtype.kind in ("O", "S"):
        proto.dtype = DT_STRING
        proto.string_val.extend(bytes(value) for value in array.reshape(-1))
        return proto
    for dtype, numpy_type in _NUMPY.items():
        if array.dtype == numpy_type:
            proto.dtype = dtype
            proto.tensor_content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
            return proto
    raise TypeError(f"unsupported tensor dtype {array.dtype}")


def to_numpy(proto) -> np.ndarray:
    """A `tensorflow.TensorProto` (tensor_content or typed *_val fields) as a numpy array."""
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    size = int(np.prod(shape)) if shape else 1
    if proto.dtype == DT_STRING:
        values = list(proto.string_val)
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    if proto.dtype not in _NUMPY:
        raise TypeError(f"unsupported tensor dtype {DT_NAMES.get(proto.dtype, proto.dtype)}")
    numpy_type = np.dtype(_NUMPY[proto.dtype]).newbyteorder("<")
    if proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype=numpy_type).astype(_NUMPY[proto.dtype])
    else:
        array = np.asarray(getattr(proto, _VALUE_FIELD[proto.dtype]), dtype=_NUMPY[proto.dtype])
        if array.size and array.size < size:  # TensorProto repeats the last value to fill
            array = np.concatenate([array, np.full(size - array.size, array[-1], array.dtype)])
    return array.reshape(shape)


def shape_list(shape_proto) -> list[int] | None:
    """A TensorShapeProto as a list with -1 for unknown sizes (None for unknown rank)."""
    if shape_proto.unknown_rank:
        return None
    return [int(d.size) for d in shape_proto.dim]
