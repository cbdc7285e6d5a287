"""keras-lmiqa: LML-IQA no-reference image quality assessment in TensorFlow/Keras 3.

Public API:
    pretrained(name)             a shipped quality model (keras.Model), no training needed
    load_scorer(path)            score images with a model.keras, a SavedModel export or
                                 (no path) the default shipped model
    train(config)                train LML-IQA (keras_lmiqa.training)
    TrainConfig                  the training configuration (keras_lmiqa.config)
    datasets.load(name, root)    benchmark datasets in their official layouts
    metrics.evaluate(pred, mos)  SRCC, PLCC, KRCC, RMSE
    export_model(...)            a versioned SavedModel for TF Serving (keras_lmiqa.export)

`import keras_lmiqa` loads no TensorFlow: each name above loads on first use. The
package's Keras classes register as soon as TensorFlow and Keras are loaded
(`keras_lmiqa._registration`), so `keras.saving.load_model("model.keras")` works after
`import keras_lmiqa` and gives a model that takes images and returns the scores
(`keras_lmiqa.models.image_quality`). Module layers: docs/architecture.md.
"""

import importlib

from keras_lmiqa import _registration

__version__ = "0.1.0"

_LAZY = {
    "load_scorer": ("keras_lmiqa.scorer", "load_scorer"),
    "pretrained": ("keras_lmiqa.pretrained_models", "pretrained"),
    "train": ("keras_lmiqa.training", "train"),
    "TrainConfig": ("keras_lmiqa.config", "TrainConfig"),
    "export_model": ("keras_lmiqa.export", "export_model"),
}
_MODULES = ("datasets", "metrics", "losses", "saliency", "serving", "models")


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    if name in _MODULES:
        return importlib.import_module(f"keras_lmiqa.{name}")
    raise AttributeError(f"module 'keras_lmiqa' has no attribute {name!r}")


__all__ = ["__version__", "load_scorer", "pretrained", "train", "TrainConfig", "export_model", "datasets", "metrics"]

_registration.install()
