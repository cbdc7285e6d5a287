"""Models: backbones by name and the LML-IQA branch.

Importing this package registers the custom layers and the standalone model
(`image_quality`); builders load on first use.
"""

import importlib

from keras_lmiqa.models import (
    image_quality,  # noqa: F401  registers the standalone model
    layers,  # noqa: F401  registers the custom Keras layers
)

_BUILDERS = {
    "build_backbone": "keras_lmiqa.models.backbones",
    "build_branch": "keras_lmiqa.models.lmiqa_model",
    "OUTPUTS": "keras_lmiqa.models.lmiqa_model",
    "ImageQualityModel": "keras_lmiqa.models.image_quality",
    "ImageQualityPreprocessor": "keras_lmiqa.models.image_quality",
}


def __getattr__(name):
    if name in _BUILDERS:
        return getattr(importlib.import_module(_BUILDERS[name]), name)
    raise AttributeError(f"module 'keras_lmiqa.models' has no attribute {name!r}")


__all__ = ["build_backbone", "build_branch", "OUTPUTS", "ImageQualityModel", "ImageQualityPreprocessor"]
