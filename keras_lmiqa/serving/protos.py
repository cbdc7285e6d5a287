"""TF Serving request/response messages without importing TensorFlow.

The `tensorflow_serving.apis.*_pb2` modules import `tensorflow.core.framework.*_pb2`,
and importing any `tensorflow.*` submodule executes `tensorflow/__init__.py` (all of
TensorFlow and Keras, several seconds). The clients only need the message classes, so
this module reads the serialized `FileDescriptorProto` that each installed generated
module carries (its `AddSerializedFile(b"...")` literal, found with `ast`, never
executed), adds those files and their dependencies to a private descriptor pool, and
builds the message classes from it. The wire format is the one from the installed
tensorflow-serving-api and tensorflow packages, so requests are byte-for-byte those of
the official stubs; the private pool never clashes with TensorFlow's own when both are
loaded in one process.

If the generated modules cannot be read that way, it falls back to importing the
official modules (slow, imports TensorFlow) and logs a warning.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import logging
import os
import threading
from types import SimpleNamespace

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

log = logging.getLogger(__name__)

# Fully-qualified names of the messages the clients use.
_MESSAGES = {
    "TensorProto": "tensorflow.TensorProto",
    "TensorShapeProto": "tensorflow.TensorShapeProto",
    "PredictRequest": "tensorflow.serving.PredictRequest",
    "PredictResponse": "tensorflow.serving.PredictResponse",
    "GetModelMetadataRequest": "tensorflow.serving.GetModelMetadataRequest",
    "GetModelMetadataResponse": "tensorflow.serving.GetModelMetadataResponse",
    "SignatureDefMap": "tensorflow.serving.SignatureDefMap",
    "GetModelStatusRequest": "tensorflow.serving.GetModelStatusRequest",
    "GetModelStatusResponse": "tensorflow.serving.GetModelStatusResponse",
    "ModelVersionStatus": "tensorflow.serving.ModelVersionStatus",
}
_ROOT_MODULES = (
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
)

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


def _package_root(package: str) -> str:
    """Folder that holds top-level `package`, found without executing its `__init__`."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {package!r} is not installed")
    return os.path.dirname(list(spec.submodule_search_locations)[0])


def _module_file(module: str) -> str:
    top, _, rest = module.partition(".")
    return os.path.join(_package_root(top), top, *rest.split(".")) + ".py"


def _read_generated(module: str) -> tuple[bytes, dict[str, str]]:
    """(serialized FileDescriptorProto, {dependency proto name: module}) of a `*_pb2` module."""
    if module.startswith("google.protobuf."):
        loaded = importlib.import_module(module)
        return loaded.DESCRIPTOR.serialized_pb, {}
    path = _module_file(module)
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    data, imported = None, []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile"
                and node.args and isinstance(node.args[0], ast.Constant)):
            data = node.args[0].value
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.endswith("_pb2")]
    if data is None:
        raise ImportError(f"no serialized descriptor found in {path}")
    dependencies = {}
    for name in descriptor_pb2.FileDescriptorProto.FromString(data).dependency:
        stem = name[:-len(".proto")]
        matches = [m for m in imported if m.endswith("." + stem.rsplit("/", 1)[-1] + "_pb2")]
        exact = [m for m in matches if m.replace(".", "/").endswith(stem + "_pb2")]
        if not (exact or matches):
            raise ImportError(f"cannot locate the module generated from {name} (needed by {module})")
        dependencies[name] = (exact or matches)[0]
    return data, dependencies


def _build_from_descriptors() -> dict:
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(module: str) -> None:
        if module in added:
            return
        data, dependencies = _read_generated(module)
        for dependency in dependencies.values():
            add(dependency)
        pool.AddSerializedFile(data)
        added.add(module)

    for root in _ROOT_MODULES:
        add(root)
    return {short: message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
            for short, full in _MESSAGES.items()}


def _build_from_official_modules() -> dict:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

    modules = (tensor_pb2, tensor_shape_pb2, predict_pb2, get_model_metadata_pb2, get_model_status_pb2)
    classes = {}
    for short in _MESSAGES:
        classes[short] = next(getattr(m, short) for m in modules if hasattr(m, short))
    return classes


_BUILD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _messages() -> SimpleNamespace:
    try:
        classes = _build_from_descriptors()
    except (ImportError, OSError, SyntaxError, TypeError, KeyError, ValueError) as error:
        log.warning("reading TF Serving descriptors failed (%s); importing tensorflow_serving", error)
        classes = _build_from_official_modules()
    return SimpleNamespace(**classes)


def messages() -> SimpleNamespace:
    """Message classes by short name: `messages().PredictRequest`, ... (built once, thread-safe:
    classes from two builds would not mix)."""
    with _BUILD_LOCK:
        return _messages()


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
