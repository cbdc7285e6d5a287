"""Scoring clients for a served LML-IQA export, and a development server.

- :class:`Client`: gRPC (TF Serving's PredictionService/ModelService).
- :class:`RestClient`: TF Serving's REST API, urllib only.
- `keras_lmiqa.serving.local_server`: `lmiqa serve`, a development server with the
  same APIs (imports TensorFlow; production is TF Serving, see deploy/README.md).

The clients build no model, load no training code and import no TensorFlow; the gRPC
client needs it installed for its first request, whose messages are
tensorflow-serving-api's generated modules (`protos`), which import TensorFlow's. The
clients are imported lazily on first attribute access.
"""

from __future__ import annotations

import importlib

__all__ = ["Client", "RestClient", "RequestError", "collect_images"]

_LAZY = {
    "Client": "keras_lmiqa.serving.client",
    "RestClient": "keras_lmiqa.serving.rest_client",
    "RequestError": "keras_lmiqa.serving.status",
    "collect_images": "keras_lmiqa.serving.images",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_lmiqa.serving' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
