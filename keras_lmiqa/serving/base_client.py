"""What the gRPC and REST clients share: batching, retries, output assembly.

Subclasses implement `_predict_once(inputs, version)`, `metadata` and `status`; this
class turns lists of paths/bytes into requests of `batch_size`, retries UNAVAILABLE with
exponential backoff, and assembles `score`/`score_details`. No TensorFlow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from keras_lmiqa.constants import BYTES_SIGNATURE, CROP_KEYS, MODEL_NAME, OUTPUT_KEYS, SIGNATURE_INPUTS
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.serving.images import as_inputs, read_bytes
from keras_lmiqa.serving.status import RequestError

log = logging.getLogger(__name__)

# Input alias of each exported signature (`constants.SIGNATURE_INPUTS`).
INPUT_KEYS = SIGNATURE_INPUTS
RETRYABLE = ("UNAVAILABLE",)

Progress = Callable[[int, int], None]


class BaseClient:
    """Shared scoring logic. Args are those of :class:`keras_lmiqa.serving.Client`."""

    def __init__(self, model_name: str = MODEL_NAME, signature: str = BYTES_SIGNATURE, timeout: float = 10.0,
                 batch_size: int = 32, retries: int = 3, backoff: float = 0.25, input_key: str | None = None):
        if not model_name:
            raise ConfigError(f"model_name must be non-empty. Received: model_name={model_name!r}")
        if timeout is None or timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds. Received: timeout={timeout!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1. Received: batch_size={batch_size!r}")
        if int(retries) < 0:
            raise ConfigError(f"retries must be >= 0. Received: retries={retries!r}")
        if backoff < 0:
            raise ConfigError(f"backoff must be >= 0. Received: backoff={backoff!r}")
        self.model_name = model_name
        self.signature = signature
        self.timeout = float(timeout)
        self.batch_size = int(batch_size)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.input_key = input_key or INPUT_KEYS.get(signature, "images")

    # -- transport, implemented by subclasses ---------------------------------------------
    def _predict_once(self, inputs: dict[str, np.ndarray], version: int | None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def metadata(self, version: int | None = None) -> dict:
        raise NotImplementedError

    def status(self, version: int | None = None) -> list[dict]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection (no-op for clients without one)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- shared logic ---------------------------------------------------------------------
    def _with_retries(self, call: Callable, *args):
        for attempt in range(self.retries + 1):
            try:
                return call(*args)
            except RequestError as error:
                if error.code not in RETRYABLE or attempt == self.retries:
                    raise
                delay = self.backoff * (2 ** attempt)
                log.info("%s; retrying in %.2f s (%d/%d)", error, delay, attempt + 1, self.retries)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def predict(self, inputs: dict[str, np.ndarray], version: int | None = None) -> dict[str, np.ndarray]:
        """One Predict request of raw input tensors (retried on UNAVAILABLE)."""
        return self._with_retries(self._predict_once, inputs, version)

    def wait_until_available(self, timeout: float = 30.0, version: int | None = None) -> list[dict]:
        """Poll `status()` until a version is AVAILABLE; raises the last error after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = self.status(version)
                if any(s["state"] == "AVAILABLE" for s in states):
                    return states
                error = RequestError("UNAVAILABLE", f"no AVAILABLE version yet: {states}")
            except RequestError as caught:
                if caught.code not in ("UNAVAILABLE", "NOT_FOUND", "DEADLINE_EXCEEDED"):
                    raise
                error = caught
            if time.monotonic() > deadline:
                raise error
            time.sleep(0.1)

    def _encode_batch(self, items: Sequence, contents: list, start: int, stop: int) -> np.ndarray:
        if self.input_key == "pixels":
            return np.stack([np.asarray(items[i], dtype=np.uint8) for i in range(start, stop)])
        batch = np.empty(stop - start, dtype=object)
        batch[:] = [contents[i] if contents[i] is not None else read_bytes(items[i]) for i in range(start, stop)]
        return batch

    def _spans(self, items: Sequence) -> list[tuple[int, int]]:
        """[start, stop) of each request: `batch_size` items (pixels: also same image shape)."""
        spans, start = [], 0
        while start < len(items):
            stop = min(start + self.batch_size, len(items))
            if self.input_key == "pixels":
                shape = np.shape(items[start])
                stop = next((i for i in range(start + 1, stop) if np.shape(items[i]) != shape), stop)
            spans.append((start, stop))
            start = stop
        return spans

    def _score_all(self, items: Sequence, version: int | None, progress: Progress | None,
                   on_error: str) -> tuple[dict[str, np.ndarray], list[str | None]]:
        if on_error not in ("raise", "nan"):
            raise ConfigError(f"on_error must be 'raise' or 'nan'. Received: on_error={on_error!r}")
        if self.input_key == "pixels":
            items = list(items)
            contents, labels = [None] * len(items), [f"<pixels #{i}>" for i in range(len(items))]
        else:
            contents, labels = as_inputs(items)
        spans = self._spans(items)
        chunks: list[dict[str, np.ndarray] | None] = []
        errors: list[str | None] = [None] * len(items)
        done = 0
        for index, (start, stop) in enumerate(spans):
            try:
                chunks.extend(self._predict_span(items, contents, start, stop, version))
            except RequestError as error:
                error = error.with_batch(labels[start:stop], start, (index, len(spans)))
                if on_error == "raise" or not _refuses_an_image(error):
                    raise error from None
                chunks.extend(self._score_one_by_one(items, contents, start, stop, version, errors))
            done += stop - start
            if progress is not None:
                progress(done, len(items))
        return _concatenate(chunks, len(items)), errors

    def _predict_span(self, items, contents, start: int, stop: int, version) -> list[dict[str, np.ndarray]]:
        """Outputs of items [start, stop): one request, or, when the server refuses it for
        its pixel budget (`max_request_pixels` of the development server), two halves, and
        so on down to single images (a single image above the budget fails)."""
        try:
            return [self.predict({self.input_key: self._encode_batch(items, contents, start, stop)}, version)]
        except RequestError as error:
            if error.code != "RESOURCE_EXHAUSTED" or "max_request_pixels" not in error.details or stop - start < 2:
                raise
        middle = (start + stop) // 2
        return (self._predict_span(items, contents, start, middle, version)
                + self._predict_span(items, contents, middle, stop, version))

    def _score_one_by_one(self, items, contents, start, stop, version, errors) -> list:
        rows: list[dict[str, np.ndarray] | None] = []
        for i in range(start, stop):
            try:
                rows.append(self.predict({self.input_key: self._encode_batch(items, contents, i, i + 1)}, version))
            except RequestError as error:
                if not _refuses_an_image(error):
                    raise
                errors[i] = error.details
                rows.append(None)
        return rows

    def score(self, items: Sequence, version: int | None = None, progress: Progress | None = None,
              on_error: str = "raise") -> np.ndarray:
        """Normalised quality of each image, float32 `(N,)` in [0, 1], higher = better.

        Args:
            items: image paths and/or encoded-image bytes (`score_pixels`: uint8 HxWx3 arrays).
            version: model version to ask for; None = the server's latest.
            progress: optional `callback(done, total)` after each request.
            on_error: "raise" (default) a RequestError naming the failing request and its
                images; or "nan": rescore a rejected request image by image and give NaN to
                the images the server rejects.
        """
        outputs, _ = self._score_all(items, version, progress, on_error)
        return outputs["score"]

    def score_details(self, items: Sequence, version: int | None = None, progress: Progress | None = None,
                      on_error: str = "raise") -> list[dict]:
        """Per image: {"score", "mos", "crop_scores" (G,), "crop_weights" (G,), any other
        output the signature has (e.g. "crop_windows"), "error" (None, or the server's
        message when `on_error="nan"` skipped the image)}."""
        outputs, errors = self._score_all(items, version, progress, on_error)
        return [{**{key: (float(value[i]) if value.ndim == 1 else value[i]) for key, value in outputs.items()},
                 "error": errors[i]} for i in range(len(errors))]


def _refuses_an_image(error: RequestError) -> bool:
    """Whether the server refused the request for its images (one undecodable, or above the
    server's pixel budget even alone) rather than for itself: `on_error="nan"` then gives
    each refused image its error and scores the others."""
    return (error.code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION")
            or error.code == "RESOURCE_EXHAUSTED" and "max_request_pixels" in error.details)


def _pad_crops(value: np.ndarray, inner: tuple) -> np.ndarray:
    """Pad a request's per-crop output [n, G, ...] to [n, *inner] with zeros (empty windows, weight 0)."""
    if value.ndim < 2 or value.shape[1] == inner[0]:
        return value
    return np.pad(value, [(0, 0), (0, inner[0] - value.shape[1])] + [(0, 0)] * (value.ndim - 2))


def _concatenate(chunks: list[dict[str, np.ndarray] | None], total: int) -> dict[str, np.ndarray]:
    """Join per-request outputs; None chunks (rejected images, one each) become NaN rows."""
    known = [c for c in chunks if c is not None]
    # The keys the server returned (all of OUTPUT_KEYS when every image was rejected).
    keys = [k for k in OUTPUT_KEYS if not known or any(k in c for c in known)]
    keys += [k for c in known[:1] for k in c if k not in OUTPUT_KEYS]
    result = {}
    for key in keys:
        inner = next((np.shape(c[key])[1:] for c in known if key in c), (0,) if key in CROP_KEYS else ())
        if key in CROP_KEYS and known:  # window counts differ between requests (image sizes):
            longest = max(np.shape(c[key])[1] for c in known if key in c)  # pad with empty windows
            inner = (longest, *inner[1:])
        parts = [_pad_crops(np.asarray(c[key], np.float32), inner) if c is not None and key in c
                 else np.full((1, *inner), np.nan, np.float32) for c in chunks]
        result[key] = np.concatenate(parts) if parts else np.zeros((0, *inner), np.float32)
    if len(result["score"]) != total:
        raise RequestError("INTERNAL", f"the server returned {len(result['score'])} scores for {total} images")
    return result
