"""Transport-independent request handling of the development server.

Validates a request against the signature (model name, version, signature name, input
aliases, dtypes, ranks, batch size) and the server's budget (decoded pixels per
request), runs the signature and maps TensorFlow errors to status codes the way TF
Serving does, with the reason only (no graph node or op names). The gRPC and REST front
ends only convert between their wire formats and numpy.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import threading

import numpy as np
import tensorflow as tf

from keras_lmiqa.constants import BYTES_SIGNATURE, MAX_MESSAGE_BYTES
from keras_lmiqa.image_io import error_reason, gif_pixels, header_size, image_format
from keras_lmiqa.serving.limits import DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_REQUEST_PIXELS
from keras_lmiqa.serving.model_repository import ModelRepository, Servable
from keras_lmiqa.serving.status import RequestError, code_name

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = BYTES_SIGNATURE
RELEASE_ABOVE_PIXELS = 1_000_000  # requests from this size on give freed memory back (`release_memory`)


def dtype_of(array: np.ndarray) -> tf.DType:
    if array.dtype.kind in ("O", "S", "U"):
        return tf.string
    return tf.as_dtype(array.dtype)


def tf_reason(message: str) -> str:
    """The reason of a TensorFlow error, one line: no "Graph execution error" preamble,
    `[[{{node ...}}]]` or `[Op:__inference_...]` (clients see why, not where)."""
    return error_reason(message)


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def _declared_pixels(images):
    """Pixels each encoded image's header declares (the export's own header parser), int64 [B]."""
    def one(contents):
        size = header_size(contents, image_format(contents))
        return size[0] * size[1]

    return tf.map_fn(one, images, fn_output_signature=tf.int64)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_memory() -> None:
    """Give freed heap pages back to the system (glibc `malloc_trim`). TensorFlow frees a
    request's tensors, but glibc keeps the freed pages of its arenas mapped: without
    this, the RSS after a large request stays at its peak."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class Predictor:
    """Answers Predict / GetModelMetadata / GetModelStatus for one ModelRepository.

    Args:
        repository: the loaded versions.
        max_batch_size: largest batch (first dimension) accepted. Defaults to 64.
        max_input_bytes: largest size one input tensor may declare (shape x dtype size),
            checked before it is built. Defaults to 32 MiB.
        max_request_pixels: decoded pixels one request may hold, all its images together:
            for encoded images what their headers declare, read before anything is
            decoded; for pixel tensors batch x height x width. Above it the request is
            refused with RESOURCE_EXHAUSTED naming the limit. Defaults to 50 000 000.
        max_concurrent_requests: requests converted and scored at once (`slot()`); more
            wait their turn. With the per-image scoring of the export, memory above idle
            is at most about this many times what the largest allowed request takes.
            Defaults to 1.
    """

    def __init__(self, repository: ModelRepository, max_batch_size: int = 64, max_input_bytes: int = MAX_MESSAGE_BYTES,
                 max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS,
                 max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS):
        for name, value in (("max_batch_size", max_batch_size), ("max_request_pixels", max_request_pixels),
                            ("max_concurrent_requests", max_concurrent_requests)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1. Received: {name}={value}")
        self.repository = repository
        self.max_batch_size = int(max_batch_size)
        self.max_input_bytes = int(max_input_bytes)
        self.max_request_pixels = int(max_request_pixels)
        self.max_concurrent_requests = int(max_concurrent_requests)
        self._running = threading.BoundedSemaphore(self.max_concurrent_requests)
        self._held = threading.local()

    @contextlib.contextmanager
    def slot(self):
        """Hold one of the `max_concurrent_requests` slots (re-entrant in a thread): the
        front ends take it before building a request's arrays, so JSON and protos are
        converted under the same bound as the scoring."""
        if getattr(self._held, "slot", False):
            yield
            return
        with self._running:
            self._held.slot = True
            try:
                yield
            finally:
                self._held.slot = False

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

    def request_pixels(self, inputs: dict[str, np.ndarray]) -> int:
        """Decoded pixels the request's images declare (see `max_request_pixels`).

        A header the parser cannot read counts 0 here: the signature's decoder then
        refuses that image with its own message. A GIF counts all its frames."""
        total = 0
        for array in inputs.values():
            if array.dtype.kind in ("O", "S", "U"):
                gif = np.array([isinstance(c, bytes) and c[:4] == b"GIF8" for c in array.reshape(-1)], bool)
                total += sum(gif_pixels(c) for c in array.reshape(-1)[gif])
                flat = array.reshape(-1)[~gif]
                if not flat.size:
                    continue
                try:
                    total += int(np.sum(_declared_pixels(tf.constant(flat, tf.string)).numpy()))
                except tf.errors.OpError:  # a broken JPEG header: count the others one by one
                    for contents in flat:
                        try:
                            total += int(_declared_pixels(tf.constant([contents], tf.string)).numpy()[0])
                        except tf.errors.OpError:
                            pass
            elif array.ndim == 4:  # pixels [batch, height, width, channels]
                total += int(np.prod(array.shape[:3], dtype=np.int64))
        return total

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
        pixels = self.request_pixels(inputs)
        if pixels > self.max_request_pixels:
            raise RequestError("RESOURCE_EXHAUSTED", f"the request's images hold {pixels} pixels, above the server "
                                                     f"limit of max_request_pixels={self.max_request_pixels}; "
                                                     "send fewer or smaller images per request")
        for alias, array in inputs.items():
            tensors[alias] = tf.constant(array, dtype=specs[alias].dtype)
        with self.slot():  # bounds the decoded images held at once across requests
            try:
                outputs = function(**tensors)
            except tf.errors.OpError as error:
                raise RequestError(code_name(error.error_code), tf_reason(error.message)) from None
            except (TypeError, ValueError) as error:
                raise RequestError("INVALID_ARGUMENT", str(error).strip().splitlines()[0]) from None
            finally:
                del tensors
                if pixels >= RELEASE_ABOVE_PIXELS:  # megapixel requests only: a trim costs ~ms
                    release_memory()
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

    def status(self, model_name: str, version: int | None) -> list[dict]:
        """Version states as GetModelStatus lists them (all, or the one asked for):
        {"version", "state", "error_code", "error_message"}; a version whose load failed
        is LOADING with the failure's code and reason until it loads."""
        if model_name != self.repository.model_name:
            raise RequestError("NOT_FOUND", f"Could not find any versions of model {model_name}")
        states = self.repository.states()
        if version is not None:
            states = [row for row in states if row["version"] == version]
            if not states:
                raise RequestError("NOT_FOUND", f"Could not find version {version} of model {model_name}")
            return states
        if not states:
            raise RequestError("NOT_FOUND", f"Could not find any versions of model {model_name}")
        return states
