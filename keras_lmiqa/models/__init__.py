"""Models: the crop branch (`branch`), its backbones and layers, the scoring graph
(`scoring`), the standalone `ImageQualityModel` (`image_quality`) and the NumPy-facing
`Scorer` (`scorer`).

The names below load on first use. The Keras classes register with Keras as soon as
TensorFlow and Keras are loaded (`keras_lmiqa._registration`).
"""

import importlib

_NAMES = {
    "build_backbone": "keras_lmiqa.models.backbones",
    "build_branch": "keras_lmiqa.models.branch",
    "OUTPUTS": "keras_lmiqa.models.branch",
    "ImageQualityModel": "keras_lmiqa.models.image_quality",
    "ImageQualityPreprocessor": "keras_lmiqa.models.preprocessor",
}


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'keras_lmiqa.models' has no attribute {name!r}")


__all__ = list(_NAMES)
