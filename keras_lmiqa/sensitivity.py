"""How a quality model's score follows synthetic distortions of real photos (`lmiqa sensitivity`).

Each photo is distorted by each family of `FAMILIES` at 5 levels, weakest to strongest,
and every version is scored through the model's encoded-image path (`Scorer.score` on
bytes, as `lmiqa score` scores files). Per family it reports:

- `median_srcc`: median over photos of SRCC(level, -score) over levels 0..5 (level 0 is
  the undistorted photo): 1.0 when every stronger level scores lower. A photo whose six
  scores are all equal counts 0.0 (`metrics.srcc`).
- `mean_drop`: mean over photos of score(level 0) - score(level 5).
- `monotone_share`: share of photos whose score strictly decreases from each level to the
  next, 0 to 5 (a tie fails).

The distortions are this module's own, NumPy and OpenCV only: a model must never be graded
by the code that made its training distortions, so nothing here comes from
`keras_lmiqa.datasets` or `keras_lmiqa.pipeline` (a test checks the imports). Photos are
decoded with OpenCV (`cv2.IMREAD_COLOR`: grey to three channels, alpha dropped); each
version, the original included, is scored as a lossless PNG made of its pixels, except
the JPEG family, which is scored as the JPEG file itself.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from keras_lmiqa import artifacts, metrics
from keras_lmiqa.constants import DEFAULT_MAX_FILE_BYTES
from keras_lmiqa.errors import ConfigError, ImageError

# Family -> its 5 levels, weakest to strongest (docs/sensitivity.md explains each).
FAMILIES: dict[str, tuple[float, ...]] = {
    "noise": (5, 12, 20, 30, 45),                        # Gaussian sigma on 0-255, one field for R, G and B
    "jpeg": (70, 43, 25, 12, 5),                         # cv2.imencode quality
    "blur": (0.7, 1.3, 2.0, 3.0, 4.5),                   # Gaussian sigma in pixels
    "over_exposure": (1.3, 1.7, 2.1, 2.6, 3.2),          # gain, clipped at 255
    "under_exposure": (0.75, 0.6, 0.45, 0.32, 0.2),      # gain
    "contrast": (0.75, 0.6, 0.45, 0.3, 0.18),            # weight of the photo against its mean grey
    "downscale": (1.5, 2, 3, 4, 6),                      # down (INTER_AREA) then back up (INTER_CUBIC)
}
PARAMETERS = {"noise": "sigma", "jpeg": "quality", "blur": "sigma", "over_exposure": "gain",
              "under_exposure": "gain", "contrast": "alpha", "downscale": "factor"}
LEVELS = 5
# The bar a general-purpose model is held to, per family.
TARGET_MEDIAN_SRCC = 0.9
TARGET_MEAN_DROP = 0.15
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
PNG_COMPRESSION = 1  # lossless at any level; 1 is the fastest
MAX_IMAGE_BYTES = DEFAULT_MAX_FILE_BYTES  # larger files are refused unread, as by `lmiqa score`

SUMMARY_FILE, SUMMARY_CSV, PHOTOS_CSV, PLOT_FILE = (
    "sensitivity.json", "sensitivity.csv", "sensitivity-photos.csv", "sensitivity.png")


# ---------------------------------------------------------------- the distortions (uint8 RGB in and out)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise on luma: one N(0, sigma) field added to all three channels."""
    field = rng.normal(0.0, sigma, image.shape[:2] + (1,))
    return _to_uint8(image.astype(np.float64) + field)


def jpeg_bytes(image: np.ndarray, quality: float) -> bytes:
    """The photo as a JPEG file at `quality` (OpenCV's libjpeg, 4:2:0 chroma: its default, set explicitly)."""
    options = [cv2.IMWRITE_JPEG_QUALITY, int(quality),
               cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), options)
    if not ok:
        raise ImageError(f"OpenCV cannot encode a {image.shape} image as JPEG")
    return encoded.tobytes()


def jpeg(image: np.ndarray, quality: float) -> np.ndarray:
    """The pixels of `jpeg_bytes(image, quality)`."""
    return decode(jpeg_bytes(image, quality), "a JPEG made by OpenCV")


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, kernel size from sigma (cv2.GaussianBlur with ksize 0)."""
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)


def exposure(image: np.ndarray, gain: float) -> np.ndarray:
    """Every channel times `gain`, clipped to 255: over-exposure above 1, under-exposure below."""
    return _to_uint8(image.astype(np.float64) * gain)


def contrast(image: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * photo + (1 - alpha) * its mean grey (the mean of its BT.601 luma, the grey
    Pillow's ImageEnhance.Contrast uses, unrounded): alpha 1 is the photo, 0 a flat grey."""
    grey = float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean())
    return _to_uint8(alpha * image.astype(np.float64) + (1.0 - alpha) * grey)


def downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Down by `factor` (INTER_AREA), then back up to the photo's size (INTER_CUBIC)."""
    height, width = image.shape[:2]
    small = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA), (width, height),
                      interpolation=cv2.INTER_CUBIC)


def noise_rng(seed: int, photo_index: int, level: int) -> np.random.Generator:
    """The noise field's generator: one per (seed, photo, level), so a photo's noise does not
    depend on which other photos are measured."""
    return np.random.default_rng([seed, photo_index, level])


def distort(image: np.ndarray, family: str, level: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """`image` (uint8 [H, W, 3] RGB) with `family` at `level` (1..5; 0 is the image itself).
    `rng` draws the noise family's field (default `noise_rng(0, 0, level)`)."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown distortion family {family!r}; known: {', '.join(FAMILIES)}")
    if not 0 <= level <= LEVELS:
        raise ConfigError(f"level must be 0..{LEVELS}, got {level}")
    if level == 0:
        return image
    value = FAMILIES[family][level - 1]
    if family == "noise":
        return add_noise(image, value, rng if rng is not None else noise_rng(0, 0, level))
    return {"jpeg": jpeg, "blur": blur, "over_exposure": exposure, "under_exposure": exposure,
            "contrast": contrast, "downscale": downscale}[family](image, value)


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ImageError(f"OpenCV cannot encode a {image.shape} image as PNG")
    return encoded.tobytes()


def encoded_version(image: np.ndarray, family: str, level: int, rng: np.random.Generator | None = None) -> bytes:
    """The file that is scored: the JPEG itself for the JPEG family, a PNG of the pixels otherwise."""
    if family == "jpeg" and level > 0:
        return jpeg_bytes(image, FAMILIES["jpeg"][level - 1])
    return png_bytes(distort(image, family, level, rng))


def decode(data: bytes, label: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB of an encoded JPEG or PNG, as OpenCV decodes it."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ImageError(f"cannot decode image {label}: not a JPEG or PNG file OpenCV can read")
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def read_photo(path: str) -> np.ndarray:
    return decode(artifacts.read_regular_file(path, MAX_IMAGE_BYTES, "image"), path)


# ---------------------------------------------------------------- which photos


def _is_photo(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def photo_paths(images_dir: str | None, images_list: str | None, limit: int | None = None) -> list[str]:
    """The photos to measure, in a fixed order, the first `limit` of them.

    With `images_list`, its lines in order (blank lines and lines starting with # skipped):
    a relative name is taken inside `images_dir`, or beside the list file when no folder is
    given. Otherwise every .jpg/.jpeg/.png under `images_dir` (any case), walked and sorted.
    Each must be a regular file (checked by stat, before any model loads)."""
    if images_list is not None:
        paths = _listed_photos(images_list, images_dir)
    elif images_dir is not None:
        if not os.path.isdir(images_dir):
            raise ConfigError(f"--images {images_dir}: no such folder")
        paths = sorted(os.path.join(root, name) for root, _, names in os.walk(images_dir)
                       for name in names if _is_photo(name))
        if not paths:
            raise ConfigError(f"--images {images_dir}: no {'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} files in it")
    else:
        raise ConfigError("give --images DIR, --images-list FILE or both")
    paths = paths[:limit] if limit is not None else paths
    # Stat each file now (a FIFO would block a read, /dev/zero never ends), not after the model loads.
    for path in paths:
        problem = artifacts.check_regular_file(path, MAX_IMAGE_BYTES, "image")
        if problem:
            raise ImageError(problem)
    return paths


def _listed_photos(images_list: str, images_dir: str | None) -> list[str]:
    if images_dir is not None and not os.path.isdir(images_dir):
        raise ConfigError(f"--images {images_dir}: no such folder")
    try:
        with open(images_list, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--images-list {images_list}: cannot read: {getattr(error, 'strerror', None) or error}"
                          ) from None
    root = images_dir if images_dir is not None else os.path.dirname(os.path.abspath(images_list))
    paths = []
    for number, line in enumerate(lines, 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        path = os.path.join(root, name)  # an absolute name stays as it is
        if not os.path.exists(path):
            raise ConfigError(f"--images-list {images_list} line {number}: no such image file: {path}")
        paths.append(path)
    if not paths:
        raise ConfigError(f"--images-list {images_list} names no image")
    return paths


# ---------------------------------------------------------------- scoring and figures


def measure(score: Callable[[list[bytes]], np.ndarray], paths: Sequence[str], seed: int = 0,
            batch_size: int = 32, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Scores float64 [photos, families (FAMILIES order), LEVELS + 1]; column 0 is the
    undistorted photo (scored once, repeated for every family).

    `score` takes a list of encoded images (`Scorer.score`); versions from consecutive
    photos are pooled into calls of `batch_size` so that each call is full."""
    families = list(FAMILIES)
    scores = np.full((len(paths), len(families), LEVELS + 1), np.nan)
    pending: list[tuple[tuple[int, int, int], bytes]] = []

    def flush(everything: bool) -> None:
        while len(pending) >= batch_size or (everything and pending):
            chunk, pending[:] = pending[:batch_size], pending[batch_size:]
            values = score([data for _, data in chunk])
            for ((photo, family, level), _), value in zip(chunk, values):
                scores[photo, family, level] = value

    for index, path in enumerate(paths):
        image = read_photo(path)
        pending.append(((index, 0, 0), png_bytes(image)))
        for family_index, family in enumerate(families):
            for level in range(1, LEVELS + 1):
                rng = noise_rng(seed, index, level) if family == "noise" else None
                pending.append(((index, family_index, level), encoded_version(image, family, level, rng)))
        flush(everything=False)
        if progress is not None:
            progress(index + 1, len(paths))
    flush(everything=True)
    scores[:, 1:, 0] = scores[:, :1, 0]
    return scores


def summarize(scores: np.ndarray) -> dict:
    """Per family: its levels and the three figures of the module docstring, plus the mean
    score at each level and whether it meets the targets."""
    order = np.arange(LEVELS + 1)
    out = {}
    for family_index, family in enumerate(FAMILIES):
        rows = scores[:, family_index, :]
        srcc = [metrics.srcc(order, -row) for row in rows]
        median_srcc, mean_drop = float(np.median(srcc)), float(np.mean(rows[:, 0] - rows[:, -1]))
        out[family] = {
            "parameter": PARAMETERS[family],
            "levels": list(FAMILIES[family]),
            "median_srcc": round(median_srcc, 6),
            "mean_drop": round(mean_drop, 6),
            "monotone_share": round(float(np.mean(np.all(np.diff(rows, axis=1) < 0, axis=1))), 6),
            "mean_score": [round(float(v), 6) for v in rows.mean(axis=0)],
            "meets_targets": bool(median_srcc >= TARGET_MEDIAN_SRCC and mean_drop >= TARGET_MEAN_DROP),
        }
    return out


def figure_png(summary: dict, title: str) -> bytes:
    """Mean score against level, one line per family."""
    from keras_lmiqa import plots  # matplotlib loads only to draw

    return plots.png_bytes(plots.score_by_level({f: s["mean_score"] for f, s in summary.items()}, title))


# ---------------------------------------------------------------- outputs


def result_record(summary: dict, model: str, photos: int, seed: int) -> dict:
    return {"model": model, "photos": photos, "seed": seed, "levels_per_family": LEVELS,
            "targets": {"median_srcc": TARGET_MEDIAN_SRCC, "mean_drop": TARGET_MEAN_DROP},
            "families": summary}


def _csv_text(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _write_text(path: str, text: str) -> None:
    with artifacts.atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_outputs(output_dir: str, record: dict, scores: np.ndarray, photo_names: Sequence[str]) -> None:
    """sensitivity.json, sensitivity.csv, sensitivity-photos.csv (every score, 9 significant
    digits: the float32 scores exactly) and sensitivity.png, each written atomically."""
    os.makedirs(output_dir, exist_ok=True)
    summary = record["families"]
    artifacts.write_json(os.path.join(output_dir, SUMMARY_FILE), record)
    levels = [f"level_{level}" for level in range(LEVELS + 1)]
    _write_text(os.path.join(output_dir, SUMMARY_CSV), _csv_text(
        ["family", "parameter", *[f"{name}_value" for name in levels[1:]], "median_srcc", "mean_drop",
         "monotone_share", *[f"mean_score_{name}" for name in levels], "meets_targets"],
        [[family, s["parameter"], *s["levels"], s["median_srcc"], s["mean_drop"], s["monotone_share"],
          *s["mean_score"], s["meets_targets"]] for family, s in summary.items()]))
    _write_text(os.path.join(output_dir, PHOTOS_CSV), _csv_text(
        ["photo", "family", *levels],
        [[name, family, *[f"{value:.9g}" for value in scores[photo, family_index]]]
         for photo, name in enumerate(photo_names) for family_index, family in enumerate(FAMILIES)]))
    png = figure_png(summary, f"{record['model']}, {record['photos']} photos")
    with artifacts.atomic_path(os.path.join(output_dir, PLOT_FILE)) as temporary, open(temporary, "wb") as handle:
        handle.write(png)


def table(summary: dict) -> str:
    """The per-family figures as a text table."""
    rows = [("family", "levels", "median SRCC", "mean drop", "monotone", "target")]
    for family, s in summary.items():
        rows.append((family, f"{s['parameter']} {', '.join(f'{v:g}' for v in s['levels'])}",
                     f"{s['median_srcc']:.3f}", f"{s['mean_drop']:.3f}", f"{s['monotone_share']:.2f}",
                     "met" if s["meets_targets"] else "not met"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))).rstrip() for row in rows)
