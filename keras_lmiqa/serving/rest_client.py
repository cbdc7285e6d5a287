"""REST client for TF Serving (or `lmiqa serve --rest-port`), urllib only.

Same interface as :class:`keras_lmiqa.serving.Client`, over TF Serving's REST API:
`POST /v1/models/NAME[/versions/N]:predict` with `{"signature_name", "instances"}`
(bytes as `{"b64": ...}`), `GET /v1/models/NAME[/versions/N]` and `.../metadata`.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from keras_lmiqa.constants import BYTES_SIGNATURE, MODEL_NAME
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.serving.base_client import BaseClient
from keras_lmiqa.serving.status import RequestError, code_from_http


class RestClient(BaseClient):
    """Scores images over TF Serving's REST API.

    Args:
        base_url: server root, e.g. `"http://127.0.0.1:8501"` (the default).
        model_name, signature, timeout, batch_size, retries, backoff: as for
            :class:`keras_lmiqa.serving.Client`; retries apply to connection failures
            and HTTP 503 (UNAVAILABLE) only.
        headers: extra HTTP headers (e.g. an `Authorization` for a gateway).
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8501", model_name: str = MODEL_NAME,
                 signature: str = BYTES_SIGNATURE, timeout: float = 10.0, batch_size: int = 32,
                 retries: int = 3, *, backoff: float = 0.25, headers: dict[str, str] | None = None):
        super().__init__(model_name, signature, timeout, batch_size, retries, backoff)
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"base_url must be http(s)://host:port. Received: base_url={base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"RestClient({self.base_url!r}, model_name={self.model_name!r}, signature={self.signature!r})"

    def _url(self, version: int | None, suffix: str = "") -> str:
        path = f"/v1/models/{urllib.parse.quote(self.model_name, safe='')}"
        if version is not None:
            path += f"/versions/{int(version)}"
        return self.base_url + path + suffix

    def _request(self, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json", **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text).get("error", text)
            except (ValueError, AttributeError):
                message = text or error.reason
            raise RequestError(code_from_http(error.code), f"{message} [{url}]") from None
        except TimeoutError:
            raise RequestError("DEADLINE_EXCEEDED", f"no answer within {self.timeout} s [{url}]") from None
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise RequestError("UNAVAILABLE", f"{reason} [{url}]") from None

    def _predict_once(self, inputs: dict[str, np.ndarray], version: int | None) -> dict[str, np.ndarray]:
        instances = []
        for key, array in inputs.items():
            if array.dtype == object:
                values = [{"b64": base64.b64encode(v).decode("ascii")} for v in array]
            else:
                values = array.tolist()
            if len(inputs) == 1:
                instances = values
            else:
                instances = [{**(instances[i] if instances else {}), key: v} for i, v in enumerate(values)]
        body = {"signature_name": self.signature, "instances": instances}
        answer = self._request(self._url(version, ":predict"), body)
        return _rows_to_columns(answer.get("predictions", []))

    def metadata(self, version: int | None = None) -> dict:
        """Same dict as `Client.metadata()`."""
        answer = self._request(self._url(version, "/metadata"))
        signature_map = answer.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
        signatures = {}
        for name, signature in signature_map.items():
            signatures[name] = {"method_name": signature.get("method_name", ""), **{
                side: {alias: {"dtype": info.get("dtype", "DT_INVALID"), "shape": _shape(info.get("tensor_shape", {})),
                               "name": info.get("name", "")}
                       for alias, info in signature.get(side, {}).items()}
                for side in ("inputs", "outputs")}}
        spec = answer.get("model_spec", {})
        return {"model": spec.get("name", self.model_name), "version": int(spec.get("version", 0) or 0),
                "signatures": signatures}

    def status(self, version: int | None = None) -> list[dict]:
        """Same list as `Client.status()`."""
        answer = self._request(self._url(version))
        return [{"version": int(entry.get("version", 0)), "state": entry.get("state", "UNKNOWN"),
                 "error_code": entry.get("status", {}).get("error_code", "OK"),
                 "error_message": entry.get("status", {}).get("error_message", "")}
                for entry in answer.get("model_version_status", [])]


def _shape(shape: dict) -> list[int] | None:
    if shape.get("unknown_rank"):
        return None
    return [int(d.get("size", 0)) for d in shape.get("dim", [])]


def _rows_to_columns(predictions: list) -> dict[str, np.ndarray]:
    """TF Serving row-format predictions -> {output: array}. A single-output signature
    answers plain values instead of {name: value} objects."""
    if predictions and not isinstance(predictions[0], dict):
        return {"score": np.asarray(predictions, np.float32)}
    keys = predictions[0].keys() if predictions else ()
    return {key: np.asarray([row[key] for row in predictions], np.float32) for key in keys}
