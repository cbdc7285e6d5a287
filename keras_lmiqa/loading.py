"""Loading what training and export wrote: model files, run folders, export folders.

`load_model_file` / `load_image_model` read a `model.keras` (checksummed, safe mode);
`read_run_record` / `run_spec` a run's config.json; `latest_version` / `read_metadata`
an export folder. Every failure is a ModelError naming the file.
"""

from __future__ import annotations

import os
import re

import keras

from keras_lmiqa import artifacts
from keras_lmiqa.config import TrainConfig, from_dict
from keras_lmiqa.constants import ASSETS_EXTRA, METADATA_FILE, version_dirs
from keras_lmiqa.errors import ConfigError, ModelError
from keras_lmiqa.inference_spec import InferenceSpec, ScoreScale
from keras_lmiqa.models.image_quality import ImageQualityModel


def load_model_file(model_path: str):
    """Load a `model.keras` (safe mode) after checking its checksum (`artifacts.verify_keras`):
    a standalone `ImageQualityModel`. ModelError naming the file if it cannot."""
    if not os.path.isfile(model_path):
        raise ModelError(f"model file not found: {model_path}")
    try:
        artifacts.verify_keras(model_path)  # the checksum save_keras wrote, and every member's CRC-32
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except ModelError as error:  # the file's own settings refused (its spec), raised as is by Keras
        raise ModelError(f"cannot load model {model_path} (refused): {error}") from None
    except Exception as error:  # checksum, zipfile, h5py, JSON and Keras errors all mean "unreadable"
        reason = load_failure_reason(error)
        what = "refused" if reason.startswith(_REFUSALS) else "corrupt or partial file?"
        raise ModelError(f"cannot load model {model_path} ({what}): {reason}") from None
    if not isinstance(model, ImageQualityModel):
        raise ModelError(f"{model_path} is not an LML-IQA model (a {type(model).__name__}, not an "
                         "ImageQualityModel); keras_lmiqa writes ImageQualityModel files only")
    return model


_KERAS_WRAPPED = "Exception encountered: "
_UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([^']*)'")
_REFUSALS = ("inference spec:", "unknown class")


def load_failure_reason(error: Exception) -> str:
    """One line saying why Keras could not build a model from its config: Keras wraps an
    error raised inside `from_config` in "could not be deserialized properly ... config=
    {the whole config} ... Exception encountered: REASON"; this returns the innermost REASON
    (an unknown class named as such), truncated."""
    text = str(error).strip()
    if _KERAS_WRAPPED in text:
        text = text.rsplit(_KERAS_WRAPPED, 1)[1]
    unknown = _UNKNOWN_CLASS.search(text)
    if unknown:
        return f"unknown class {unknown.group(1)!r} (not a keras_lmiqa or Keras class; safe mode loads no other)"
    line = text.splitlines()[0].strip() if text else ""
    return _truncated(line) if line else type(error).__name__


def _truncated(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_branch(model_path: str):
    """The branch (crops in) of a `model.keras` (`load_model_file`)."""
    return load_model_file(model_path).branch


def read_run_record(config_path: str) -> tuple[TrainConfig, ScoreScale, dict]:
    """The run's config.json -> (TrainConfig, ScoreScale, the whole record)."""
    if not os.path.isfile(config_path):
        raise ModelError(f"run config not found: {config_path} (expected config.json beside the model)")
    try:
        record = artifacts.read_json(config_path)
        config = from_dict(record["config"])
        scale = ScoreScale(**record["dataset"]["scale"])
    except (ValueError, KeyError, TypeError, ConfigError) as error:
        raise ModelError(f"invalid run config {config_path}: {error}") from None
    return config, scale, record


def run_spec(config: TrainConfig, scale: ScoreScale, record: dict) -> InferenceSpec:
    """The `InferenceSpec` of a run folder's config.json record."""
    return InferenceSpec.from_config(config, scale, record.get("dataset", {}).get("name", config.dataset))


# The spec fields an explicit --config must agree on with a standalone model's own.
_SCORING_FIELDS = ("crop_size", "scales", "grid_size", "saliency_long_side", "max_pixels", "working_long_side",
                   "score_low", "score_high", "higher_better")


def load_image_model(model_path: str, config_path: str | None = None) -> ImageQualityModel:
    """The standalone model of a `model.keras`. It carries its spec: config.json is not
    read; an explicit `config_path` is checked against it."""
    model_path = os.fspath(model_path)
    model = load_model_file(model_path)
    if config_path is not None:
        config, scale, record = read_run_record(config_path)
        given = run_spec(config, scale, record)
        differ = [name for name in _SCORING_FIELDS if getattr(given, name) != getattr(model.spec, name)]
        if differ:
            raise ModelError(f"{config_path} disagrees with the settings saved in {model_path} "
                             f"({', '.join(differ)}); leave out --config to use the model's own")
    return model


def latest_version(export_dir: str) -> int | None:
    """The highest version under `export_dir` (`constants.version_dirs`), or None."""
    return max(version_dirs(export_dir), default=None)


def read_metadata(version_dir: str) -> dict:
    """The export's `assets.extra/lmiqa_metadata.json`."""
    path = os.path.join(version_dir, ASSETS_EXTRA, METADATA_FILE)
    if not os.path.isfile(path):
        raise ModelError(f"no LML-IQA metadata in {version_dir} (missing {ASSETS_EXTRA}/{METADATA_FILE})")
    try:
        return artifacts.read_json(path)
    except ValueError as error:
        raise ModelError(f"invalid metadata {path}: {error}") from None
