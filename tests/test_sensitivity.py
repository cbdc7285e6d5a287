"""`lmiqa sensitivity` and its NumPy/OpenCV distortions (keras_lmiqa/sensitivity.py)."""

from __future__ import annotations

import ast
import csv
import json
import os
import sys

import cv2
import numpy as np
import pytest
from scipy import stats

from keras_lmiqa import sensitivity
from keras_lmiqa.cli import main as lmiqa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def made_image(size: int = 96, seed: int = 7) -> np.ndarray:
    """Waves, hard edges and fine texture, every channel inside [30, 215]: room for each family to act."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    base = 100.0 + 45.0 * np.sin(rows / 5.0) * np.cos(cols / 7.0) + 40.0 * ((rows // 12 + cols // 12) % 2)
    base += np.random.default_rng(seed).normal(0.0, 6.0, (size, size))
    return np.clip(np.rint(np.stack([base, 0.9 * base + 10.0, 0.8 * base + 20.0], -1)), 0, 255).astype(np.uint8)


def _levels(family: str, image: np.ndarray) -> list[np.ndarray]:
    return [sensitivity.distort(image, family, level, sensitivity.noise_rng(0, 0, level))
            for level in range(sensitivity.LEVELS + 1)]


def _strictly(values: list[float], rising: bool) -> bool:
    steps = np.diff(values)
    return bool(np.all(steps > 0) if rising else np.all(steps < 0))


def _gradient_energy(image: np.ndarray) -> float:
    grey = image.astype(np.float64).mean(-1)
    return float(np.mean(np.diff(grey, axis=0) ** 2) + np.mean(np.diff(grey, axis=1) ** 2))


def _high_frequency_energy(image: np.ndarray) -> float:
    return float(np.var(cv2.Laplacian(image.astype(np.float64).mean(-1), cv2.CV_64F)))


def test_each_family_has_five_levels_and_level_0_is_the_photo():
    image = made_image()
    assert len(sensitivity.FAMILIES) == 7 and set(sensitivity.PARAMETERS) == set(sensitivity.FAMILIES)
    for family, levels in sensitivity.FAMILIES.items():
        assert len(levels) == sensitivity.LEVELS, family
        assert sensitivity.distort(image, family, 0) is image
        for version in _levels(family, image)[1:]:
            assert version.dtype == np.uint8 and version.shape == image.shape, family


def test_noise_is_one_luma_field_whose_variance_grows_with_the_level():
    image = made_image()
    versions = _levels("noise", image)
    residuals = [version.astype(np.float64) - image for version in versions]
    assert _strictly([float(np.var(r)) for r in residuals], rising=True)
    assert np.std(residuals[1]) == pytest.approx(5.0, rel=0.1)  # sigma 5: nothing clips
    unclipped = np.all((versions[3] > 0) & (versions[3] < 255), axis=-1)
    assert unclipped.mean() > 0.9
    assert np.array_equal(residuals[3][unclipped][:, 0], residuals[3][unclipped][:, 1])
    assert np.array_equal(residuals[3][unclipped][:, 0], residuals[3][unclipped][:, 2])
    # Seeded per (seed, photo, level): the same call repeats, another photo draws another field.
    again = sensitivity.distort(image, "noise", 3, sensitivity.noise_rng(0, 0, 3))
    other = sensitivity.distort(image, "noise", 3, sensitivity.noise_rng(0, 1, 3))
    assert np.array_equal(again, versions[3]) and not np.array_equal(other, versions[3])


def test_jpeg_files_shrink_and_their_error_grows_with_the_level():
    image = made_image()
    sizes = [len(sensitivity.jpeg_bytes(image, quality)) for quality in sensitivity.FAMILIES["jpeg"]]
    assert _strictly(sizes, rising=False), sizes
    errors = [float(np.mean((version.astype(np.float64) - image) ** 2)) for version in _levels("jpeg", image)]
    assert _strictly(errors, rising=True), errors
    assert sensitivity.encoded_version(image, "jpeg", 4) == sensitivity.jpeg_bytes(image, 12)  # the file is scored


def test_blur_lowers_the_gradient_energy_at_every_level():
    energies = [_gradient_energy(version) for version in _levels("blur", made_image())]
    assert _strictly(energies, rising=False), energies


def test_exposure_moves_the_mean_brightness_each_way():
    image = made_image()
    over = [float(version.mean()) for version in _levels("over_exposure", image)]
    under = [float(version.mean()) for version in _levels("under_exposure", image)]
    assert _strictly(over, rising=True), over
    assert _strictly(under, rising=False), under
    assert under[-1] == pytest.approx(0.2 * image.mean(), abs=0.5)


def test_contrast_lowers_the_spread_around_a_kept_mean_grey():
    image = made_image()
    versions = _levels("contrast", image)
    spreads = [float(version.astype(np.float64).std()) for version in versions]
    assert _strictly(spreads, rising=False), spreads
    grey = [float(cv2.cvtColor(version, cv2.COLOR_RGB2GRAY).mean()) for version in versions]
    assert max(grey) - min(grey) < 1.0


def test_downscale_removes_more_high_frequency_energy_at_every_level():
    versions = _levels("downscale", made_image())
    energies = [_high_frequency_energy(version) for version in versions]
    assert _strictly(energies, rising=False), energies


# ---------------------------------------------------------------- independence from the training code


def test_the_grading_code_imports_nothing_of_the_training_distortions_or_pipeline(tmp_path):
    tree = ast.parse(open(os.path.join(ROOT, "keras_lmiqa", "sensitivity.py"), encoding="utf-8").read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    forbidden = ("keras_lmiqa.datasets", "keras_lmiqa.pipeline", "keras_lmiqa.training", "tensorflow")
    assert not [name for name in imported if name.startswith(forbidden)], imported


def test_measuring_never_loads_the_training_distortions_or_pipeline(tmp_path, monkeypatch):
    # A module set to None in sys.modules fails any import of it, lazy ones included.
    for name in ("keras_lmiqa.datasets.distortions", "keras_lmiqa.pipeline", "keras_lmiqa.training"):
        monkeypatch.setitem(sys.modules, name, None)
    path = str(tmp_path / "grey.png")
    cv2.imwrite(path, made_image(40))
    calls = []
    scores = sensitivity.measure(lambda data: calls.append(len(data)) or np.arange(len(data), dtype=float),
                                 [path, path], batch_size=7)
    assert calls == [7] * 10 + [2]  # 2 photos x 36 versions pooled into full calls
    assert scores.shape == (2, 7, 6) and not np.isnan(scores).any()
    assert np.all(scores[:, :, 0] == scores[:, :1, 0])  # the original is scored once per photo


# ---------------------------------------------------------------- the command on a tiny model


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    """Four made photos, two PNG and two JPEG, plus a file that is not an image."""
    folder = tmp_path_factory.mktemp("sensitivity_photos")
    for index in range(4):
        image = cv2.cvtColor(np.roll(made_image(72 + 8 * index, seed=index), 5 * index, axis=1), cv2.COLOR_RGB2BGR)
        name = f"photo{index}.{'png' if index % 2 else 'jpg'}"
        cv2.imwrite(str(folder / name), image, [] if index % 2 else [cv2.IMWRITE_JPEG_QUALITY, 95])
    (folder / "notes.txt").write_text("not a photo\n")
    os.mkfifo(folder / "fifo")  # refused before the model loads, never opened
    (folder / "fifo.txt").write_text("photo0.jpg\nfifo\n")
    return str(folder)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "reliability"))
    from untrained import write_untrained_run

    return write_untrained_run(str(tmp_path_factory.mktemp("sensitivity_run")))


@pytest.fixture(scope="module")
def measured(photos, tiny_model, tmp_path_factory):
    """(output folder, stdout, the command's scorer) of the command on the photos, a run folder as --model."""
    from keras_lmiqa import scorer as scorer_module

    made = []
    load = scorer_module.load_scorer
    scorer_module.load_scorer = lambda *args, **kwargs: made.append(load(*args, **kwargs)) or made[-1]
    output = str(tmp_path_factory.mktemp("sensitivity_out") / "out")
    args = ["sensitivity", "--model", os.path.dirname(tiny_model), "--images", photos, "--output-dir", output,
            "--seed", "3", "--batch-size", "5"]  # 5: calls pool versions of consecutive photos
    capture = _Capture()
    try:
        with capture:
            code = lmiqa(args)
    finally:
        scorer_module.load_scorer = load
    assert code == 0, capture.err
    return output, capture.out, made[0]


class _Capture:
    """stdout and stderr of an in-process command (the fixture is module-scoped: no capsys)."""

    def __enter__(self):
        import io

        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = io.StringIO(), io.StringIO()

    def __exit__(self, *exc):
        self.out, self.err = sys.stdout.getvalue(), sys.stderr.getvalue()
        sys.stdout, sys.stderr = self._saved


def _photo_rows(output: str) -> list[dict]:
    with open(os.path.join(output, sensitivity.PHOTOS_CSV), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_summary_is_what_the_per_photo_scores_give(measured):
    output, stdout, _ = measured
    record = json.load(open(os.path.join(output, sensitivity.SUMMARY_FILE), encoding="utf-8"))
    assert record["photos"] == 4 and record["seed"] == 3 and record["model"].endswith("model.keras")
    assert set(record["families"]) == set(sensitivity.FAMILIES)
    rows = _photo_rows(output)
    assert [row["photo"] for row in rows[::7]] == [f"photo{i}.{'png' if i % 2 else 'jpg'}" for i in range(4)]
    for family, figures in record["families"].items():
        assert figures["levels"] == list(sensitivity.FAMILIES[family])
        scores = np.array([[float(row[f"level_{level}"]) for level in range(6)] for row in rows
                           if row["family"] == family])
        assert scores.shape == (4, 6)
        srcc = [stats.spearmanr(np.arange(6), -photo)[0] for photo in scores]
        srcc = [0.0 if np.isnan(value) else value for value in srcc]  # six equal scores count 0
        assert figures["median_srcc"] == pytest.approx(np.median(srcc), abs=1e-6)
        assert figures["mean_drop"] == pytest.approx(np.mean(scores[:, 0] - scores[:, 5]), abs=1e-6)
        assert figures["monotone_share"] == pytest.approx(np.mean(np.all(np.diff(scores) < 0, axis=1)), abs=1e-6)
        assert figures["mean_score"] == pytest.approx(scores.mean(0).tolist(), abs=1e-6)
        assert figures["meets_targets"] == (figures["median_srcc"] >= 0.9 and figures["mean_drop"] >= 0.15)
    level_0 = {(row["photo"], row["level_0"]) for row in rows}
    assert len(level_0) == 4  # the original is scored once per photo
    with open(os.path.join(output, sensitivity.SUMMARY_CSV), newline="", encoding="utf-8") as handle:
        summary_rows = list(csv.DictReader(handle))
    assert [row["family"] for row in summary_rows] == list(sensitivity.FAMILIES)
    assert float(summary_rows[0]["median_srcc"]) == record["families"]["noise"]["median_srcc"]
    assert open(os.path.join(output, sensitivity.PLOT_FILE), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    table = stdout.strip().splitlines()
    assert len(table) == 8 and [line.split()[0] for line in table[1:]] == list(sensitivity.FAMILIES)


def test_each_score_is_the_models_score_of_that_version(measured, photos):
    output, _, scorer = measured
    rows = {(row["photo"], row["family"]): row for row in _photo_rows(output)}
    image = sensitivity.read_photo(os.path.join(photos, "photo1.png"))
    checks = [("noise", 2), ("jpeg", 5), ("blur", 3), ("downscale", 1), ("contrast", 0)]
    versions = [sensitivity.encoded_version(image, family, level, sensitivity.noise_rng(3, 1, level))
                for family, level in checks]
    expected = scorer.score(versions)
    got = [float(rows["photo1.png", family][f"level_{level}"]) for family, level in checks]
    assert got == pytest.approx(expected.tolist(), abs=1e-6)
    assert len(set(got)) == len(got)  # the model tells these versions apart


def test_a_list_file_sets_the_photos_and_their_order(photos, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text(f"# chosen photos\nphoto3.png\n\n{photos}/photo0.jpg\nphoto2.jpg\n")
    listed = sensitivity.photo_paths(photos, str(names), limit=2)
    assert listed == [os.path.join(photos, "photo3.png"), os.path.join(photos, "photo0.jpg")]
    beside = tmp_path / "beside.txt"  # without --images, a relative name is beside the list file
    beside.write_text(f"photo2.jpg\n{photos}/photo0.jpg\n")
    (tmp_path / "photo2.jpg").write_bytes(b"")
    assert sensitivity.photo_paths(None, str(beside)) == [str(tmp_path / "photo2.jpg"),
                                                          os.path.join(photos, "photo0.jpg")]
    walked = sensitivity.photo_paths(photos, None)  # a folder: its JPEG and PNG files, sorted
    assert [os.path.basename(path) for path in walked] == ["photo0.jpg", "photo1.png", "photo2.jpg", "photo3.png"]


@pytest.mark.parametrize("flags, message", [
    (["--limit", "0"], "--limit must be >= 1, got 0"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--images", "{photos}/missing"], "--images {photos}/missing: no such folder"),
    (["--images-list", "{photos}/notes.txt", "--images", "{photos}"], "line 1: no such image file: {photos}/not a"),
    (["--images-list", "{photos}/absent.txt"], "--images-list {photos}/absent.txt: cannot read"),
    (["--pretrained", "no-such-model", "--images", "{photos}"], "no pretrained model named 'no-such-model'"),
    (["--model", "{photos}/none.keras", "--images", "{photos}"], "--model {photos}/none.keras: no such file"),
    (["--images", "{photos}", "--output-dir", "{photos}/notes.txt"], "is a file, not a folder"),
    (["--images-list", "{photos}/fifo.txt"], "{photos}/fifo: a FIFO, not a regular file; not read"),
    ([], "give --images DIR, --images-list FILE or both"),
])
def test_bad_flags_are_refused_in_one_line(photos, tmp_path, capsys, flags, message):
    flags = [flag.format(photos=photos) for flag in flags]
    if "--output-dir" not in flags:
        flags += ["--output-dir", str(tmp_path / "out")]
    assert lmiqa(["sensitivity", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lmiqa sensitivity: error: ") and message.format(photos=photos) in err[0]
    assert not os.path.exists(tmp_path / "out")


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    from keras_lmiqa.errors import ImageError

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a JPEG")
    with pytest.raises(ImageError) as raised:
        sensitivity.measure(lambda data: np.zeros(len(data)), [str(broken)])
    assert str(raised.value) == f"cannot decode image {broken}: not a JPEG or PNG file OpenCV can read"
