"""Small JPEG thumbnails as data: URIs, for the report page.

THUMBNAIL_SIDE px on the long side at THUMBNAIL_QUALITY: about 4-6 KB a photo (5-8 KB as
base64), so a page of 5,000 photos stays under 50 MB. Pillow decodes a JPEG straight
at a reduced scale (`draft`), so a thumbnail costs a fraction of a full decode; EXIF
orientation is applied as the scorer applies it, so the crop windows land where they were cut.
"""

from __future__ import annotations

import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, ImageOps

THUMBNAIL_SIDE = 160
THUMBNAIL_QUALITY = 72
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class Thumbnail:
    uri: str | None  # data:image/jpeg;base64,... or None when the file cannot be read
    width: int  # the photo's displayed size (after EXIF orientation), the crop windows' frame
    height: int
    thumb_width: int
    thumb_height: int
    problem: str | None = None


def thumbnail(path: str, side: int = THUMBNAIL_SIDE, quality: int = THUMBNAIL_QUALITY) -> Thumbnail:
    """The thumbnail of one image file; a file Pillow cannot read gives `uri=None` and its reason."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _TRANSPOSED:
                width, height = height, width
            image.draft("RGB", (side, side))  # JPEG: decode at 1/2..1/8 scale, still at least `side`
            small = ImageOps.exif_transpose(image).convert("RGB")
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=quality, optimize=True)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return Thumbnail(None, 0, 0, 0, 0, f"no preview ({type(error).__name__})")
    uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return Thumbnail(uri, width, height, small.width, small.height)


def thumbnails(paths: list[str], workers: int | None = None) -> list[Thumbnail]:
    """Thumbnails of `paths`, in order; Pillow releases the GIL while decoding, so threads scale."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmiqa-thumbnail") as pool:
        return list(pool.map(thumbnail, paths))
