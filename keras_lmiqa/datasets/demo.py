"""`demo`: a small KADID-style synthetic IQA dataset built from bundled photographs.

Needs no download. On first use it is built once into a cache folder and then read from
there like any other dataset.

References
    Real photographs shipped as files by installed packages (scikit-image's
    `skimage/data`, matplotlib's `grace_hopper.jpg`, scikit-learn's sample JPEGs when
    installed; see :mod:`keras_lmiqa.datasets.photos`), turned into `image_size` x
    `image_size` RGB tiles (large photographs are area-downscaled and cut into
    non-overlapping tiles, each tile its own reference; grey photographs become 3
    equal channels). `max_references` tiles are chosen round-robin over the photographs.

Distortions
    Every type in :data:`keras_lmiqa.datasets.distortions.DISTORTIONS` (15 KADID-style
    types) at 5 levels, applied to every reference with a random generator seeded from
    (`seed`, reference, type), so a build is reproducible byte for byte and the 5 levels
    of a random type share their draws (same noise pattern, scaled).

Labels (weak, full-reference, like KADIS-700k)
    For a distorted image X of reference R, both converted to full-range BT.601 YCbCr
    (0..255)::

        q   = mean over the channel stack (Y, Y, Y, Y, Cb, Cr) of
              tf.image.ssim_multiscale(R, X, max_val=255)     # 5 scales, 11-tap Gaussian
            = 2/3 * MS-SSIM(Y) + 1/6 * MS-SSIM(Cb) + 1/6 * MS-SSIM(Cr)
        mos = 1 + 4 * q ** GAMMA                                # GAMMA = 8, mos in [1, 5]

    Higher = better (kind "MOS", like KADID-10k). MS-SSIM lies in [0, 1] (TensorFlow
    clips negative contrast-structure terms to 0). The chroma terms make colour
    distortions (saturation loss, colour shifts, colour blocks, chroma noise) count,
    which luma MS-SSIM alone ignores. MS-SSIM weighs mean luminance only at its coarsest
    scale, so brightness changes are not over-penalised relative to structural damage
    (blur, noise, compression). `q ** GAMMA` is monotone (it does not change any
    ranking); it spreads the 0.7..1 range MS-SSIM gives to visible distortions over the
    1..5 scale. The distortion levels are calibrated so each type spans mild (level 1,
    mean mos 4.2..4.9 per type) to severe (level 5, mean mos 1.4..2.4, and 3.9 for
    desaturation, the mildest type). Tiles smaller than 176
    pixels cannot carry an 11-tap filter at the 5th scale, so for `image_size` below 176
    the filter shrinks to the largest odd size that fits (`filter_size(image_size)`).
    Desaturation is a no-op on grey references and is then labelled as pristine (mos 5).

Cache layout (`<cache>` = `root` if given, else `$LMIQA_HOME/demo`, else
`~/.cache/keras_lmiqa/demo`)::

    <cache>/v1-s256-r48-seed0-<sources hash>/
        labels.csv                 path,mos,group,distortion,level
        build.json                 options, references, label definition
        references/<ref>.png       pristine tiles (not records)
        images/<ref>_<type>_<level>.png

A build is written into a hidden temporary folder beside the target and renamed into
place, so an interrupted build never leaves a partial dataset, and a concurrent builder
simply uses whichever complete copy lands first. Changing any option (or the set of
bundled photographs) selects a different versioned folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_lmiqa.datasets import distortions as _distortions
from keras_lmiqa.datasets import photos as _photos
from keras_lmiqa.datasets.records import Dataset, make_dataset, require_images_exist, resolve_inside
from keras_lmiqa.errors import DatasetError

logger = logging.getLogger(__name__)

NAME = "demo"
FORMAT_VERSION = 1  # bump when distortions or labels change: it names the cache folder
DEFAULT_IMAGE_SIZE = 256
DEFAULT_MAX_REFERENCES = 48  # every 256-px tile the bundled photographs give
DEFAULT_SEED = 0
MIN_IMAGE_SIZE = 64
MAX_IMAGE_SIZE = 1024
GAMMA = 8.0
LUMA_REPEATS = 4  # channel stack (Y x 4, Cb, Cr): weights 2/3, 1/6, 1/6
LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("path", "mos", "group", "distortion", "level")

LAYOUT = (
    "built automatically (no download) into <root>/v1-s<image_size>-r<max_references>-seed<seed>-<hash>/ "
    "with labels.csv (path,mos,group,distortion,level), references/*.png and images/*.png; "
    "<root> defaults to $LMIQA_HOME/demo or ~/.cache/keras_lmiqa/demo"
)

# Stale temporary build folders (dead builder) older than this are removed.
_STALE_TMP_SECONDS = 3600.0


def default_root() -> str:
    """`$LMIQA_HOME/demo` if `LMIQA_HOME` is set, else `~/.cache/keras_lmiqa/demo`."""
    home = os.environ.get("LMIQA_HOME")
    if home:
        return os.path.join(os.path.expanduser(home), NAME)
    return os.path.join(os.path.expanduser("~"), ".cache", "keras_lmiqa", NAME)


def filter_size(image_size: int) -> int:
    """Gaussian filter size of the 5-scale MS-SSIM for `image_size` tiles (11 from 176 px)."""
    coarsest = image_size // 16
    size = min(11, coarsest)
    return size if size % 2 else size - 1


def _int_option(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise DatasetError(f"demo: option {name} must be an integer; got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DatasetError(f"demo: option {name} must be an integer; got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise DatasetError(f"demo: option {name} must be an integer; got {value!r}")
    if not low <= number <= high:
        raise DatasetError(f"demo: option {name} must be in [{low}, {high}]; got {number}")
    return number


def _sources_digest(photos: list[_photos.Photo]) -> str:
    """Short hash of the bundled photographs (names, packages and file bytes)."""
    digest = hashlib.sha256()
    for photo in photos:
        digest.update(f"{photo.package}/{photo.name}\0".encode())
        with open(photo.path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    digest.update(",".join(_distortions.DISTORTIONS).encode())
    return digest.hexdigest()[:8]


def version_name(image_size: int, max_references: int, seed: int, digest: str) -> str:
    return f"v{FORMAT_VERSION}-s{image_size}-r{max_references}-seed{seed}-{digest}"


def read(
    root: str | None = None,
    *,
    image_size: int = DEFAULT_IMAGE_SIZE,
    max_references: int = DEFAULT_MAX_REFERENCES,
    seed: int = DEFAULT_SEED,
    **unknown,
) -> Dataset:
    """Build the demo dataset if needed and return its distorted images as records.

    Args:
        root: cache folder holding the versioned builds; default :func:`default_root`.
        image_size: side of the square references and distorted images (64..1024).
        max_references: number of reference tiles (groups), spread over the photographs.
        seed: seed of the random distortions (noise, blur direction, block placement).

    Returns:
        A synthetic :class:`Dataset` (group = reference tile, kind "MOS", higher = better)
        of `references x distortion types x 5 levels` records; the pristine references
        are not records.

    Raises:
        DatasetError: unknown or invalid options, no usable photograph, unwritable cache,
            or a malformed existing build.
    """
    if unknown:
        raise DatasetError(
            f"demo: unknown option(s) {', '.join(sorted(unknown))}; valid: image_size, max_references, seed"
        )
    image_size = _int_option("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    max_references = _int_option("max_references", max_references, 1, 10_000)
    seed = _int_option("seed", seed, 0, 2**32 - 1)
    cache = os.path.abspath(os.path.expanduser(root)) if root is not None else default_root()
    photos = _photos.bundled_photos()
    if not photos:
        raise DatasetError("demo: no bundled photographs found (is scikit-image installed?)")
    target = os.path.join(cache, version_name(image_size, max_references, seed, _sources_digest(photos)))
    if not os.path.isdir(target):
        build(target, photos=photos, image_size=image_size, max_references=max_references, seed=seed)
    return _read_built(target)


def _read_built(target: str) -> Dataset:
    labels = os.path.join(target, LABELS_FILE)
    if not os.path.isfile(labels):
        raise DatasetError(
            f"demo: {target} exists but has no {LABELS_FILE}; it was not written by a complete build. "
            "Delete the folder to rebuild it."
        )
    entries = []
    with open(labels, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != LABEL_COLUMNS:
            raise DatasetError(f"demo: {labels} must have the columns {','.join(LABEL_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                mos = float(row["mos"])
            except (TypeError, ValueError):
                raise DatasetError(f"demo: {labels}:{line}: score {row['mos']!r} is not a number") from None
            path = resolve_inside(target, row["path"], NAME)
            entries.append((path, mos, row["group"], None))
    require_images_exist(NAME, [e[0] for e in entries])
    return make_dataset(NAME, target, entries, higher_better=True, synthetic=True, kind="MOS")


# --- building -----------------------------------------------------------------------


def _rng(seed: int, reference: str, distortion: str) -> np.random.Generator:
    """A fresh generator for one (reference, distortion): every level gets the same draws."""
    key = [seed, zlib.crc32(reference.encode()), zlib.crc32(distortion.encode())]
    return np.random.default_rng(np.random.SeedSequence(key))


_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)
_YCC_OFFSET = np.array([0.0, 128.0, 128.0], dtype=np.float32)

# Pixels (images x height x width) per MS-SSIM call: a whole 256-px reference (75
# images) in one call; larger tiles are split to bound memory.
_PIXELS_PER_CALL = 75 * 256 * 256


def _label_stack(tf, images):
    """(N, H, W, 3) uint8 RGB -> (N, H, W, LUMA_REPEATS + 2) float32 (Y.., Cb, Cr) in 0..255."""
    rgb = tf.cast(tf.convert_to_tensor(images), tf.float32)
    ycc = tf.tensordot(rgb, tf.constant(_YCC.T), axes=1) + tf.constant(_YCC_OFFSET)
    return tf.concat([ycc[..., :1]] * LUMA_REPEATS + [ycc[..., 1:]], axis=-1)


def quality_scores(reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
    """The label `q` in [0, 1] of each distorted image, batched per reference.

    All distortions of a reference go through one `tf.image.ssim_multiscale` call (the
    reference is broadcast, so its local statistics are computed once), split only when
    the tiles are larger than 256 pixels.

    Args:
        reference: (H, W, 3) uint8 RGB.
        distorted: (N, H, W, 3) uint8 RGB of the same size.
    """
    import tensorflow as tf

    h, w = reference.shape[:2]
    if distorted.ndim != 4 or distorted.shape[1:] != reference.shape:
        raise ValueError(f"distorted images {distorted.shape} do not match the reference {reference.shape}")
    ref = _label_stack(tf, reference[None])
    size = filter_size(min(h, w))
    chunk = max(1, _PIXELS_PER_CALL // (h * w))
    scores = []
    for start in range(0, len(distorted), chunk):
        batch = _label_stack(tf, distorted[start : start + chunk])
        scores.append(tf.image.ssim_multiscale(ref, batch, max_val=255.0, filter_size=size).numpy())
    return np.clip(np.concatenate(scores).astype(np.float64), 0.0, 1.0)


def mos_from_quality(q):
    """`mos = 1 + 4 * q ** GAMMA`: the label scale of the demo set (1..5, higher = better)."""
    return 1.0 + 4.0 * np.power(np.clip(q, 0.0, 1.0), GAMMA)


def _write_png(path: str, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise DatasetError(f"demo: cannot write {path}")


def _write_pngs(folder: str, relatives: list[str], images: list[np.ndarray]) -> None:
    for relative, image in zip(relatives, images):
        _write_png(os.path.join(folder, relative), image)


def _remove_stale_builds(parent: str, name: str) -> None:
    prefix = f".{name}.tmp-"
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        path = os.path.join(parent, entry)
        try:
            pid = int(entry[len(prefix) :].split("-", 1)[0])
            if now - os.path.getmtime(path) < _STALE_TMP_SECONDS:
                continue
            os.kill(pid, 0)  # raises if no such process: the builder is gone
            continue
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, OSError):
            continue


def _render_images(tmp: str, references, names: list[str], seed: int) -> list[tuple]:
    """Write every reference and its distorted images into `tmp`; returns the label rows."""
    import keras

    rows = []
    progbar = keras.utils.Progbar(len(references), unit_name="reference")
    # PNG encoding (OpenCV releases the GIL) overlaps the MS-SSIM of the same reference.
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = []
        for index, ref in enumerate(references):
            distorted, keys = [], []
            for dname in names:
                fn = _distortions.DISTORTIONS[dname]
                for level in _distortions.LEVELS:
                    distorted.append(fn(ref.image, level, _rng(seed, ref.name, dname)))
                    keys.append((dname, level))
            paths = [f"images/{ref.name}_{d}_{level}.png" for d, level in keys]
            pending.append(writer.submit(_write_pngs, tmp, [f"references/{ref.name}.png", *paths],
                                         [ref.image, *distorted]))
            mos = mos_from_quality(quality_scores(ref.image, np.stack(distorted)))
            for relative, (dname, level), score in zip(paths, keys, mos):
                rows.append((relative, f"{score:.6f}", ref.name, dname, level))
            for future in [f for f in pending if f.done()]:
                future.result()
                pending.remove(future)
            progbar.update(index + 1)
        for future in pending:
            future.result()
    return rows


def _write_build_info(tmp: str, references, names: list[str], image_size: int, max_references: int,
                      seed: int) -> None:
    """build.json: the options, references and label formula the images were made with."""
    info = {
        "format_version": FORMAT_VERSION,
        "options": {"image_size": image_size, "max_references": max_references, "seed": seed},
        "references": [
            {"name": r.name, "photo": r.photo.name, "package": r.photo.package} for r in references
        ],
        "distortions": names,
        "levels": list(_distortions.LEVELS),
        "label": (
            f"q = mean of tf.image.ssim_multiscale(max_val=255, filter_size={filter_size(image_size)}) "
            f"over the YCbCr stack (Y x {LUMA_REPEATS}, Cb, Cr); mos = 1 + 4 * q ** {GAMMA:g}"
        ),
    }
    with open(os.path.join(tmp, "build.json"), "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2, sort_keys=True)
        handle.write("\n")


def build(
    target: str,
    *,
    photos: list[_photos.Photo] | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    max_references: int = DEFAULT_MAX_REFERENCES,
    seed: int = DEFAULT_SEED,
) -> str:
    """Build the dataset into `target` atomically and return `target`.

    If `target` already exists (another process finished first), it is left as is.
    """
    started = time.monotonic()
    photos = _photos.bundled_photos() if photos is None else photos
    references = _photos.select_references(image_size, max_references, photos)
    if not references:
        raise DatasetError(
            f"demo: no bundled photograph is at least {image_size} pixels on its short side; use a smaller image_size"
        )
    parent, name = os.path.split(os.path.abspath(target))
    try:
        os.makedirs(parent, exist_ok=True)
        _remove_stale_builds(parent, name)
        tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=parent)
    except OSError as exc:
        raise DatasetError(f"demo: cannot create the cache folder {parent}: {exc}") from exc
    names = list(_distortions.DISTORTIONS)
    n_images = len(references) * len(names) * len(_distortions.LEVELS)
    logger.info(
        "building the demo dataset (%d references x %d distortions x %d levels = %d images) in %s",
        len(references), len(names), len(_distortions.LEVELS), n_images, target,
    )
    try:
        os.makedirs(os.path.join(tmp, "references"))
        os.makedirs(os.path.join(tmp, "images"))
        rows = _render_images(tmp, references, names, seed)
        with open(os.path.join(tmp, LABELS_FILE), "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(LABEL_COLUMNS)
            writer.writerows(rows)
        _write_build_info(tmp, references, names, image_size, max_references, seed)
        try:
            os.rename(tmp, target)
        except OSError:
            if not os.path.isfile(os.path.join(target, LABELS_FILE)):
                raise
            logger.info("another process finished building %s first; using its copy", target)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            logger.info("built %d images in %.1f s", len(rows), time.monotonic() - started)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise DatasetError(f"demo: cannot build {target}: {exc}") from exc
        raise
    return target
