"""Transport-independent request handling of the development server.

Validates a request against the signature (model name, version, signature name, input
aliases, dtypes, ranks, batch size), runs the signature and maps TensorFlow errors to
status codes the way TF Serving does. The gRPC and REST front ends only convert
between their wire formats and numpy.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_lmiqa.serving.model_repository import ModelRepository, Servable
from keras_lmiqa.serving.status import RequestError, code_name

DEFAULT_SIGNATURE = "serving_default"


def dtype_of(array: np.ndarray) -> tf.DType:
    if array.dtype.kind in ("O", "S", "U"):
        return tf.string
    return tf.as_dtype(array.dtype)


def _tf_message(message: str) -> str:
    """TensorFlow's error message without the eager "Graph execution error" preamble."""
    skip = ("Graph execution error", "Detected at node", "<stack traces unavailable>")
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith(skip)]
    return "\n".join(lines) or message


class Predictor:
    """Answers Predict / GetModelMetadata / GetModelStatus for one ModelRepository.

    Args:
        repository: the loaded versions.
        max_batch_size: largest batch (first dimension) accepted. Defaults to 64.
        max_input_bytes: largest size one input tensor may declare (shape x dtype size),
            checked before it is built. Defaults to 32 MiB.
    """

    def __init__(self, repository: ModelRepository, max_batch_size: int = 64, max_input_bytes: int = 32 * 2 ** 20):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1. Received: max_batch_size={max_batch_size}")
        self.repository = repository
        self.max_batch_size = int(max_batch_size)
        self.max_input_bytes = int(max_input_bytes)

    def servable(self, model_name: str, version: int | None, label: str = "") -> Servable:
        if model_name != self.repository.model_name:
            request = f"Specific({model_name}, {version})" if version is not None else f"Latest({model_name})"
            raise RequestError("NOT_FOUND", f"Servable not found for request: {request}")
        if label:
            raise RequestError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
        return self.repository.get(version)

    def signature(self, servable: Servable, signature_name: str):
        name = signature_name or DEFAULT_SIGNATURE
        if name not in servable.signatures:
            raise RequestError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        return name, servable.signatures[name], servable.input_specs[name]

    def input_dtypes(self, model_name: str, version: int | None, signature_name: str,
                     label: str = "") -> dict[str, tf.DType]:
        """{alias: dtype} of a signature's inputs (the REST front end decodes JSON with it)."""
        _, _, specs = self.signature(self.servable(model_name, version, label), signature_name)
        return {alias: spec.dtype for alias, spec in specs.items()}

    def predict(self, model_name: str, version: int | None, signature_name: str, inputs: dict[str, np.ndarray],
                output_filter=(), label: str = "") -> tuple[Servable, str, dict[str, np.ndarray]]:
        servable = self.servable(model_name, version, label)
        name, function, specs = self.signature(servable, signature_name)
        if set(inputs) != set(specs):
            extra, missing = sorted(set(inputs) - set(specs)), sorted(set(specs) - set(inputs))
            raise RequestError("INVALID_ARGUMENT",
                               f"Request inputs do not match required inputs for model `{model_name}`, "
                               f"signature `{name}`. Send extra: {extra}. Missing but required: {missing}. "
                               f"Expected inputs: {sorted(specs)}.")
        tensors, batch = {}, None
        for alias, array in inputs.items():
            spec = specs[alias]
            got = dtype_of(array)
            if got != spec.dtype:
                raise RequestError("INVALID_ARGUMENT",
                                   f"Expects input '{alias}' to be {spec.dtype.name} but {got.name} is provided")
            if not spec.shape.is_compatible_with(array.shape):
                expected = "?" if spec.shape.rank is None else [-1 if d is None else d for d in spec.shape.as_list()]
                raise RequestError("INVALID_ARGUMENT", f"input '{alias}' must have shape {expected} "
                                                       f"(rank {spec.shape.rank}); got shape {list(array.shape)}")
            size = array.shape[0] if array.ndim else 1
            if size == 0:
                raise RequestError("INVALID_ARGUMENT", f"input '{alias}' is an empty batch")
            if size > self.max_batch_size:
                raise RequestError("INVALID_ARGUMENT", f"input '{alias}' has batch size {size}, above the "
                                                       f"server maximum of {self.max_batch_size}; split the request")
            if batch is not None and size != batch:
                raise RequestError("INVALID_ARGUMENT", f"inputs have different batch sizes ({batch} and {size})")
            batch = size
            tensors[alias] = tf.constant(array, dtype=spec.dtype)
        try:
            outputs = function(**tensors)
        except tf.errors.OpError as error:
            raise RequestError(code_name(error.error_code), _tf_message(error.message)) from None
        except (TypeError, ValueError) as error:
            raise RequestError("INVALID_ARGUMENT", str(error)) from None
        wanted = list(output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            raise RequestError("INVALID_ARGUMENT", f"output tensor alias not found in signature: {unknown}. "
                                                   f"Outputs expected to be in the set {sorted(outputs)}.")
        return servable, name, {key: outputs[key].numpy() for key in wanted}

    def metadata(self, model_name: str, version: int | None, fields=("signature_def",)):
        """(servable, SignatureDefMap) as GetModelMetadata answers it."""
        if not fields:
            raise RequestError("INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != "signature_def":
                raise RequestError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
        servable = self.servable(model_name, version)
        return servable, servable.signature_defs

    def status(self, model_name: str, version: int | None) -> list[int]:
        """Available versions (all, or the one asked for), as GetModelStatus lists them."""
        if model_name != self.repository.model_name:
            raise RequestError("NOT_FOUND", f"Could not find any versions of model {model_name}")
        versions = self.repository.versions()
        if version is not None:
            if version not in versions:
                raise RequestError("NOT_FOUND", f"Could not find version {version} of model {model_name}")
            return [version]
        if not versions:
            raise RequestError("NOT_FOUND", f"Could not find any versions of model {model_name}")
        return versions
