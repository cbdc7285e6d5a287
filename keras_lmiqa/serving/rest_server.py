"""TF Serving's REST API (`/v1/models/...`) over a :class:`Predictor`, with http.server.

    GET  /v1/models/NAME[/versions/N]             -> {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N]/metadata    -> {"model_spec", "metadata": {"signature_def"}}
    POST /v1/models/NAME[/versions/N]:predict     {"signature_name", "instances" | "inputs"}
                                                  -> {"predictions"} | {"outputs"}

Binary strings travel as `{"b64": "..."}`; errors answer `{"error": message}` with the
HTTP status TF Serving uses for the gRPC code (400, 404, 413/429, 503, ...).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from keras_lmiqa.serving.predictor import Predictor
from keras_lmiqa.serving.status import HTTP_STATUS, RequestError

log = logging.getLogger(__name__)

_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                    r"(?P<action>/metadata|:predict|:classify|:regress)?/?$")


def _decode_string(value) -> bytes:
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise RequestError("INVALID_ARGUMENT", f"invalid base64 value: {error}") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise RequestError("INVALID_ARGUMENT", f'expected a string or {{"b64": ...}}, got {type(value).__name__}')


def _to_array(values, dtype: tf.DType, alias: str) -> np.ndarray:
    if not isinstance(values, list):
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' must be a list (a batch)")
    if dtype == tf.string:
        array = np.empty(len(values), dtype=object)
        array[:] = [_decode_string(v) for v in values]
        return array
    try:
        return np.asarray(values, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' is not a valid {dtype.name} tensor: {error}") from None


def _jsonable(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_jsonable(v) for v in value]
    return np.asarray(value).tolist()


class RestHandler(BaseHTTPRequestHandler):
    """Request handler; `self.server.predictor` and `self.server.max_request_bytes` are set
    by :func:`make_rest_server`."""

    protocol_version = "HTTP/1.1"
    server_version = "lmiqa-dev-server"

    def log_message(self, format, *args):  # noqa: A002 (http.server signature)
        log.debug("%s - %s", self.address_string(), format % args)

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, error: RequestError, status: int | None = None) -> None:
        self._send(status or HTTP_STATUS.get(error.code, 500), {"error": error.details})

    def _route(self):
        match = _ROUTE.match(self.path.split("?", 1)[0])
        if not match:
            raise RequestError("NOT_FOUND", f"Malformed request: {self.command} {self.path}")
        version = int(match["version"]) if match["version"] else None
        return match["name"], version, match["label"] or "", match["action"] or ""

    def do_GET(self):  # noqa: N802
        try:
            name, version, label, action = self._route()
            predictor: Predictor = self.server.predictor
            if action == "/metadata":
                servable, signature_defs = predictor.metadata(name, version)
                self._send(200, {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                                 "metadata": {"signature_def": json_format.MessageToDict(
                                     signature_defs, preserving_proto_field_name=True)}})
            elif action == "":
                versions = predictor.status(name, version)
                self._send(200, {"model_version_status": [
                    {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                    for v in versions]})
            else:
                raise RequestError("INVALID_ARGUMENT", f"{action} needs POST")
        except RequestError as error:
            self._fail(error)

    def do_POST(self):  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.server.max_request_bytes:
            self.close_connection = True
            if length <= 4 * self.server.max_request_bytes:
                # Read what the client is still sending, so it sees the 413 and not a
                # broken pipe; bodies far above the limit are cut off instead.
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            self._fail(RequestError("RESOURCE_EXHAUSTED", f"request body of {length} bytes is above the limit "
                                                          f"of {self.server.max_request_bytes} bytes"), status=413)
            return
        try:
            body = self.rfile.read(length)
            name, version, label, action = self._route()
            if action in (":classify", ":regress"):
                raise RequestError("UNIMPLEMENTED", f"{action[1:]} is not supported by this model")
            if action != ":predict":
                raise RequestError("NOT_FOUND", f"Malformed request: POST {self.path}")
            try:
                request = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as error:  # RecursionError: "[[[[..."
                raise RequestError("INVALID_ARGUMENT", f"JSON Parse error: {error}") from None
            if not isinstance(request, dict):
                raise RequestError("INVALID_ARGUMENT", "request body must be a JSON object")
            self._send(200, self._predict(request, name, version, label))
        except RequestError as error:
            self._fail(error)
        except Exception as error:  # answer, rather than drop the connection, whatever went wrong
            log.exception("REST request failed")
            self._fail(RequestError("INTERNAL", f"{type(error).__name__}: {error}"))

    def _predict(self, request: dict, name: str, version: int | None, label: str) -> dict:
        predictor: Predictor = self.server.predictor
        signature = request.get("signature_name", "") or ""
        dtypes = predictor.input_dtypes(name, version, signature, label)
        if ("instances" in request) == ("inputs" in request):
            raise RequestError("INVALID_ARGUMENT", 'request must have exactly one of "instances" or "inputs"')
        row_format = "instances" in request
        columns: dict[str, list] = {}
        if row_format:
            instances = request["instances"]
            if not isinstance(instances, list):
                raise RequestError("INVALID_ARGUMENT", '"instances" must be a list')
            named = bool(instances) and all(isinstance(r, dict) and "b64" not in r for r in instances)
            if named:
                for row in instances:
                    for alias, value in row.items():
                        columns.setdefault(alias, []).append(value)
            elif len(dtypes) == 1:
                columns[next(iter(dtypes))] = instances
            else:
                raise RequestError("INVALID_ARGUMENT", "instances must be objects naming each input")
        else:
            inputs = request["inputs"]
            columns = inputs if isinstance(inputs, dict) and "b64" not in inputs else {next(iter(dtypes)): inputs}
        arrays = {alias: _to_array(values, dtypes.get(alias, tf.string), alias) for alias, values in columns.items()}
        _, _, outputs = predictor.predict(name, version, signature, arrays, label=label)
        if row_format:
            if len(outputs) == 1:
                return {"predictions": _jsonable(next(iter(outputs.values())))}
            size = len(next(iter(outputs.values())))
            return {"predictions": [{key: _jsonable(value[i]) for key, value in outputs.items()}
                                    for i in range(size)]}
        if len(outputs) == 1:
            return {"outputs": _jsonable(next(iter(outputs.values())))}
        return {"outputs": {key: _jsonable(value) for key, value in outputs.items()}}


def make_rest_server(host: str, port: int, predictor: Predictor, max_request_bytes: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), RestHandler)
    server.daemon_threads = True
    server.predictor = predictor
    server.max_request_bytes = int(max_request_bytes)
    return server
