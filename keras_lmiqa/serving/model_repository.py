"""The versions of one exported model, loaded with TensorFlow and kept up to date.

An export folder holds numeric version folders (`<export_dir>/<version>/saved_model.pb`);
names starting with `.tmp-` (an export in progress) and anything non-numeric are
ignored. :meth:`ModelRepository.refresh` loads new versions *before* publishing them and
drops versions whose folder disappeared; requests hold a reference to the version they
started with, so a swap never fails a request in flight. A background thread polls
every `poll_seconds` (like TF Serving's `--file_system_poll_wait_seconds`).

A version that fails to load (a copy still in progress: `saved_model.pb` there, its
`variables/` not yet) is retried, as TF Serving retries loads: at once when its files
change, otherwise after a backoff doubling from `retry_seconds` up to `max_retry_seconds`,
for as long as its folder is there. Until it loads, `states()` reports it LOADING with
the last error, so GetModelStatus shows why it is not served.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_lmiqa.constants import BYTES_SIGNATURE, MODEL_NAME, WARMUP_FILE, version_dirs
from keras_lmiqa.errors import ModelError
from keras_lmiqa.image_io import error_reason
from keras_lmiqa.serving.status import RequestError, code_name

log = logging.getLogger(__name__)


def served_versions(export_dir: str) -> dict[int, str]:
    """{version: path} of an export (`constants.version_dirs`); ModelError if it cannot be listed."""
    try:
        return version_dirs(export_dir)
    except OSError as error:
        raise ModelError(f"cannot list export folder {export_dir}: {error.strerror or error}") from error


class Servable:
    """One loaded version: its signatures (concrete functions) and SignatureDefs.

    Loading replays the export's warm-up requests (`assets.extra/tf_serving_warmup_requests`,
    as TF Serving's `--enable_model_warmup`): a signature's first call initialises its
    graph (seconds), and that must happen before the version takes requests, not in them.
    """

    def __init__(self, version: int, path: str):
        self.version = version
        self.path = path
        self.module = tf.saved_model.load(path)
        self.signatures = dict(self.module.signatures)
        self.input_specs = {name: dict(fn.structured_input_signature[1]) for name, fn in self.signatures.items()}
        self.signature_defs = _signature_defs(path)
        self.warmed_up = self._warm_up()

    def __repr__(self) -> str:
        return f"Servable(version={self.version}, signatures={sorted(self.signatures)})"

    def _warm_up(self) -> int:
        """Run the PredictRequests of the warm-up file, if any; returns how many ran."""
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        from tensorflow_serving.apis import prediction_log_pb2

        count = 0
        for record in tf.data.TFRecordDataset(path).take(100).as_numpy_iterator():
            request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            function = self.signatures[request.model_spec.signature_name or BYTES_SIGNATURE]
            function(**{alias: tf.constant(tf.make_ndarray(proto)) for alias, proto in request.inputs.items()})
            count += 1
        return count


def _signature_defs(path: str):
    """The SignatureDefMap of the `serve` MetaGraph, read from saved_model.pb (as TF Serving)."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    meta_graph = next((m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags),
                      saved_model.meta_graphs[0])
    result = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in meta_graph.signature_def.items():
        result.signature_def[name].CopyFrom(signature)
    return result


def _fingerprint(path: str) -> tuple[int, int, int]:
    """(files, bytes, newest mtime in ns) under a version folder: changes while a copy lands."""
    files = size = newest = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                info = os.stat(os.path.join(root, name))
            except OSError:  # removed while we look: the next poll sees the new state
                continue
            files, size, newest = files + 1, size + info.st_size, max(newest, info.st_mtime_ns)
    return files, size, newest


def _load_error(error: BaseException) -> tuple[str, str]:
    """(status code, one-line reason) of a failed load, without TensorFlow's node and op details."""
    if isinstance(error, tf.errors.OpError):
        return code_name(error.error_code), error_reason(error.message)
    text = str(error).strip()
    code = "NOT_FOUND" if isinstance(error, FileNotFoundError) else "UNKNOWN"  # e.g. variables/ not there yet
    return code, (error_reason(text) if text else type(error).__name__)


@dataclass
class LoadFailure:
    """The last failed load of a version folder, and when to try again."""

    path: str
    fingerprint: tuple[int, int, int]
    attempts: int
    retry_at: float  # time.monotonic()
    code: str
    reason: str

    def message(self) -> str:
        wait = max(0.0, self.retry_at - time.monotonic())
        return (f"load failed {self.attempts} time(s), retrying in {wait:.0f} s or when its files change: "
                f"{self.reason}")


class ModelRepository:
    """Loaded versions of model `model_name` under `export_dir`.

    Args:
        export_dir: folder of numeric version folders.
        model_name: name clients ask for. Defaults to "lmiqa".
        poll_seconds: how often the polling thread rescans; <= 0 disables polling (and
            with it the retries of failed loads).
        retry_seconds: wait before retrying a failed load whose files did not change;
            doubles on each failure. Defaults to 1.
        max_retry_seconds: the longest such wait. Defaults to 60 (TF Serving's
            `--load_retry_interval_micros` default).
    """

    def __init__(self, export_dir: str, model_name: str = MODEL_NAME, poll_seconds: float = 2.0,
                 retry_seconds: float = 1.0, max_retry_seconds: float = 60.0):
        self.export_dir = os.path.abspath(export_dir)
        self.model_name = model_name
        self.poll_seconds = float(poll_seconds)
        self.retry_seconds = float(retry_seconds)
        self.max_retry_seconds = float(max_retry_seconds)
        self._servables: dict[int, Servable] = {}
        self._failures: dict[int, LoadFailure] = {}
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def versions(self) -> list[int]:
        with self._lock:
            return sorted(self._servables)

    def failures(self) -> dict[int, LoadFailure]:
        """{version: its last failed load} of the versions on disk not loaded yet."""
        with self._lock:
            return dict(self._failures)

    def states(self) -> list[dict]:
        """Every version on disk this repository knows: {"version", "state", "error_code",
        "error_message"}, AVAILABLE for loaded ones, LOADING (with the last error) for
        versions whose load failed and is being retried; by version."""
        with self._lock:
            rows = [{"version": v, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}
                    for v in self._servables]
            rows += [{"version": v, "state": "LOADING", "error_code": f.code, "error_message": f.message()}
                     for v, f in self._failures.items() if v not in self._servables]
        return sorted(rows, key=lambda row: row["version"])

    def _should_try(self, version: int, path: str) -> tuple[bool, tuple[int, int, int]]:
        fingerprint = _fingerprint(path)
        failure = self._failures.get(version)
        if failure is None or failure.path != path or failure.fingerprint != fingerprint:
            return True, fingerprint
        return time.monotonic() >= failure.retry_at, fingerprint

    def refresh(self) -> list[int]:
        """Load new version folders (and failed ones due a retry), drop vanished ones;
        returns the versions loaded now."""
        with self._refresh_lock:
            on_disk = served_versions(self.export_dir)
            loaded = []
            for version in sorted(set(on_disk) - set(self.versions())):
                path = on_disk[version]
                due, fingerprint = self._should_try(version, path)  # before loading: a change mid-load retries
                if not due:
                    continue
                try:
                    servable = Servable(version, path)
                except Exception as error:  # a partial copy, a corrupt file: must not stop polling
                    self._record_failure(version, path, fingerprint, error)
                    continue
                with self._lock:
                    self._servables[version] = servable
                    self._failures.pop(version, None)
                loaded.append(version)
                log.info("loaded %s version %d from %s", self.model_name, version, path)
            with self._lock:
                for version in set(self._servables) - set(on_disk):
                    del self._servables[version]
                    log.info("unloaded %s version %d (folder removed)", self.model_name, version)
                for version in set(self._failures) - set(on_disk):
                    del self._failures[version]
            return loaded

    def _record_failure(self, version: int, path: str, fingerprint, error: BaseException) -> None:
        previous = self._failures.get(version)
        attempts = previous.attempts + 1 if previous is not None and previous.path == path else 1
        delay = min(self.retry_seconds * 2 ** (attempts - 1), self.max_retry_seconds)
        code, reason = _load_error(error)
        with self._lock:
            self._failures[version] = LoadFailure(path, fingerprint, attempts, time.monotonic() + delay, code, reason)
        log.error("cannot load %s version %d from %s (attempt %d; retrying in %.1f s or when its files change): %s",
                  self.model_name, version, path, attempts, delay, reason)

    def get(self, version: int | None = None) -> Servable:
        """The requested version, or the latest; RequestError NOT_FOUND otherwise."""
        with self._lock:
            if version is None:
                if not self._servables:
                    raise RequestError("NOT_FOUND", f"Servable not found for request: Latest({self.model_name})"
                                                    + self._failed_note())
                return self._servables[max(self._servables)]
            if version not in self._servables:
                failure = self._failures.get(version)
                note = f" (its load failed: {failure.reason})" if failure is not None else ""
                raise RequestError("NOT_FOUND",
                                   f"Servable not found for request: Specific({self.model_name}, {version}){note}")
            return self._servables[version]

    def _failed_note(self) -> str:
        if not self._failures:
            return ""
        version, failure = max(self._failures.items())
        return f" (version {version} failed to load: {failure.reason})"

    def start_polling(self) -> None:
        if self.poll_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="lmiqa-version-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as error:  # export folder briefly unreadable, a folder vanishing: keep serving
                log.warning("version poll failed: %s", error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
