"""Development server: TF Serving's gRPC and REST APIs over an LML-IQA export folder.

    lmiqa serve --export-dir exports/lmiqa --port 8500 --rest-port 8501

This is for development and tests, where `tensorflow_model_server` is not installed.
Production is TF Serving itself (see deploy/README.md): this server has no request
batching across clients, no monitoring and no TLS, and it binds 127.0.0.1 unless told
otherwise. Like TF Serving with `--enable_model_warmup`, it replays a version's
`assets.extra/tf_serving_warmup_requests` before serving it.

What it shares with TF Serving: the PredictionService (Predict, GetModelMetadata) and
ModelService (GetModelStatus) protos, the REST routes and JSON shapes, the status codes,
and version handling: numeric version folders, `.tmp-*` folders ignored, the latest
version by default or `model_spec.version`, and new version folders picked up by polling
(every 2 s by default) without failing requests in flight. Every version present is
served (TF Serving's `all` policy); deleting a version folder unloads it.

Request limits: batches of 1..`max_batch_size` (64) images, messages up to
`max_request_bytes` (32 MiB; gRPC answers RESOURCE_EXHAUSTED, REST 413), at most
`max_request_pixels` decoded pixels per request (50 M, read from the image headers
before decoding; RESOURCE_EXHAUSTED, REST 429), `max_concurrent_requests` (1) requests
converted and scored at once. The export scores a request's images one at a time, so memory above
idle stays within about `max_concurrent_requests` times what one image of
`max_request_pixels` takes (docs/reliability.md). Bad input answers
INVALID_ARGUMENT with a message and the server stays up. A version that fails to load
(a copy still arriving) is retried with backoff and reported in GetModelStatus.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from concurrent import futures

# oneDNN's default allocator is a BFC pool that never returns memory: after one large
# request the server's RSS would stay at that request's peak. The system allocator gives
# it back (read when TensorFlow first allocates, so this must precede the first op; set
# TF_ONEDNN_USE_SYSTEM_ALLOCATOR=0 to keep the pool).
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")

import grpc  # noqa: E402

from keras_lmiqa.constants import MAX_MESSAGE_BYTES, MODEL_NAME  # noqa: E402
from keras_lmiqa.errors import ConfigError, ModelError, ServingError  # noqa: E402
from keras_lmiqa.serving.grpc_service import add_services  # noqa: E402
from keras_lmiqa.serving.limits import (  # noqa: E402
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_REQUEST_PIXELS,
    DEFAULT_READ_TIMEOUT,
    check_server_settings,
)
from keras_lmiqa.serving.model_repository import ModelRepository  # noqa: E402
from keras_lmiqa.serving.predictor import Predictor  # noqa: E402
from keras_lmiqa.serving.rest_server import RestServer  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = MAX_MESSAGE_BYTES


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class LocalServer:
    """gRPC (+ optional REST) development server for one exported model.

    Args:
        export_dir: folder of numeric SavedModel version folders (`<export_dir>/<N>/`).
        port: gRPC port; 0 picks a free one (read `server.port` after `start()`).
        rest_port: REST port (0 = pick a free one); None disables REST. Defaults to None.
        host: address to bind. Defaults to "127.0.0.1" (loopback only).
        model_name: name clients ask for. Defaults to "lmiqa".
        poll_seconds: version folder polling interval; 0 disables polling. Defaults to 2.
        max_batch_size: largest batch per request. Defaults to 64.
        max_request_bytes: largest request message / body. Defaults to 32 MiB.
        max_request_pixels: decoded pixels per request, all images together. Defaults to 50 M.
        max_concurrent_requests: requests converted and scored at once (others wait). Defaults to 1.
        workers: gRPC request threads. Defaults to 8.
        rest_workers: REST request threads (JSON and prediction). Defaults to 4.
        read_timeout: REST: seconds for a request's headers, then its body. Defaults to 30.
        retry_seconds: first wait before retrying a failed version load (doubling up to 60 s).
            Defaults to 1.
        ui: also serve the photo page (`keras_lmiqa.ui.server_page`) at `/` of the REST
            port; needs `rest_port`. Defaults to False.
    """

    def __init__(self, export_dir: str, port: int = 8500, rest_port: int | None = None, host: str = "127.0.0.1",
                 model_name: str = MODEL_NAME, poll_seconds: float = 2.0, max_batch_size: int = 64,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS,
                 max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS, workers: int = 8,
                 rest_workers: int = 4, read_timeout: float = DEFAULT_READ_TIMEOUT, retry_seconds: float = 1.0,
                 ui: bool = False):
        if ui and rest_port is None:
            raise ConfigError("ui needs rest_port: the page is served on the REST port")
        check_server_settings(port=port, rest_port=rest_port, max_batch_size=max_batch_size,
                              max_request_bytes=max_request_bytes, max_request_pixels=max_request_pixels,
                              max_concurrent_requests=max_concurrent_requests, workers=workers,
                              rest_workers=rest_workers, read_timeout=read_timeout, poll_seconds=poll_seconds,
                              retry_seconds=retry_seconds)
        self.repository = ModelRepository(export_dir, model_name, poll_seconds, retry_seconds=retry_seconds)
        self.predictor = Predictor(self.repository, max_batch_size, max_input_bytes=max_request_bytes,
                                   max_request_pixels=max_request_pixels,
                                   max_concurrent_requests=max_concurrent_requests)
        self.rest_workers = int(rest_workers)
        self.read_timeout = float(read_timeout)
        self.host = host
        self.requested_port = int(port)
        self.requested_rest_port = rest_port
        self.max_request_bytes = int(max_request_bytes)
        self.max_batch_size = int(max_batch_size)
        self.ui = bool(ui)
        self.workers = int(workers)
        self.port: int | None = None
        self.rest_port: int | None = None
        self._grpc: grpc.Server | None = None
        self._rest: RestServer | None = None
        self._stopped = threading.Event()

    @property
    def model_name(self) -> str:
        return self.repository.model_name

    def versions(self) -> list[int]:
        return self.repository.versions()

    def start(self) -> LocalServer:
        """Load the versions, bind, start serving and polling. Raises ModelError when the
        export folder has no loadable version, ServingError when a port cannot be bound."""
        self.repository.refresh()
        if not self.repository.versions():
            failed = "".join(f"; version {v}: {f.reason}" for v, f in sorted(self.repository.failures().items()))
            raise ModelError(f"no loadable SavedModel version folder (<N>/saved_model.pb) in "
                             f"{self.repository.export_dir}{failed}")
        options = [("grpc.max_receive_message_length", self.max_request_bytes),
                   ("grpc.max_send_message_length", self.max_request_bytes),
                   ("grpc.so_reuseport", 0)]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=self.workers,
                                                            thread_name_prefix="lmiqa-grpc"), options=options)
        add_services(self._grpc, self.predictor)
        try:
            self.port = self._grpc.add_insecure_port(_address(self.host, self.requested_port))
        except RuntimeError as error:
            raise ServingError(f"cannot bind gRPC to {_address(self.host, self.requested_port)}: {error}") from None
        if not self.port:
            raise ServingError(f"cannot bind gRPC to {_address(self.host, self.requested_port)}")
        if self.requested_rest_port is not None:
            pages = None
            if self.ui:
                from keras_lmiqa.ui.server_page import routes

                pages = routes(self.model_name, self.max_batch_size, self.max_request_bytes)
            try:
                self._rest = RestServer(self.host, int(self.requested_rest_port), self.predictor,
                                        self.max_request_bytes, workers=self.rest_workers,
                                        read_timeout=self.read_timeout, pages=pages)
            except OSError as error:
                raise ServingError(f"cannot bind REST to {_address(self.host, self.requested_rest_port)}: "
                                   f"{error.strerror or error}") from None
            self.rest_port = self._rest.server_address[1]
            self._rest.start()
        self._grpc.start()
        self.repository.start_polling()
        log.info("serving %s versions %s on %s", self.model_name, self.versions(), self.describe())
        return self

    def describe(self) -> str:
        """`HOST:PORT` of gRPC, plus ` and REST on http://HOST:PORT` when REST is on."""
        text = _address(self.host, self.port)
        if self.rest_port is not None:
            text += f" and REST on http://{_address(self.host, self.rest_port)}"
            if self.ui:
                text += f" (photo page: http://{_address(self.host, self.rest_port)}/)"
        return text

    def stop(self, grace: float = 1.0) -> None:
        """Stop accepting requests, let in-flight ones finish (up to `grace` s), stop polling."""
        if self._stopped.is_set():
            return
        self.repository.stop()
        if self._rest is not None:
            self._rest.stop()
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop()` was called; True if stopped."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> LocalServer:
        return self.start() if self.port is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve_until_signalled(server: LocalServer, ready=print) -> None:
    """Start `server`, call `ready(line)` once serving, stop cleanly on SIGINT/SIGTERM."""
    server.start()
    previous = {}

    def on_signal(number, _frame):
        log.info("received %s, stopping", signal.Signals(number).name)
        threading.Thread(target=server.stop, name="lmiqa-stop", daemon=True).start()

    for number in (signal.SIGINT, signal.SIGTERM):
        previous[number] = signal.signal(number, on_signal)
    try:
        ready(f"serving {server.model_name} versions {server.versions()} on {server.describe()}")
        while not server.wait(0.5):
            pass
    finally:
        server.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
