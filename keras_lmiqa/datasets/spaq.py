"""SPAQ (Fang et al., 2020): 11,125 smartphone photos, MOS in [0, 100] (higher = better).

Labels: `Annotations/MOS and Image attribute scores.xlsx` (columns `Image name`, `MOS`,
...); images: `TestImage/`. The photos are ~4000 px wide, so on first load each one is
resized once (cv2 INTER_AREA) so that its shorter side is `short_side` (default 512;
smaller images are kept at their size) and stored losslessly as PNG in `cache_dir`
(default `ROOT/.lmiqa_cache/short<short_side>`). Files are written atomically (temporary
file, then `os.replace`), so an interrupted build never leaves a partial image; later
loads reuse cached files. Records point at the cached files. Split unit: the image.
"""

from __future__ import annotations

import logging
import os
import tempfile

import cv2
import numpy as np

from keras_lmiqa.datasets.records import (
    make_dataset,
    parse_score,
    read_xlsx_table,
    require_dir,
    require_file,
    require_images_exist,
    resolve_inside,
    take_options,
)
from keras_lmiqa.errors import DatasetError

NAME = "spaq"
LABELS = os.path.join("Annotations", "MOS and Image attribute scores.xlsx")
LAYOUT = "ROOT/Annotations/MOS and Image attribute scores.xlsx (Image name, MOS, ...) + ROOT/TestImage/"
log = logging.getLogger(__name__)


def _resize_into(source: str, target: str, short_side: int) -> None:
    image = cv2.imdecode(np.fromfile(source, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{NAME}: cannot decode image {source}")
    height, width = image.shape[:2]
    scale = short_side / min(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise DatasetError(f"{NAME}: cannot encode the resized copy of {source}")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".partial-", suffix=".png")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(encoded.tobytes())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def build_cache(pairs: list[tuple[str, str]], short_side: int) -> int:
    """Resize every `(source, cached)` pair whose cached file is absent; returns the count."""
    todo = [(s, t) for s, t in pairs if not os.path.isfile(t)]
    if not todo:
        return 0
    import keras  # heavy: imported only when there is work to do

    log.info("%s: resizing %d images (shorter side %d px) into %s", NAME, len(todo), short_side,
             os.path.dirname(todo[0][1]))
    bar = keras.utils.Progbar(len(todo), unit_name="image")
    for done, (source, target) in enumerate(todo, start=1):
        _resize_into(source, target, short_side)
        bar.update(done)
    return len(todo)


def read(root: str, **options):
    opts = take_options(NAME, options, {"cache_dir": None, "short_side": 512})
    short_side = opts["short_side"]
    if isinstance(short_side, bool) or not isinstance(short_side, int) or short_side < 1:
        raise DatasetError(f"{NAME}: short_side must be a positive integer, got {short_side!r}")
    images = require_dir(root, "TestImage", NAME, LAYOUT)
    labels = require_file(root, LABELS, NAME, LAYOUT)
    cache = opts["cache_dir"] or os.path.join(root, ".lmiqa_cache", f"short{short_side}")
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"{NAME}: cannot create the resize cache {cache}: {error}") from error
    pairs, entries = [], []
    for line, row in read_xlsx_table(labels, NAME, ("Image name", "MOS")):
        name = str(row["Image name"] or "").strip()
        if not name:
            raise DatasetError(f"{NAME}: {labels} row {line} has no image name")
        source = resolve_inside(images, name, NAME)
        cached = resolve_inside(cache, os.path.splitext(name)[0] + ".png", NAME)
        pairs.append((source, cached))
        entries.append((cached, parse_score(row["MOS"], NAME, labels, line, name, "row"), name, None))
    require_images_exist(NAME, [s for s, t in pairs if not os.path.isfile(t)])
    build_cache(pairs, short_side)
    return make_dataset(NAME, root, entries, higher_better=True, synthetic=False, kind="MOS")
