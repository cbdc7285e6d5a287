"""The shipped pretrained model: its files, its card, its behaviour on photographs it never saw."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import skimage.data

import keras_lmiqa
from keras_lmiqa import pretrained_models as shipped
from keras_lmiqa.errors import ModelError

NAME = "biq2021-mobilenet-v2"  # the BIQ2021 specialist
MODELS = shipped.list_models()
DEFAULT = shipped.default_model()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A score moves by ~1e-7 between runs of the same CPU build; a different weights file,
# preprocessing or window rule moves the reference images' scores by far more.
REFERENCE_TOLERANCE = 2e-5


@pytest.fixture(scope="module")
def model():
    """The default model."""
    return keras_lmiqa.pretrained(DEFAULT)


@pytest.fixture(scope="module", params=MODELS)
def each_model(request):
    return request.param, keras_lmiqa.pretrained(request.param)


def _photographs() -> dict[str, np.ndarray]:
    """scikit-image's bundled photographs (none is in BIQ2021), RGB uint8."""
    grey = skimage.data.camera()
    return {"astronaut": skimage.data.astronaut(), "chelsea": skimage.data.chelsea(),
            "coffee": skimage.data.coffee(), "rocket": skimage.data.rocket(),
            "camera": np.repeat(grey[..., None], 3, -1)}


def _degraded(image: np.ndarray) -> dict[str, np.ndarray]:
    """Heavy blur, heavy noise and JPEG at quality 5."""
    rng = np.random.default_rng(0)
    noisy = np.clip(image + rng.normal(0.0, 40.0, image.shape), 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 5])
    assert ok
    return {"blur": cv2.GaussianBlur(image, (0, 0), 4.0), "noise": noisy,
            "jpeg-q5": cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy()}


@pytest.mark.parametrize("name", MODELS)
def test_each_shipped_model_is_small(name):
    folder = shipped.model_folder(name)
    sizes = {name: os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)}
    assert set(sizes) == {shipped.CARD_FILE, shipped.CARD_TEXT_FILE, shipped.MODEL_FILE, shipped.WEIGHTS_FILE}
    assert sum(sizes.values()) < 10 * 2 ** 20, sizes


def _sensitivity(srcc=0.95, drop=0.2, weak=None):
    families = {family: {"median_srcc": srcc, "mean_drop": drop} for family in
                ("noise", "jpeg", "blur", "over_exposure", "under_exposure", "contrast", "downscale")}
    if weak:
        families[weak] = {"median_srcc": 0.4, "mean_drop": 0.02}
    return {"families": families}


def test_release_shortfalls_name_each_target_a_card_misses():
    good = {"shipped_metrics": {"srcc": 0.81, "plcc": 0.83}, "sensitivity": _sensitivity()}
    assert shipped.release_shortfalls(good) == []
    low = {**good, "shipped_metrics": {"srcc": 0.79, "plcc": 0.83}}
    assert shipped.release_shortfalls(low) == ["test srcc 0.790 < 0.8"]
    noisy = {**good, "sensitivity": _sensitivity(weak="noise")}
    assert shipped.release_shortfalls(noisy) == ["noise: median SRCC 0.40, drop 0.020"]
    assert shipped.release_shortfalls({"shipped_metrics": good["shipped_metrics"]}) == ["no sensitivity record"]
    # The specialist's own card: noise, JPEG and over-exposure are below the targets.
    assert len(shipped.release_shortfalls(shipped.model_card(NAME))) >= 1


def test_the_general_model_is_the_default_only_when_its_card_meets_the_targets(tmp_path, monkeypatch):
    general, specialist = shipped.DEFAULT_CANDIDATES
    for name in (general, specialist):
        os.makedirs(tmp_path / name)
    card = {"format": shipped.CARD_FORMAT, "shipped_metrics": {"srcc": 0.81, "plcc": 0.83},
            "sensitivity": _sensitivity()}
    (tmp_path / specialist / shipped.CARD_FILE).write_text(json.dumps(card))
    monkeypatch.setattr(shipped, "SHIPPED_DIR", str(tmp_path))
    assert shipped.default_model() == specialist  # no general model shipped
    (tmp_path / general / shipped.CARD_FILE).write_text(json.dumps(card))
    assert shipped.default_model() == general
    assert shipped.model_folder() == str(tmp_path / general)
    (tmp_path / general / shipped.CARD_FILE).write_text(json.dumps({**card, "sensitivity": _sensitivity(weak="jpeg")}))
    assert shipped.default_model() == specialist


def test_both_models_are_shipped_and_the_general_one_is_the_default_by_its_card():
    assert set(MODELS) == set(shipped.DEFAULT_CANDIDATES)
    assert DEFAULT == "general-mobilenet-v2" and shipped.release_shortfalls(shipped.model_card(DEFAULT)) == []


@pytest.mark.parametrize("name", MODELS)
def test_files_match_the_checksums_in_the_card(name):
    card = shipped.model_card(name)
    folder = shipped.model_folder(name)
    for name in (shipped.MODEL_FILE, shipped.WEIGHTS_FILE):
        with open(os.path.join(folder, name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == card["files"][name], name


@pytest.mark.parametrize("name", MODELS)
def test_card_reports_the_test_split_figures_it_was_shipped_on(name):
    card = shipped.model_card(name)
    metrics = card["shipped_metrics"]
    assert metrics["n"] == 2000 and set(metrics) >= {"srcc", "plcc", "krcc", "rmse"}
    # Shipped only above the release targets, and float16 matrices stay within 1e-3 of float32.
    assert metrics["srcc"] >= 0.78
    assert card["float16"]["images"] == 2000 and card["float16"]["max_abs_mos_difference"] <= 1e-3
    with open(os.path.join(shipped.model_folder(name), shipped.CARD_TEXT_FILE), encoding="utf-8") as handle:
        text = handle.read()
    for key in ("srcc", "plcc", "krcc", "rmse"):  # the card's prose quotes the recorded figures
        assert f"{metrics[key]:.3f}" in text, key
    for family, figures in card.get("sensitivity", {}).get("families", {}).items():
        assert f"| {family} | {figures['median_srcc']:.2f} | {figures['mean_drop']:.3f} |" in text


def test_scores_of_the_made_images_match_the_card(each_model):
    name, model = each_model
    recorded = shipped.model_card(name)["reference_scores"]
    scores = shipped.reference_scores(model)
    assert scores.keys() == recorded.keys()
    differences = {name: abs(scores[name] - recorded[name]) for name in scores}
    assert max(differences.values()) <= REFERENCE_TOLERANCE, differences
    # The images are told apart, except those scored at a bound (the general model scores the
    # two pure-noise images 0: as bad as it gets).
    inside = [score for score in scores.values() if 0.0 < score < 1.0]
    assert len(inside) >= 3 and len({round(score, 3) for score in inside}) == len(inside), scores


def test_degraded_photographs_score_below_their_originals(each_model):
    _, model = each_model
    images, labels = [], []
    for name, photo in _photographs().items():
        images.append(photo)
        labels.append((name, "original"))
        for kind, version in _degraded(photo).items():
            images.append(version)
            labels.append((name, kind))
    scores = dict(zip(labels, model.score_images(images)["score"].tolist()))
    failures = [f"{name} {kind}: {scores[name, kind]:.3f} >= original {scores[name, 'original']:.3f}"
                for name, kind in labels if kind != "original" and scores[name, kind] >= scores[name, "original"]]
    assert not failures, failures


def test_pack_stores_large_matrices_as_float16_and_every_other_weight_exactly(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "reliability"))
    from untrained import write_untrained_run

    from keras_lmiqa.loading import load_image_model

    monkeypatch.setattr(shipped, "FLOAT16_MIN_WEIGHTS", 128)  # the tiny test model's matrices are small
    model = load_image_model(write_untrained_run(str(tmp_path / "run")))
    card = shipped.pack_model(model, str(tmp_path / "packed"), {"name": "tiny"})
    loaded = shipped.load_folder(str(tmp_path / "packed"))
    kinds = set()
    for original, restored in zip(model.weights, loaded.weights):
        original, restored = np.asarray(original), np.asarray(restored)
        if shipped.stored_as_float16(original):
            np.testing.assert_array_equal(restored, original.astype(np.float16).astype(original.dtype))
            kinds.add("float16")
        else:
            np.testing.assert_array_equal(restored, original)
            kinds.add("exact")
    assert kinds == {"float16", "exact"}
    assert card["reference_scores"] == shipped.reference_scores(loaded)
    assert card["inference"]["crop_size"] == model.spec.crop_size


def test_a_damaged_weights_file_is_refused_by_name(tmp_path):
    folder = str(tmp_path / NAME)
    shutil.copytree(shipped.model_folder(NAME), folder)
    path = os.path.join(folder, shipped.WEIGHTS_FILE)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(path, "wb").write(bytes(data))
    with pytest.raises(ModelError, match=r"weights\.npz does not match the sha256"):
        shipped.load_folder(folder)


def test_an_unknown_name_lists_the_shipped_models():
    with pytest.raises(ModelError, match=f"no pretrained model named 'nope'; shipped: .*{NAME}"):
        keras_lmiqa.pretrained("nope")


def test_load_scorer_without_a_path_is_the_default_model(model):
    scorer = keras_lmiqa.load_scorer()
    images = list(shipped.reference_images().values())
    assert scorer.source == f"pretrained:{DEFAULT}"
    np.testing.assert_allclose(scorer.score(images), model.score_images(images)["score"], atol=1e-6)


def _lmiqa(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "keras_lmiqa.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.mark.slow
def test_lmiqa_score_with_no_model_uses_the_shipped_one(tmp_path, model):
    photo = skimage.data.chelsea()
    cv2.imwrite(str(tmp_path / "a.png"), photo[..., ::-1])
    cv2.imwrite(str(tmp_path / "b.png"), _degraded(photo)["blur"][..., ::-1])
    result = _lmiqa("score", str(tmp_path), "--json", str(tmp_path / "out.json"))
    assert result.returncode == 0, result.stderr
    assert f"pretrained model {DEFAULT}" in result.stderr
    rows = json.load(open(tmp_path / "out.json"))
    expected = model.score_images([photo, _degraded(photo)["blur"]])["score"]
    np.testing.assert_allclose([row["score"] for row in rows], expected, atol=1e-5)


@pytest.mark.slow
def test_lmiqa_models_lists_the_cards_figures_and_prints_the_card():
    listing = _lmiqa("models")
    assert listing.returncode == 0, listing.stderr
    for name in MODELS:
        card = shipped.model_card(name)
        line = next(line for line in listing.stdout.splitlines() if f" {name} " in line)
        assert line.startswith("*") == (name == DEFAULT), line
        assert f"{card['shipped_metrics']['srcc']:.3f}" in line and "BIQ2021" in line
    printed = _lmiqa("models", "--card", NAME)
    assert printed.returncode == 0 and printed.stdout.startswith("# ")
    unknown = _lmiqa("models", "--card", "nope")
    assert unknown.returncode == 2 and "no pretrained model named 'nope'" in unknown.stderr


@pytest.mark.slow
def test_export_pretrained_serves_the_models_scores(tmp_path, model):
    result = _lmiqa("export", "--pretrained", DEFAULT, "--export-dir", str(tmp_path / "lmiqa"))
    assert result.returncode == 0, result.stderr
    version = result.stdout.strip().splitlines()[-1]
    assert version == str(tmp_path / "lmiqa" / "1")
    scorer = keras_lmiqa.load_scorer(version)
    assert scorer.metadata["source_model"] == f"pretrained:{DEFAULT}"
    images = list(shipped.reference_images().values())
    np.testing.assert_allclose(scorer.score(images), model.score_images(images)["score"], atol=1e-5)


@pytest.mark.slow
def test_the_wheel_carries_the_model_and_scores_without_the_checkout(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), ROOT], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("keras_lmiqa-*.whl")
    assert os.path.getsize(wheel) < 8 * 2 ** 20 * len(MODELS)  # each model about 6.3 MB, the code under 1 MB
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for model_name in MODELS:
        for name in (shipped.CARD_FILE, shipped.CARD_TEXT_FILE, shipped.MODEL_FILE, shipped.WEIGHTS_FILE):
            assert f"keras_lmiqa/shipped/{model_name}/{name}" in names
    assert {"keras_lmiqa/ui/static/lmiqa-ui.js", "keras_lmiqa/ui/static/lmiqa-ui.css"} <= names  # the page bundle
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "coffee.jpg"), skimage.data.coffee()[..., ::-1])
    # Run away from the checkout, with the installed copy first on the path.
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import keras_lmiqa; print(keras_lmiqa.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    scored = _lmiqa("score", str(photos), cwd=tmp_path, env=env)
    assert scored.returncode == 0, scored.stderr
    row = scored.stdout.strip().splitlines()[-1].split()
    assert row[0].endswith("coffee.jpg") and 0.0 <= float(row[1]) <= 1.0


@pytest.mark.slow
def test_a_reader_that_leaves_early_gets_no_traceback():
    """`lmiqa models --card NAME | head -1`: the closed pipe ends the command quietly."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write fails (EPIPE)
    try:
        result = subprocess.run([sys.executable, "-m", "keras_lmiqa.cli", "models", "--card", NAME], cwd=ROOT,
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert result.returncode == 141 and "Traceback" not in result.stderr, result.stderr
