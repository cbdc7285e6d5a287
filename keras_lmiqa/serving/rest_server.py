"""TF Serving's REST API (`/v1/models/...`) over a :class:`Predictor`: a small asyncio HTTP/1.1 server.

    GET  /v1/models/NAME[/versions/N]             -> {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N]/metadata    -> {"model_spec", "metadata": {"signature_def"}}
    POST /v1/models/NAME[/versions/N]:predict     {"signature_name", "instances" | "inputs"}
                                                  -> {"predictions"} | {"outputs"}

Binary strings travel as `{"b64": "..."}`; errors answer `{"error": message}` with the
HTTP status TF Serving uses for the gRPC code (400, 404, 413/429, 503, ...).

Connections are read by one event-loop thread, so a client that stalls mid-request
holds a socket, not a thread; complete requests run on a pool of `workers` threads.
Limits, each answered with one JSON error line:
- `read_timeout`: a request's headers, and then its body, must arrive within it
  (408 for a late body, an idle connection is closed);
- `max_connections` open at once (more are closed at accept);
- bodies need a Content-Length of digits (`-1`, `abc`: 400) up to `max_request_bytes`
  (413, answered from the header at once, then the connection closes); chunked bodies
  are refused (411) and the connection closed, so their bytes are never read as another
  request;
- `max_buffered_bytes` of request bodies held at once, received or waiting for a worker
  (503, which clients retry);
- a POST a browser sends from a page of another origin (its `Origin` header names
  another host than `Host`) is refused (403): only the server's own page may call it.

`pages` ({path: (body, headers)}, e.g. `keras_lmiqa.ui.server_page.routes`) are answered
to GET with their bytes; off unless given.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import http
import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from keras_lmiqa.serving.limits import DEFAULT_READ_TIMEOUT
from keras_lmiqa.serving.predictor import Predictor, release_memory
from keras_lmiqa.serving.status import HTTP_STATUS, RequestError

log = logging.getLogger(__name__)

_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                    r"(?P<action>/metadata|:predict|:classify|:regress)?/?$")
_LENGTH = re.compile(r"[0-9]{1,18}")
MAX_HEADER_BYTES = 64 * 1024
LINGER_SECONDS = 1.0  # after refusing a body: how long to discard what the client still sends


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
    """JSON values as an array of `dtype`. Numbers are checked, never cast: an integer
    input refuses 1.5, true or 300 for uint8 rather than truncate or wrap them."""
    if not isinstance(values, list):
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' must be a list (a batch)")
    if dtype == tf.string:
        array = np.empty(len(values), dtype=object)
        array[:] = [_decode_string(v) for v in values]
        return array
    try:
        array = np.asarray(values)
    except (TypeError, ValueError, OverflowError, RecursionError) as error:  # ragged nesting
        raise RequestError("INVALID_ARGUMENT", f"input '{alias}' is not a valid {dtype.name} tensor: "
                                               f"{str(error).splitlines()[0]}") from None
    if array.size == 0:
        return np.zeros(array.shape, dtype.as_numpy_dtype)
    kind = array.dtype.kind
    if dtype.is_integer:
        if kind not in "iu":
            raise RequestError("INVALID_ARGUMENT", f"input '{alias}' must hold integers ({dtype.name}); got "
                                                   f"{_describe(array)}")
        low, high = array.min(), array.max()
        if low < dtype.min or high > dtype.max:
            bad = low if low < dtype.min else high
            raise RequestError("INVALID_ARGUMENT", f"input '{alias}' holds {bad}, outside the {dtype.name} range "
                                                   f"[{dtype.min}, {dtype.max}]")
    elif dtype.is_floating:
        if kind not in "iuf":
            raise RequestError("INVALID_ARGUMENT", f"input '{alias}' must hold numbers ({dtype.name}); got "
                                                   f"{_describe(array)}")
    elif dtype == tf.bool:
        if kind != "b":
            raise RequestError("INVALID_ARGUMENT", f"input '{alias}' must hold true/false; got {_describe(array)}")
    return array.astype(dtype.as_numpy_dtype)


def _describe(array: np.ndarray) -> str:
    """What a JSON array holds instead, with an example: 'non-integer numbers such as 1.5'."""
    names = {"f": "non-integer numbers", "b": "true/false", "U": "strings", "O": "mixed values"}
    flat = array.reshape(-1)
    example = flat[0]
    if array.dtype.kind == "f":
        fractional = flat[flat != np.floor(flat)]
        example = fractional[0] if fractional.size else flat[0]
    return f"{names.get(array.dtype.kind, array.dtype.name)} such as {json.dumps(np.asarray(example).tolist())}"


def _jsonable(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_jsonable(v) for v in value]
    return np.asarray(value).tolist()


class _Page:
    """A static answer (a page of `RestServer.pages`): its bytes and headers."""

    def __init__(self, body: bytes, headers: dict[str, str]):
        self.body, self.headers = body, headers


def _cross_origin(headers: dict[str, str]) -> str | None:
    """The Origin of a browser request from another site (None when same-origin or not a browser)."""
    origin = headers.get("origin")
    if origin is None:
        return None
    host = headers.get("host", "")
    if origin.lower() in (f"http://{host}".lower(), f"https://{host}".lower()):
        return None
    return origin


class _HttpError(Exception):
    """A request refused before it reaches the API: its status, message, and that the
    connection must close (its remaining bytes are not a request)."""

    def __init__(self, status: int, message: str, close: bool = True):
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """(method, target, version, {lower-case name: value}) of a request's header block."""
    lines = head.decode("latin-1").split("\r\n")
    while lines and not lines[0]:  # stray CRLFs before a request line are allowed (RFC 9112 2.2)
        lines.pop(0)
    parts = lines[0].split(" ") if lines else []
    if len(parts) != 3 or not re.fullmatch(r"HTTP/1\.[01]", parts[2]) or not parts[1].startswith("/"):
        raise _HttpError(400, f"malformed request line: {(lines[0] if lines else '')[:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _HttpError(400, f"malformed header line: {line[:100]!r}")
        key, value = name.lower(), value.strip()
        if key in headers:
            if key == "content-length" and headers[key] != value:
                raise _HttpError(400, "conflicting Content-Length headers")
            value = headers[key] if key == "content-length" else f"{headers[key]}, {value}"
        headers[key] = value
    return parts[0], parts[1], parts[2], headers


class RestServer:
    """The REST API on `host:port` (bound in the constructor; 0 picks a free port).

    Args:
        predictor: answers the API calls.
        max_request_bytes: largest request body.
        workers: threads running complete requests (JSON, prediction). Defaults to 4.
        read_timeout: seconds a request's headers, then its body, may take to arrive. Defaults to 30.
        max_connections: connections open at once. Defaults to 1024.
        max_buffered_bytes: request body bytes held at once. Defaults to 4 x max_request_bytes.
        pages: {path: (body, headers)} answered to GET (a UI); None serves the API only.
    """

    def __init__(self, host: str, port: int, predictor: Predictor, max_request_bytes: int, workers: int = 4,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, max_connections: int = 1024,
                 max_buffered_bytes: int | None = None, pages: dict[str, tuple[bytes, dict]] | None = None):
        self.predictor = predictor
        self.pages = {path: _Page(body, headers) for path, (body, headers) in (pages or {}).items()}
        self.max_request_bytes = int(max_request_bytes)
        self.read_timeout = float(read_timeout)
        self.max_connections = int(max_connections)
        self.max_buffered_bytes = int(max_buffered_bytes or 4 * self.max_request_bytes)
        self.open_connections = 0
        self.buffered_bytes = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._pool = ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="lmiqa-rest")
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._connection, host, port, limit=MAX_HEADER_BYTES, backlog=256))
        except BaseException:
            self._loop.close()
            self._pool.shutdown(wait=False)
            raise
        self.server_address = self._server.sockets[0].getsockname()[:2]

    def start(self) -> RestServer:
        self._thread = threading.Thread(target=self._loop.run_forever, name="lmiqa-rest-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, stop the loop and the workers."""
        if self._loop.is_closed():
            return
        if self._thread is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout)
            except Exception as error:  # closing is best effort: the loop stops regardless
                log.debug("closing REST connections: %s", error)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        else:
            self._loop.run_until_complete(self._close_all())
        self._pool.shutdown(wait=False, cancel_futures=True)
        if not self._loop.is_running():
            self._loop.close()

    async def _close_all(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:  # connections waiting on a read or a worker: end them here, not at loop close
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ connections
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.max_connections:
            writer.transport.abort()  # refused at once: no thread, no buffer
            return
        self.open_connections += 1
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass  # the client went away (a reset, ENOTCONN on a half-close) or stalled: nothing to answer
        except asyncio.CancelledError:
            pass  # stop(): ending normally keeps asyncio from logging the cancellation as an error
        except Exception:  # a bug here must not take the loop down
            log.exception("REST connection failed")
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.close()

    async def _one_request(self, reader, writer) -> bool:
        """Read, answer one request; True to keep the connection for another."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout)
        except asyncio.IncompleteReadError:
            return False  # closed between requests
        except asyncio.TimeoutError:
            return False  # idle, or headers never completed: close
        except asyncio.LimitOverrunError:
            await self._refuse(reader, writer, _HttpError(431, f"request headers above {MAX_HEADER_BYTES} bytes"))
            return False
        held = 0
        try:
            method, target, version, headers = _parse_head(head)
            length = self._content_length(headers)
            if method == "POST" and (origin := _cross_origin(headers)) is not None:
                raise _HttpError(403, f"cross-origin request refused: Origin {origin[:100]!r} is not this server")
            if length > self.max_request_bytes:  # answered at once; `_refuse` drains what still comes
                raise _HttpError(413, f"request body of {length} bytes is above the limit of "
                                      f"{self.max_request_bytes} bytes")
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = bytearray()
            held = await self._read_body(reader, length, body)
            keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            status, payload = await self._loop.run_in_executor(self._pool, self._handle, method, target, body)
            del body
            await self._send(writer, status, payload, close=not keep)
            return keep
        except _HttpError as error:
            await self._refuse(reader, writer, error)
            return not error.close
        finally:
            self.buffered_bytes -= held

    def _content_length(self, headers: dict[str, str]) -> int:
        if "transfer-encoding" in headers:
            raise _HttpError(411, "chunked (Transfer-Encoding) request bodies are not supported: send the body "
                                  "with a Content-Length")
        raw = headers.get("content-length")
        if raw is None:
            return 0
        if not _LENGTH.fullmatch(raw):
            if re.fullmatch(r"[0-9]+", raw):  # digits, but more than any limit
                return 1 << 62
            raise _HttpError(400, f"invalid Content-Length {raw[:40]!r}: expected a number of bytes (digits only)")
        return int(raw)

    async def _read_body(self, reader, length: int, body: bytearray) -> int:
        """Read `length` bytes into `body` within read_timeout, counting them against
        max_buffered_bytes; returns the bytes now held (the caller releases them)."""
        deadline = self._loop.time() + self.read_timeout
        held = 0
        try:
            while len(body) < length:
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    raise asyncio.TimeoutError
                chunk = await asyncio.wait_for(reader.read(min(length - len(body), 1 << 20)), remaining)
                if not chunk:
                    raise asyncio.IncompleteReadError(bytes(body), length)
                if self.buffered_bytes + len(chunk) > self.max_buffered_bytes:
                    raise _HttpError(503, f"server busy: {self.buffered_bytes} bytes of request bodies held, "
                                          f"the limit is {self.max_buffered_bytes}; retry later")
                self.buffered_bytes += len(chunk)
                held += len(chunk)
                body += chunk
        except asyncio.TimeoutError:
            self.buffered_bytes -= held
            raise _HttpError(408, f"request body not received within {self.read_timeout:g} s "
                                  f"({len(body)} of {length} bytes)") from None
        except BaseException:
            self.buffered_bytes -= held
            raise
        return held

    async def _discard(self, reader, count: int, seconds: float | None = None) -> None:
        """Read and drop up to `count` bytes (so the client reads our answer, not a broken
        pipe), for at most `seconds` (read_timeout)."""
        deadline = self._loop.time() + (self.read_timeout if seconds is None else seconds)
        while count > 0:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return
            try:
                chunk = await asyncio.wait_for(reader.read(min(count, 1 << 20)), remaining)
            except (asyncio.TimeoutError, ConnectionError):
                return
            if not chunk:
                return
            count -= len(chunk)

    async def _refuse(self, reader, writer, error: _HttpError) -> None:
        await self._send(writer, error.status, {"error": error.message}, close=error.close)
        if error.close:  # half-close, then drop what the client still sends: a reset would lose our answer
            if writer.can_write_eof():
                writer.write_eof()
            await self._discard(reader, 1 << 40, LINGER_SECONDS)

    async def _send(self, writer, status: int, payload: dict | _Page, close: bool) -> None:
        if isinstance(payload, _Page):
            body, headers = payload.body, payload.headers
        else:
            body, headers = json.dumps(payload).encode("utf-8"), {"Content-Type": "application/json"}
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        head = (f"HTTP/1.1 {status} {phrase}\r\nServer: lmiqa-dev-server\r\n"
                + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                + f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n")
        writer.write(head.encode("latin-1") + body)
        await asyncio.wait_for(writer.drain(), self.read_timeout)  # a client that never reads is dropped

    # ------------------------------------------------------------------ the API (worker threads)
    def _handle(self, method: str, target: str, body) -> tuple[int, dict | _Page]:
        try:
            if method == "GET" and (page := self.pages.get(target.split("?", 1)[0])) is not None:
                return 200, page
            if method == "GET":
                return 200, self._get(target)
            if method == "POST":
                return 200, self._post(target, body)
            raise RequestError("UNIMPLEMENTED", f"method {method[:20]} is not supported (GET or POST)")
        except RequestError as error:
            return HTTP_STATUS.get(error.code, 500), {"error": error.details}
        except Exception as error:  # answer, rather than drop the connection, whatever went wrong
            log.exception("REST request failed")
            return 500, {"error": f"{type(error).__name__}: {error}"}

    @staticmethod
    def _route(method: str, target: str):
        match = _ROUTE.match(target.split("?", 1)[0])
        if not match:
            raise RequestError("NOT_FOUND", f"Malformed request: {method} {target[:200]}")
        version = int(match["version"]) if match["version"] else None
        return match["name"], version, match["label"] or "", match["action"] or ""

    def _get(self, target: str) -> dict:
        name, version, _, action = self._route("GET", target)
        if action == "/metadata":
            servable, signature_defs = self.predictor.metadata(name, version)
            return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                    "metadata": {"signature_def": json_format.MessageToDict(signature_defs,
                                                                            preserving_proto_field_name=True)}}
        if action == "":
            return {"model_version_status": [
                {"version": str(row["version"]), "state": row["state"],
                 "status": {"error_code": row["error_code"], "error_message": row["error_message"]}}
                for row in self.predictor.status(name, version)]}
        raise RequestError("INVALID_ARGUMENT", f"{action} needs POST")

    def _post(self, target: str, body) -> dict:
        name, version, label, action = self._route("POST", target)
        if action in (":classify", ":regress"):
            raise RequestError("UNIMPLEMENTED", f"{action[1:]} is not supported by this model")
        if action != ":predict":
            raise RequestError("NOT_FOUND", f"Malformed request: POST {target[:200]}")
        with self.predictor.slot():  # a JSON tree of pixels takes ~25x its body: parse under the bound
            try:
                try:
                    request = json.loads(body)
                except (UnicodeDecodeError, ValueError, RecursionError) as error:  # RecursionError: "[[[[..."
                    raise RequestError("INVALID_ARGUMENT", f"JSON Parse error: {error}") from None
                if not isinstance(request, dict):
                    raise RequestError("INVALID_ARGUMENT", "request body must be a JSON object")
                return self._predict(request, name, version, label)
            finally:
                request = None
                if len(body) > self.max_request_bytes // 8:  # the freed JSON tree: give its pages back
                    release_memory()

    def _predict(self, request: dict, name: str, version: int | None, label: str) -> dict:
        predictor = self.predictor
        signature = request.get("signature_name", "") or ""
        dtypes = predictor.input_dtypes(name, version, signature, label)
        if ("instances" in request) == ("inputs" in request):
            raise RequestError("INVALID_ARGUMENT", 'request must have exactly one of "instances" or "inputs"')
        row_format = "instances" in request
        columns: dict[str, list] = {}
        if row_format:
            instances = request.pop("instances")  # popped: the JSON tree is freed as the arrays are built
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
            inputs = request.pop("inputs")
            columns = inputs if isinstance(inputs, dict) and "b64" not in inputs else {next(iter(dtypes)): inputs}
        instances = inputs = None  # only `columns` holds the values now: each is freed once converted
        arrays = {}
        for alias in list(columns):
            arrays[alias] = _to_array(columns.pop(alias), dtypes.get(alias, tf.string), alias)
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
