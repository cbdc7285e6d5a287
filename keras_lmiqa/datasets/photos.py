"""The real photographs that installed Python packages ship as files.

Used as pristine references by the built-in `demo` dataset, so it needs no download.
Nothing is fetched: only files already inside the installed packages are read, and the
packages are located with `importlib.util.find_spec` (not imported).

Sources, in this order:

* scikit-image `skimage/data/`: the photographs in `SKIMAGE_PHOTOS`. Left out:
  synthetic drawings (`logo`, `horse`, `chessboard_*`, `phantom`, `color` (a colour
  wheel)), `clock_motion` (a photograph that is already motion-blurred, so a degraded
  reference), `motorcycle_right` (the other view of the `motorcycle_left` stereo pair: a
  near-duplicate reference would leak content across the reference-grouped split),
  and non-image files (`lfw_subset.npy` faces are 25x25 pixels).
* matplotlib `mpl-data/sample_data/grace_hopper.jpg`, when matplotlib is installed.
* scikit-learn `datasets/images/*.jpg` (`china.jpg`, `flower.jpg`), when installed.

:func:`reference_tiles` turns one photograph into fixed-size RGB tiles: photographs
whose short side is over twice the tile size are first area-downscaled to that, then cut
into a centred grid of non-overlapping tiles; nearly flat tiles are dropped. Nothing is
ever upscaled: photographs smaller than the tile size give no tile.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os

import cv2
import numpy as np

from keras_lmiqa.errors import DatasetError

# Real photographs (natural scenes, textures, microscopy, astronomy, documents) bundled
# in skimage/data, by file name.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)

# A tile whose luma has a mean absolute Laplacian below this (grey levels) is "flat".
MIN_DETAIL = 2.0


@dataclasses.dataclass(frozen=True)
class Photo:
    """One bundled photograph.

    Attributes:
        name: short unique name, e.g. `astronaut` or `grace_hopper`.
        package: the distribution that ships it (`scikit-image`, `matplotlib`, ...).
        path: absolute path of the file.
    """

    name: str
    package: str
    path: str


@dataclasses.dataclass(frozen=True)
class Tile:
    """A fixed-size RGB reference cut from a photograph.

    Attributes:
        name: `<photo>_r<row>c<col>`, unique across photographs.
        photo: the source photograph.
        image: `uint8` array of shape `(size, size, 3)`.
        detail: mean absolute Laplacian of the luma (a texture measure).
    """

    name: str
    photo: Photo
    image: np.ndarray
    detail: float


def _package_dir(module: str) -> str | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def bundled_photos() -> list[Photo]:
    """The photographs installed packages ship as files, in a fixed order."""
    photos: list[Photo] = []
    skimage_dir = _package_dir("skimage")
    if skimage_dir:
        for filename in SKIMAGE_PHOTOS:
            path = os.path.join(skimage_dir, "data", filename)
            if os.path.isfile(path):
                photos.append(Photo(os.path.splitext(filename)[0], "scikit-image", path))
    mpl_dir = _package_dir("matplotlib")
    if mpl_dir:
        path = os.path.join(mpl_dir, "mpl-data", "sample_data", "grace_hopper.jpg")
        if os.path.isfile(path):
            photos.append(Photo("grace_hopper", "matplotlib", path))
    sklearn_dir = _package_dir("sklearn")
    if sklearn_dir:
        for path in sorted(glob.glob(os.path.join(sklearn_dir, "datasets", "images", "*.jpg"))):
            photos.append(Photo(os.path.splitext(os.path.basename(path))[0], "scikit-learn", path))
    return photos


def load_rgb(path: str) -> np.ndarray:
    """Read an image file as an RGB `uint8` array; grey images become 3 equal channels.

    Decoded with Pillow (a scikit-image dependency), which, unlike OpenCV's libpng, does
    not warn on stderr about the odd ICC profiles some bundled PNGs carry. Alpha is
    dropped; 16-bit images keep their 8 most significant bits.
    """
    from PIL import Image

    try:
        with Image.open(path) as opened:
            opened.load()
            if opened.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.asarray(opened, dtype=np.uint32)
                image = (grey >> 8 if grey.max() > 255 else grey).astype(np.uint8)
            else:
                image = np.asarray(opened.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot decode bundled photograph {path}: {exc}") from exc
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image)


def detail(image: np.ndarray) -> float:
    """Mean absolute Laplacian of the luma of an RGB `uint8` image, in grey levels."""
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(luma, cv2.CV_32F, ksize=1)).mean())


def reference_tiles(photo: Photo, size: int) -> list[Tile]:
    """Cut `photo` into non-overlapping `size` x `size` RGB tiles.

    Photographs with a short side over `2 * size` are area-downscaled so the short side
    is `2 * size`; then a centred grid of `floor(H / size) x floor(W / size)` tiles is
    cut. Tiles with :func:`detail` below `MIN_DETAIL` are dropped. Returned most
    detailed first (ties by position), so taking the first `k` keeps the richest tiles.
    """
    image = load_rgb(photo.path)
    h, w = image.shape[:2]
    short = min(h, w)
    if short < size:
        return []
    if short > 2 * size:
        factor = 2 * size / short
        new_w = max(size, int(round(w * factor)))
        new_h = max(size, int(round(h * factor)))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    rows, cols = h // size, w // size
    y0, x0 = (h - rows * size) // 2, (w - cols * size) // 2
    tiles = []
    for r in range(rows):
        for c in range(cols):
            tile = np.ascontiguousarray(image[y0 + r * size : y0 + (r + 1) * size, x0 + c * size : x0 + (c + 1) * size])
            d = detail(tile)
            if d >= MIN_DETAIL:
                tiles.append(Tile(f"{photo.name}_r{r}c{c}", photo, tile, round(d, 6)))
    tiles.sort(key=lambda t: -t.detail)
    return tiles


def select_references(size: int, max_references: int, photos: list[Photo] | None = None) -> list[Tile]:
    """Up to `max_references` tiles spread over the photographs, deterministically.

    Round-robin: the most detailed tile of every photograph, then the second of every
    photograph that has one, and so on, in :func:`bundled_photos` order.
    """
    photos = bundled_photos() if photos is None else photos
    per_photo = [reference_tiles(p, size) for p in photos]
    chosen: list[Tile] = []
    depth = 0
    while len(chosen) < max_references and any(depth < len(t) for t in per_photo):
        for tiles in per_photo:
            if depth < len(tiles) and len(chosen) < max_references:
                chosen.append(tiles[depth])
        depth += 1
    return chosen
