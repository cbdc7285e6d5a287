"""`ImageQualityPreprocessor`: one image -> its inference windows and their saliency."""

from __future__ import annotations

import keras

from keras_lmiqa.inference_spec import InferenceSpec


@keras.saving.register_keras_serializable(package="keras_lmiqa")
class ImageQualityPreprocessor(keras.layers.Layer):
    """One image -> its inference crop windows and their saliency, by an `InferenceSpec`.

    Args:
        spec: the `InferenceSpec` (or its `to_dict()`), saved in `get_config`.

    `call(image)` takes one uint8 [H, W, 3] image and returns {"image": it at the working
    size (`working_size.to_working_size`), "windows": [G, 4] and "saliency": [G] on that
    image} (`pipeline.inference_elements`); the crops are cut from the image a chunk at a
    time by the task model, so memory holds one chunk whatever the image size.
    """

    def __init__(self, spec, **kwargs):
        super().__init__(**kwargs)
        self._spec = spec if isinstance(spec, InferenceSpec) else InferenceSpec.from_dict(spec)
        self.built = True  # no weights: nothing to build

    @property
    def spec(self) -> InferenceSpec:
        return self._spec

    def call(self, image):
        # Imported here: registering this class (`keras_lmiqa._registration`) must not load the pipeline.
        from keras_lmiqa.pipeline import inference_elements
        from keras_lmiqa.working_size import to_working_size

        image = to_working_size(image, self._spec.working_long_side)
        windows, saliency = inference_elements(image, self._spec)
        return {"image": image, "windows": windows, "saliency": saliency}

    def get_config(self):
        return {**super().get_config(), "spec": self._spec.to_dict()}
