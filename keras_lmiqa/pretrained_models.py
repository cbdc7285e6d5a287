"""Quality models shipped inside the package: score photos with no training.

    import keras_lmiqa
    model = keras_lmiqa.pretrained()                 # the default model: a keras.Model
    model.score_images(["a.jpg", "b.png"])["score"]  # quality in [0, 1], higher = better
    keras_lmiqa.load_scorer().score(["a.jpg"])       # the same through a Scorer

Each model lives in `keras_lmiqa/shipped/<name>/`:

    model.json     the standalone `ImageQualityModel`'s Keras config (no weights)
    weights.npz    its weights in `model.weights` order (w0000, w0001, ...), large matrices float16
    card.json      the machine-readable card: training, metrics, the files' sha256,
                   the scores of `reference_images()`
    MODEL_CARD.md  the model card

float16 large matrices nearly halve the file (`stored_as_float16`); `pack_model` records how far
the shipped scores are from the float32 model's on the images it is given (the card keeps
that figure). Reading a card checks its `inference` against the spec in model.json (within
`InferenceSpec`'s bounds); loading checks both files' sha256 against the card and that the
model scores a reference image as the card says, so a damaged, edited or replaced file fails
by name instead of scoring wrongly. `python -m keras_lmiqa.pretrained_models pack ...` writes a
new folder; `... working-size --name NAME --long-side L` sets a shipped model's working size
(model.json and the card's checksums and reference scores; the weights are untouched).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import sys

import numpy as np

from keras_lmiqa import artifacts
from keras_lmiqa.errors import ModelError
from keras_lmiqa.inference_spec import InferenceSpec

# The default model is the first of these that is shipped and whose card shows it meets
# the release targets (`release_shortfalls`); the last one, the BIQ2021 specialist, is the
# default otherwise.
DEFAULT_CANDIDATES = ("general-mobilenet-v2", "biq2021-mobilenet-v2")
# A general-purpose model must keep the specialist's accuracy on BIQ2021's official test
# split, and see every graded distortion as people do (`keras_lmiqa.sensitivity`'s targets).
RELEASE_TARGETS = {"srcc": 0.80, "plcc": 0.82}
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shipped")
CARD_FILE, MODEL_FILE, WEIGHTS_FILE, CARD_TEXT_FILE = "card.json", "model.json", "weights.npz", "MODEL_CARD.md"
CARD_FORMAT = 2  # 2 adds `sensitivity`, the record of `lmiqa sensitivity` on the shipped file
READABLE_CARD_FORMATS = (1, 2)


def list_models() -> list[str]:
    """Names of the shipped models, sorted."""
    if not os.path.isdir(SHIPPED_DIR):
        return []
    return sorted(name for name in os.listdir(SHIPPED_DIR)
                  if os.path.isfile(os.path.join(SHIPPED_DIR, name, CARD_FILE)))


def release_shortfalls(card: dict) -> list[str]:
    """Why the model of `card` may not be the default: its BIQ2021 test figures or a
    distortion family of its sensitivity record below the release targets (empty: none)."""
    from keras_lmiqa.sensitivity import TARGET_MEAN_DROP, TARGET_MEDIAN_SRCC

    test = card.get("shipped_metrics", {})
    shortfalls = [f"test {key} {test.get(key, 0.0):.3f} < {target}" for key, target in RELEASE_TARGETS.items()
                  if test.get(key, 0.0) < target]
    families = card.get("sensitivity", {}).get("families", {})
    if not families:
        shortfalls.append("no sensitivity record")
    for family, figures in sorted(families.items()):
        if figures["median_srcc"] < TARGET_MEDIAN_SRCC or figures["mean_drop"] < TARGET_MEAN_DROP:
            shortfalls.append(f"{family}: median SRCC {figures['median_srcc']:.2f}, drop {figures['mean_drop']:.3f}")
    return shortfalls


def default_model() -> str:
    """The default shipped model: see `DEFAULT_CANDIDATES`."""
    shipped = list_models()
    for name in DEFAULT_CANDIDATES[:-1]:
        # The card's figures alone decide; loading the model checks its files.
        try:
            card = artifacts.read_json(os.path.join(SHIPPED_DIR, name, CARD_FILE)) if name in shipped else None
        except (OSError, ValueError):
            card = None
        if isinstance(card, dict) and not release_shortfalls(card):
            return name
    return DEFAULT_CANDIDATES[-1]


def model_folder(name: str | None = None) -> str:
    """The folder of shipped model `name` (default `default_model()`); ModelError naming the choices."""
    name = name or default_model()
    if name not in list_models():
        shipped = ", ".join(list_models()) or "none"
        raise ModelError(f"no pretrained model named {name!r}; shipped: {shipped} (`lmiqa models` lists them)")
    return os.path.join(SHIPPED_DIR, name)


def model_card(name: str | None = None) -> dict:
    """The card (`card.json`) of shipped model `name`."""
    return read_card(model_folder(name))


def read_card(folder: str) -> dict:
    path = os.path.join(folder, CARD_FILE)
    try:
        card = artifacts.read_json(path)
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read the model card {path}: {error}") from None
    if not isinstance(card, dict) or card.get("format") not in READABLE_CARD_FORMATS:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ModelError(f"{path}: card format {found!r}, this keras_lmiqa reads "
                         f"{' and '.join(map(str, READABLE_CARD_FORMATS))}")
    _check_card_inference(folder, card)
    return card


def card_inference(spec) -> dict:
    """The card's `inference` section: what it shows of the model's `InferenceSpec`."""
    return {"crop_size": spec.crop_size, "scales": list(spec.scales), "grid_size": spec.grid_size,
            "working_long_side": spec.working_long_side, "max_windows": spec.max_windows,
            "window_rule": spec.window_rule, "branch": spec.export_branch}


def _check_card_inference(folder: str, card: dict) -> None:
    """The card's `inference` must be the spec stored in model.json (itself within the
    spec's bounds): what `lmiqa models` shows is what scores. JSON only, a few ms."""
    path = os.path.join(folder, MODEL_FILE)
    try:
        spec_values = artifacts.read_json(path)["config"]["preprocessor"]["config"]["spec"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f"cannot read the inference spec in {path}: {type(error).__name__} {error}") from None
    try:
        expected = card_inference(InferenceSpec.from_dict(spec_values))
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None
    shown = card.get("inference")
    differ = sorted(key for key in expected if not isinstance(shown, dict) or shown.get(key) != expected[key])
    if differ:
        raise ModelError(f"{os.path.join(folder, CARD_FILE)}: inference {', '.join(differ)} differ from the model's "
                         f"own settings in {MODEL_FILE}: a damaged or edited card; reinstall keras-lmiqa")


def pretrained(name: str | None = None):
    """The shipped model `name` (default `default_model()`) as a standalone `ImageQualityModel`:
    uint8 images in, the score dict out (`keras_lmiqa.models.image_quality`)."""
    return load_folder(model_folder(name))


def scorer(name: str | None = None, **options):
    """A `keras_lmiqa.scorer.Scorer` of shipped model `name` (`options`: batch_size, max_file_bytes),
    named `pretrained:NAME` in its messages."""
    name = name or default_model()
    return pretrained(name).scorer(source=source_label(name), **options)


def source_label(name: str | None = None) -> str:
    """How messages and export metadata name shipped model `name`."""
    return f"pretrained:{name or default_model()}"


def load_folder(folder: str, check_scores: bool = True):
    """An `ImageQualityModel` from a folder `pack_model` wrote, after checking its files' sha256
    and the card's settings against model.json; then (`check_scores`) that it scores the load
    check's reference image as its card says (`check_reference_score`)."""
    import keras  # the package's classes register as it loads (keras_lmiqa._registration)

    card = read_card(folder)
    contents = {}
    for file_name in (MODEL_FILE, WEIGHTS_FILE):
        path = os.path.join(folder, file_name)
        try:
            with open(path, "rb") as handle:
                contents[file_name] = handle.read()
        except OSError as error:
            raise ModelError(f"cannot read {path}: {error.strerror or error}") from None
        expected = card.get("files", {}).get(file_name)
        if hashlib.sha256(contents[file_name]).hexdigest() != expected:
            raise ModelError(f"{path} does not match the sha256 in its card ({CARD_FILE}): a damaged or "
                             "replaced file; reinstall keras-lmiqa")
    try:
        model = keras.saving.deserialize_keras_object(json.loads(contents[MODEL_FILE]), safe_mode=True)
    except Exception as error:  # Keras wraps what from_config raises: name the innermost reason
        from keras_lmiqa.loading import load_failure_reason

        raise ModelError(f"cannot load {os.path.join(folder, MODEL_FILE)}: {load_failure_reason(error)}") from None
    with np.load(io.BytesIO(contents[WEIGHTS_FILE]), allow_pickle=False) as arrays:
        if len(arrays.files) != len(model.weights):
            raise ModelError(f"{folder}: {WEIGHTS_FILE} holds {len(arrays.files)} arrays, the model has "
                             f"{len(model.weights)} weights")
        for index, variable in enumerate(model.weights):
            value = arrays[_key(index)]
            if tuple(value.shape) != tuple(variable.shape):
                raise ModelError(f"{folder}: weight {index} ({variable.path}) is {list(value.shape)} in "
                                 f"{WEIGHTS_FILE}, the model expects {list(variable.shape)}")
            variable.assign(value.astype(variable.dtype))
    if check_scores:
        check_reference_score(model, card, folder)
    return model


# The reference image scored at every load (one of `reference_images()`, 0.3 s on 2 busy
# cores once traced), as a PNG: the decode-and-score graph `lmiqa score` runs, traced once for both.
# Weights that load but do not behave as shipped (NaN weights with a matching sha256 score
# every image 0.61) differ from the card by far more than the tolerance; CPU-to-CPU float
# differences and the card's 6 decimals stay far below it.
LOAD_CHECK_IMAGE = "checker-240x320"
LOAD_CHECK_TOLERANCE = 1e-3


def check_reference_score(model, card: dict, folder: str) -> None:
    """ModelError unless `model` scores `LOAD_CHECK_IMAGE` within `LOAD_CHECK_TOLERANCE` of
    the card's `reference_scores`."""
    import tensorflow as tf

    expected = card.get("reference_scores", {}).get(LOAD_CHECK_IMAGE)
    if not isinstance(expected, (int, float)):
        raise ModelError(f"{os.path.join(folder, CARD_FILE)} has no reference score for {LOAD_CHECK_IMAGE}")
    png = tf.io.encode_png(reference_images()[LOAD_CHECK_IMAGE]).numpy()
    found = float(model.scorer(source=folder).score([png])[0])
    if not abs(found - expected) <= LOAD_CHECK_TOLERANCE:
        raise ModelError(f"{folder}: the model scores reference image {LOAD_CHECK_IMAGE} {found:.6f}, its card "
                         f"{expected:.6f}: its weights do not behave as shipped; reinstall keras-lmiqa")


def _key(index: int) -> str:
    return f"w{index:04d}"


# Matrices below this many weights stay float32 (see `stored_as_float16`).
FLOAT16_MIN_WEIGHTS = 50_000


def stored_as_float16(value: np.ndarray) -> bool:
    """Large matrices (dense and 1x1 convolution kernels of at least FLOAT16_MIN_WEIGHTS:
    85% of the shipped MobileNetV2's weights) go to float16; the rest stays float32.

    Measured against float32 scores on BIQ2021 test images: every weight as float16 moved an
    earlier model's by up to 3.3e-3 (20 images), every matrix the shipped model's by 1.8e-3
    (2,000 images), matrices of >= 50,000 weights by 5.2e-5 (60 images; the card has the
    figure on all 2,000). The stem, the depthwise kernels, the early blocks' small
    matrices and the batch-norm statistics are where float16's error grows through the
    network, and they are few weights."""
    return (np.issubdtype(value.dtype, np.floating) and value.ndim >= 2 and value.size >= FLOAT16_MIN_WEIGHTS
            and all(side == 1 for side in value.shape[:-2]))


def pack_weights(model) -> bytes:
    """The model's weights as an npz, matrices as float16 (`stored_as_float16`; refused if one overflows)."""
    arrays = {}
    for index, variable in enumerate(model.weights):
        value = np.asarray(variable.numpy())
        if stored_as_float16(value):
            half = value.astype(np.float16)
            if not np.all(np.isfinite(half)) and np.all(np.isfinite(value)):
                raise ModelError(f"weight {variable.path} overflows float16 (max |w| {np.abs(value).max():.4g})")
            value = half
        arrays[_key(index)] = value
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def reference_images() -> dict[str, np.ndarray]:
    """Made images (NumPy only, seeded) whose scores each card records: a changed weights file,
    preprocessing or window rule changes them."""
    rows, cols = np.mgrid[0:240, 0:320].astype(np.float32)
    rng = np.random.default_rng(20261130)
    smooth = np.stack([np.sin(rows / 17.0 + c) * np.cos(cols / 23.0 - c) for c in (0.0, 1.0, 2.0)], -1)
    texture = rng.normal(0.0, 1.0, (240, 320, 3)).astype(np.float32)
    checker = ((rows // 16 + cols // 16) % 2)[..., None].repeat(3, -1)

    def to_uint8(x):
        return np.clip(np.round(x), 0, 255).astype(np.uint8)

    return {
        "gradient-240x320": to_uint8(np.stack([rows, cols * 0.75, (rows + cols) * 0.45], -1)),
        "waves-240x320": to_uint8(127.5 + 100.0 * smooth),
        "waves-noisy-240x320": to_uint8(127.5 + 100.0 * smooth + 40.0 * texture),
        "checker-240x320": to_uint8(40.0 + 170.0 * checker),
        "noise-384x256": to_uint8(rng.uniform(0, 255, (384, 256, 3))),
    }


def reference_scores(model) -> dict[str, float]:
    """The model's `score` of each `reference_images()` image, 6 decimals."""
    images = reference_images()
    scores = model.scorer().score(list(images.values()))
    return {name: round(float(score), 6) for name, score in zip(images, scores)}


def pack_model(model, folder: str, card: dict, check_images: list | None = None,
               float32_mos: list | None = None, true_mos: list | None = None) -> dict:
    """Write `model` (an `ImageQualityModel`) into `folder` as a shipped model; returns the card.

    `card` gives the descriptive fields (name, training, metrics, ...); this adds the
    files' sha256 and the reference scores, measured on the model as loaded back from
    float16. With `check_images` (paths), the float32 model's `mos` on them and their
    human scores (a run's test_predictions.csv), it records the shipped model's largest
    difference from float32 (`float16.max_abs_mos_difference`) and its own metrics on
    them (`shipped_metrics`).
    """
    os.makedirs(folder, exist_ok=True)
    weights = pack_weights(model)
    _write_file(folder, WEIGHTS_FILE, weights)
    card = {**card, "format": CARD_FORMAT, "files": {WEIGHTS_FILE: hashlib.sha256(weights).hexdigest()}}
    card, shipped = _write_model(model, folder, card)
    if check_images:
        from keras_lmiqa import metrics

        half = shipped.scorer().score_mos(check_images)
        card["float16"] = {"images": len(check_images),
                           "max_abs_mos_difference": round(float(np.max(np.abs(half - np.asarray(float32_mos)))), 7)}
        card["shipped_metrics"] = metrics.evaluate(half, true_mos)
    artifacts.write_json(os.path.join(folder, CARD_FILE), card)
    return card


def _write_file(folder: str, file_name: str, content: bytes) -> None:
    with artifacts.atomic_path(os.path.join(folder, file_name)) as temporary, open(temporary, "wb") as handle:
        handle.write(content)


def _write_model(model, folder: str, card: dict):
    """Write `model`'s config (model.json) and the card (its inference settings, the files'
    sha256, the reference scores of the model as loaded back); returns (card, that model)."""
    import keras

    config = json.dumps(keras.saving.serialize_keras_object(model), sort_keys=True).encode()
    _write_file(folder, MODEL_FILE, config)
    card = {**card, "inference": card_inference(model.spec),
            "files": {**card.get("files", {}), MODEL_FILE: hashlib.sha256(config).hexdigest()}}
    artifacts.write_json(os.path.join(folder, CARD_FILE), card)
    shipped = load_folder(folder, check_scores=False)  # the scores are measured here
    card["reference_scores"] = reference_scores(shipped)
    artifacts.write_json(os.path.join(folder, CARD_FILE), card)
    return card, shipped


def set_working_size(folder: str, working_long_side: int) -> dict:
    """Give the shipped model in `folder` a working long side (`InferenceSpec.working_long_side`,
    0: native pixels); returns the card.

    Rewrites model.json and the card (inference settings, sha256, reference scores),
    and MODEL_CARD.md when the card has shipped metrics; the weights are left as they
    are. The card's metrics are not remeasured: check them when the working size is
    below the training photos' size (rerun `pack` with --check-csv).
    """
    from keras_lmiqa.models.image_quality import image_quality_model

    model = load_folder(folder)
    spec = dataclasses.replace(model.spec, working_long_side=int(working_long_side), window_rule="")
    card, _ = _write_model(image_quality_model(model.branch, spec, model.info), folder, read_card(folder))
    if "shipped_metrics" in card:
        _write_card_text(folder, card)
    return card


def _write_card_text(folder: str, card: dict) -> None:
    with artifacts.atomic_path(os.path.join(folder, CARD_TEXT_FILE)) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(render_card(card))


def render_card(card: dict) -> str:
    """MODEL_CARD.md from the card: every figure in it comes from card.json."""
    training, backbone, test = card["training"], card["backbone"], card["shipped_metrics"]
    inference, half = card["inference"], card.get("float16", {})
    run_val = card["run"]["metrics"]["val"]
    lines = [
        f"# {card['name']}", "", card["description"], "",
        "## Scores", "", card["score_meaning"], "",
        "## Training data", "",
        f"- **{training['dataset']}**: {training['citation']}. Source: {training['source']}.",
        f"- Terms of use: {training['terms']}",
        f"- Split: {training['split']}", "",
        "## Backbone", "",
        f"- `{backbone['name']}`: {backbone['weights']}.",
        f"- Licence: {backbone['licence']}.", "",
        "## Training", "",
        f"- Preset `{training['preset']}`; crops {inference['crop_size']} px at scales "
        f"{', '.join(f'{r:g}' for r in inference['scales'])}; exported branch: {inference['branch']} "
        f"(picked on the validation part, SRCC {run_val['srcc']:.3f}).",
        *([f"- Photo size: a photo whose long side exceeds {inference['working_long_side']} px is scored "
           f"downscaled to it (antialiased; a large JPEG is decoded at 1/2-1/8 scale first), at most "
           f"{inference['max_windows']} windows a photo."] if inference.get("working_long_side") else []),
        f"- Command (code at commit `{training.get('commit') or card['run']['config'].get('commit')}`):", "",
        "```bash", training["command"], "```", "",
        f"## Metrics: {training['dataset']} official test split ({test['n']} images, measured once)", "",
        "| SRCC | PLCC | KRCC | RMSE |", "|---|---|---|---|",
        f"| {test['srcc']:.3f} | {test['plcc']:.3f} | {test['krcc']:.3f} | {test['rmse']:.3f} |", "",
        "These are the shipped file's own scores (large matrices stored as float16); against the float32 "
        f"model they differ by at most {half.get('max_abs_mos_difference', float('nan')):.1e} on those "
        f"{half.get('images', 0)} images.", "",
        *_sensitivity_lines(card.get("sensitivity")),
        "## Known limits", "", *[f"- {limit}" for limit in card["limits"]], "",
        "## Checks", "",
        f"`{WEIGHTS_FILE}` sha256 `{card['files'][WEIGHTS_FILE]}`; the scores of "
        "`keras_lmiqa.pretrained_models.reference_images()` are in card.json, and the test suite "
        "recomputes both.", "",
    ]
    return "\n".join(lines)


def _sensitivity_lines(record: dict | None) -> list[str]:
    """The card's sensitivity section: per family, how the score falls with the level."""
    if not record:
        return []
    lines = [f"## Sensitivity to distortions ({record['photos']} photos, `lmiqa sensitivity`)", "",
             record.get("photos_description", ""), "",
             "| family | median SRCC(level, -score) | mean drop at level 5 | monotone photos |", "|---|---|---|---|"]
    for family, figures in record["families"].items():
        lines.append(f"| {family} | {figures['median_srcc']:.2f} | {figures['mean_drop']:.3f} | "
                     f"{figures['monotone_share']:.0%} |")
    return [*lines, ""]


def _pack_command(argv: list[str]) -> int:
    """`python -m keras_lmiqa.pretrained_models pack`: a run folder -> a shipped model folder."""
    parser = argparse.ArgumentParser(prog="python -m keras_lmiqa.pretrained_models pack",
                                     description=_pack_command.__doc__)
    parser.add_argument("--run-dir", required=True, help="the training run (model.keras, config.json, metrics.json)")
    parser.add_argument("--name", required=True, help="the shipped model's name (its folder)")
    parser.add_argument("--card", required=True, help="JSON file of the card's descriptive fields")
    parser.add_argument("--output-dir", default=SHIPPED_DIR, help=f"where model folders go (default {SHIPPED_DIR})")
    parser.add_argument("--sensitivity", default=None,
                        help="sensitivity.json that `lmiqa sensitivity` wrote for this model: the card keeps it")
    parser.add_argument("--check-csv", default=None,
                        help="test_predictions.csv of the run: the float16 model rescores its images, and the "
                             "card records the largest difference and the shipped model's metrics on them")
    args = parser.parse_args(argv)
    from keras_lmiqa.loading import load_image_model

    model = load_image_model(os.path.join(args.run_dir, "model.keras"))
    card = {"name": args.name, **artifacts.read_json(args.card)}
    if args.sensitivity:
        card["sensitivity"] = {**card.get("sensitivity", {}), **artifacts.read_json(args.sensitivity)}
    card["run"] = {"config": artifacts.read_json(os.path.join(args.run_dir, "config.json")),
                   "metrics": artifacts.read_json(os.path.join(args.run_dir, "metrics.json"))}
    paths, mos, predicted = [], [], []
    if args.check_csv:
        import csv

        with open(args.check_csv, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                paths.append(row["path"])
                mos.append(float(row["mos"]))
                predicted.append(float(row["predicted_mos"]))
    card = pack_model(model, os.path.join(args.output_dir, args.name), card, paths, predicted, mos)
    if paths:  # the card's text quotes the shipped metrics
        _write_card_text(os.path.join(args.output_dir, args.name), card)
    print(json.dumps({key: card.get(key) for key in ("name", "files", "float16", "shipped_metrics")}, indent=2))
    return 0


def _working_size_command(argv: list[str]) -> int:
    """`python -m keras_lmiqa.pretrained_models working-size`: set a shipped model's working long side."""
    parser = argparse.ArgumentParser(prog="python -m keras_lmiqa.pretrained_models working-size",
                                     description=set_working_size.__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="the shipped model's name (its folder)")
    parser.add_argument("--long-side", type=int, required=True, help="working long side in pixels (0: native)")
    parser.add_argument("--output-dir", default=SHIPPED_DIR, help=f"where model folders are (default {SHIPPED_DIR})")
    args = parser.parse_args(argv)
    card = set_working_size(os.path.join(args.output_dir, args.name), args.long_side)
    print(json.dumps({key: card.get(key) for key in ("name", "files", "inference", "reference_scores")}, indent=2))
    return 0


_COMMANDS = {"pack": _pack_command, "working-size": _working_size_command}

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in _COMMANDS:
        sys.exit(_COMMANDS[sys.argv[1]](sys.argv[2:]))
    sys.exit("usage: python -m keras_lmiqa.pretrained_models pack --run-dir RUN --name NAME --card CARD.json\n"
             "       python -m keras_lmiqa.pretrained_models working-size --name NAME --long-side PIXELS")
