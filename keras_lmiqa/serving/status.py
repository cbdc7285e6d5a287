"""Canonical gRPC status codes, their HTTP mapping (as TF Serving's REST API uses) and
:class:`RequestError`, the ServingError that carries a code. No TensorFlow, no grpc."""

from __future__ import annotations

from collections.abc import Sequence

from keras_lmiqa.errors import ServingError

CODES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
         "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
         "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")

# tensorflow_serving/model_servers/http_rest_api_util.cc ToHTTPStatusCode.
HTTP_STATUS = {"OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
               "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
               "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501,
               "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401}
_FROM_HTTP = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              409: "ABORTED", 413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
              501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def code_from_http(status: int) -> str:
    return _FROM_HTTP.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")


def code_name(number: int) -> str:
    return CODES[number] if 0 <= number < len(CODES) else "UNKNOWN"


class RequestError(ServingError):
    """A request the server (or the transport) answered with a non-OK status.

    Attributes:
        code: canonical status name, e.g. `"INVALID_ARGUMENT"`, `"NOT_FOUND"`, `"UNAVAILABLE"`.
        details: the server's message, unchanged (for a bad image, TensorFlow's own).
        labels: the paths (or `<bytes #i>`) of the images in the failing request, if known.
        batch: `(index, count)` of the failing request among those one call sent, if known.
    """

    def __init__(self, code: str, details: str, *, labels: Sequence[str] = (),
                 batch: tuple[int, int] | None = None, context: str = ""):
        self.code = code
        self.details = details
        self.labels = list(labels)
        self.batch = batch
        super().__init__(f"{context}{code}: {details}" if context else f"{code}: {details}")

    def with_batch(self, labels: Sequence[str], first: int, batch: tuple[int, int]) -> RequestError:
        """The same error, its message naming the request and images it concerned."""
        shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
        last = first + len(labels) - 1
        span = f"image {first}" if last == first else f"images {first}-{last}"
        context = f"request {batch[0] + 1}/{batch[1]} ({span}: {shown}) failed: "
        return RequestError(self.code, self.details, labels=labels, batch=batch, context=context)
