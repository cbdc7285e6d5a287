"""Untrained runs for the reliability tests (a model.keras and its config.json)."""

from __future__ import annotations

import os

SMALL_RUN = {"backbone": "tiny", "weights": "none", "crop_size": 32, "num_crops": 4, "num_positives": 2,
             "grid_size": 2, "head_units": 16, "embedding_dim": 8, "batch_size": 4, "max_pixels": 4_000_000}


def write_untrained_run(folder: str, seed: int = 0) -> str:
    """`folder/model.keras` (the standalone model of an untrained branch, weights drawn with
    `seed`) and its config.json."""
    import keras

    from keras_lmiqa import artifacts
    from keras_lmiqa.config import from_dict
    from keras_lmiqa.inference_spec import InferenceSpec, ScoreScale
    from keras_lmiqa.models import build_branch
    from keras_lmiqa.models.image_quality import image_quality_model, run_info

    os.makedirs(folder, exist_ok=True)
    config = from_dict({**SMALL_RUN, "dataset": "csv", "seed": seed})
    keras.utils.set_random_seed(seed)
    scale = ScoreScale(low=1.0, high=5.0, higher_better=True)
    model = image_quality_model(build_branch(config), InferenceSpec.from_config(config, scale, "csv"), run_info(config))
    path = os.path.join(folder, "model.keras")
    artifacts.save_keras(model, path)
    artifacts.write_json(os.path.join(folder, "config.json"),
                         {"config": config.to_dict(), "dataset": {"name": "csv", "scale": scale.to_dict()}})
    return path
