"""A model file's settings are checked against hard bounds and against the model itself
at load: a crafted inference spec, an edited shipped card or weights that do not score as
the card says are refused by name, in one line, before any image is scored."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import zipfile

import numpy as np
import pytest

from keras_lmiqa.errors import ModelError


@pytest.mark.parametrize("field, value", [
    ("crop_size", 10 ** 6), ("crop_size", 1), ("grid_size", 100_000), ("saliency_long_side", 10 ** 6),
    ("max_pixels", 10 ** 12), ("scales", [1e-9]), ("scales", [1.0] * 1000), ("score_high", math.nan),
    ("crop_size", 32.5), ("grid_size", True),
])
def test_spec_fields_outside_their_bounds_are_refused_by_name(field, value):
    from keras_lmiqa.inference_spec import FIELD_BOUNDS, SPEC_FORMAT, InferenceSpec

    values = {"format": SPEC_FORMAT, "crop_size": 32, "scales": [1.0, 0.5], "grid_size": 2, "saliency_long_side": 64,
              "max_pixels": 4_000_000, "score_low": 0.0, "score_high": 1.0, "higher_better": True,
              "score_kind": "MOS", "dataset": "csv", "export_branch": "student",
              "window_rule": "native-tiles+coarse-grid/v1"}
    InferenceSpec.from_dict(values)
    with pytest.raises(ModelError, match=f"^inference spec: {field} must") as caught:
        InferenceSpec.from_dict({**values, field: value})
    assert len(str(caught.value)) < 200
    assert field in FIELD_BOUNDS


@pytest.fixture(scope="module")
def standalone(untrained_model, tmp_path_factory) -> str:
    """A standalone model.keras (the untrained 32 px branch and its spec)."""
    from untrained import SMALL_RUN

    from keras_lmiqa import artifacts
    from keras_lmiqa.config import from_dict
    from keras_lmiqa.inference_spec import InferenceSpec
    from keras_lmiqa.loading import load_branch
    from keras_lmiqa.models.image_quality import image_quality_model

    spec = InferenceSpec.from_config(from_dict({**SMALL_RUN, "dataset": "csv"}))
    path = str(tmp_path_factory.mktemp("standalone") / "model.keras")
    artifacts.save_keras(image_quality_model(load_branch(untrained_model), spec), path)
    return path


def _edited(source: str, target, edit) -> str:
    """`source` with its config.json edited by `edit(config)`, re-zipped with a fresh checksum."""
    from keras_lmiqa import artifacts

    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    artifacts._add_checksum(str(target))  # as if saved so: the checksum cannot catch it
    return str(target)


def _set_spec(field, value):
    def edit(config):
        config["config"]["preprocessor"]["config"]["spec"][field] = value
    return edit


def _rename_class(config):
    config["config"]["preprocessor"].update(class_name="Evil", registered_name="evil>Evil", module="evil")


CRAFTED = {
    "crop_size 10^6": (_set_spec("crop_size", 10 ** 6), "inference spec: crop_size must be an integer in "
                                                        "[16, 1024], got 1000000"),
    "crop_size 128 for a 32 px branch": (_set_spec("crop_size", 128),
                                         "inference spec: crop_size 128 does not fit the model, whose input is "
                                         "[None, None, 32, 32, 3]"),
    "grid_size 100000": (_set_spec("grid_size", 100_000), "inference spec: grid_size must be an integer in [1, 32]"),
    "saliency 10^6": (_set_spec("saliency_long_side", 10 ** 6), "inference spec: saliency_long_side must be"),
    "max_pixels 10^12": (_set_spec("max_pixels", 10 ** 12), "inference spec: max_pixels must be an integer in "
                                                            "[1, 1e+09], got 1000000000000"),
    "unknown class": (_rename_class, "unknown class 'Evil'"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_model_file_is_refused_at_load_with_the_reason(standalone, tmp_path, case):
    from keras_lmiqa.scorer import load_scorer

    edit, reason = CRAFTED[case]
    path = _edited(standalone, tmp_path / "model.keras", edit)
    with pytest.raises(ModelError) as caught:
        load_scorer(path)
    message = str(caught.value)
    assert message.startswith(f"cannot load model {path} (refused): ") and reason in message, message
    assert "could not be deserialized" not in message and len(message) < 400


def test_lmiqa_score_names_the_refused_setting_in_one_line(standalone, tmp_path, capsys):
    from crafted import photo, png

    from keras_lmiqa.cli import main

    image = tmp_path / "a.png"
    image.write_bytes(png(photo(40, 50)))
    path = _edited(standalone, tmp_path / "model.keras", _set_spec("crop_size", 10 ** 6))
    assert main(["score", "--model", path, str(image)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"lmiqa score: error: cannot load model {path} (refused): inference spec: crop_size must be "
                     "an integer in [16, 1024], got 1000000"]


@pytest.fixture()
def shipped_copy(tmp_path, monkeypatch):
    """A copy of the shipped models' folder, which `keras_lmiqa.pretrained_models` then reads."""
    from keras_lmiqa import pretrained_models

    root = tmp_path / "shipped"
    shutil.copytree(pretrained_models.SHIPPED_DIR, root)
    monkeypatch.setattr(pretrained_models, "SHIPPED_DIR", str(root))
    return root / "biq2021-mobilenet-v2"


def test_a_card_whose_settings_differ_from_the_model_is_refused(shipped_copy, capsys):
    from keras_lmiqa import pretrained_models
    from keras_lmiqa.cli import main

    card = json.loads((shipped_copy / "card.json").read_text())
    assert pretrained_models.model_card(shipped_copy.name)["inference"]["crop_size"] == 128
    card["inference"]["crop_size"] = 999
    (shipped_copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="card.json: inference crop_size differ from the model's own settings"):
        pretrained_models.model_card(shipped_copy.name)
    assert main(["models"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "inference crop_size differ" in lines[0], lines


def test_weights_that_do_not_score_as_the_card_says_are_refused(untrained_model, tmp_path):
    """A packed model's output bias shifted, the sha256 in its card updated to match: the
    checksum passes, the reference score does not (the shipped model with NaN weights
    scored every image 0.61 this way)."""
    from keras_lmiqa import pretrained_models
    from keras_lmiqa.loading import load_image_model

    folder = tmp_path / "packed"
    card = pretrained_models.pack_model(load_image_model(untrained_model), str(folder), {"name": "tiny"})
    model = pretrained_models.load_folder(str(folder))  # as packed: it passes
    index = next(i for i, v in enumerate(model.weights) if "quality_out" in v.path and "bias" in v.path)
    expected = card["reference_scores"][pretrained_models.LOAD_CHECK_IMAGE]
    weights = folder / "weights.npz"
    with np.load(weights) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays[f"w{index:04d}"] = arrays[f"w{index:04d}"] + (-0.3 if expected > 0.5 else 0.3)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    weights.write_bytes(buffer.getvalue())
    card["files"]["weights.npz"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=f"^{folder}: the model scores reference image checker-240x320 "
                                         f"[0-9.]+, its card {expected:.6f}: its weights do not behave as shipped"):
        pretrained_models.load_folder(str(folder))
