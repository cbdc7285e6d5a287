"""What the report page is built from, without a browser: thumbnails in the photo's
displayed orientation, windows without the padding, errors, safe embedding, flags."""

from __future__ import annotations

import argparse
import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from keras_lmiqa.cli.score_cmd import _check_arguments, register
from keras_lmiqa.errors import ConfigError
from keras_lmiqa.ui import bundle
from keras_lmiqa.ui.report import page_data, write_report
from keras_lmiqa.ui.thumbnails import THUMBNAIL_SIDE, thumbnail


def _jpeg(path, width: int, height: int, orientation: int | None = None) -> str:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (250, 40, 40)  # left half red: where it lands tells the orientation
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(path, format="JPEG", quality=95, exif=exif.tobytes())
    return str(path)


def _pixels(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def test_a_thumbnail_is_small_and_in_the_photo_s_displayed_orientation(tmp_path):
    upright = thumbnail(_jpeg(tmp_path / "upright.jpg", 640, 400))
    assert (upright.width, upright.height) == (640, 400)
    assert (upright.thumb_width, upright.thumb_height) == (THUMBNAIL_SIDE, 100)
    assert _pixels(upright.uri)[50, 10, 0] > 200  # red on the left
    # EXIF orientation 6 (rotate 90 degrees clockwise to display), as the scorer decodes it.
    turned = thumbnail(_jpeg(tmp_path / "turned.jpg", 640, 400, orientation=6))
    assert (turned.width, turned.height) == (400, 640)
    assert (turned.thumb_width, turned.thumb_height) == (100, THUMBNAIL_SIDE)
    shown = _pixels(turned.uri)
    assert shown[10, 50, 0] > 200 and shown[-10, 50, 0] < 100  # the red half is now on top
    assert len(turned.uri) < 4000
    missing = thumbnail(str(tmp_path / "missing.jpg"))
    assert missing.uri is None and "no preview" in missing.problem


def test_page_data_keeps_real_windows_lists_errors_and_embeds_safely(tmp_path):
    good = _jpeg(tmp_path / "a<!--<script>.jpg", 64, 48)
    windows = np.array([[0, 0, 32, 32], [0, 32, 32, 64], [0, 0, 0, 0]], np.float32)  # last: padding
    rows = [{"path": good, "score": 0.25, "mos": 2.0, "error": None, "crop_windows": windows,
             "crop_scores": np.array([0.1, 0.4, 0.0]), "crop_weights": np.array([0.7, 0.3, 0.0])},
            {"path": str(tmp_path / "bad.jpg"), "score": float("nan"), "mos": float("nan"),
             "error": "not an image </script><b>x</b>"}]
    data = page_data(rows, str(tmp_path))
    (photo,) = data["photos"]
    assert photo["c"] == [[0.0, 0.0, 32.0, 32.0, 0.1, 0.7], [0.0, 32.0, 32.0, 64.0, 0.4, 0.3]]
    assert (photo["w"], photo["h"], photo["s"]) == (64, 48, 0.25)
    assert photo["o"] == "a%3C%21--%3Cscript%3E.jpg"  # the photo beside the page, URL-quoted
    assert data["errors"] == [{"p": str(tmp_path / "bad.jpg"), "e": "not an image </script><b>x</b>"}]
    page = tmp_path / "page.html"
    write_report(rows, str(page), source="a test")
    text = page.read_text(encoding="utf-8")
    embedded = re.search(r'<script id="lmiqa-data" type="application/json">(.*?)</script>', text, re.S).group(1)
    embedded = json.loads(embedded)  # neither the file name nor the message closed the block
    assert embedded["photos"][0]["p"] == good and embedded["errors"] == data["errors"]
    assert text.count("</script>") == 2  # the data block and the inlined bundle, nothing else closed early
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # no network, no CDN
    assert bundle.inline_policy() in text.replace("&#x27;", "'")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []  # written atomically


def test_html_needs_its_own_file(tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    same = str(tmp_path / "out")
    args = parser.parse_args(["score", "x.jpg", "--json", same, "--html", same])
    with pytest.raises(ConfigError, match=r"--json .* and --html .* are the same file"):
        _check_arguments(args)
    with pytest.raises(ConfigError, match="--html"):
        _check_arguments(parser.parse_args(["score", "x.jpg", "--html", str(tmp_path / "missing" / "p.html")]))
