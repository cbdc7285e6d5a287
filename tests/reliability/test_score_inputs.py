"""`lmiqa score` and `Scorer` against hostile files and output paths.

A FIFO named b.jpg, a symlink to /dev/zero, `--csv` into a missing folder, a folder or
/proc/version: only regular files under a size limit are read, and the output path is
checked before any work and written atomically.
"""

from __future__ import annotations

import csv
import os
import threading

import pytest

from keras_lmiqa.errors import ImageError


def _error_line(capsys, command: str = "score") -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"lmiqa {command}: error: "), captured.err
    return lines[0]


class FifoWatchdog:
    """If a reader is still blocked on `path` after `seconds`, open its write end and
    close it: the reader gets EOF instead of hanging the test run. `fired` tells
    whether that was needed (a reader was blocked: the bug)."""

    def __init__(self, path: str, seconds: float = 60.0):
        self.path, self.fired = path, False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(seconds,), daemon=True)

    def _watch(self, seconds):
        if self._done.wait(seconds):
            return
        try:  # succeeds only while a reader has the FIFO open
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self.fired = True
        except OSError:
            pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


@pytest.fixture()
def folder(tmp_path):
    """A folder holding a real PNG (a.png) and the hostile entries the tests add."""
    from crafted import photo, png

    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(png(photo(40, 50)))
    return images


@pytest.fixture(scope="module")
def scorer(untrained_export):
    from keras_lmiqa.scorer import load_scorer

    return load_scorer(untrained_export)


def _make_special_file(path: str, kind: str) -> str:
    """Makes a FIFO or a link to /dev/zero at `path`; returns how the refusal names it."""
    if kind == "fifo":
        os.mkfifo(path)
        return "a FIFO"
    os.symlink("/dev/zero", path)
    return "a character device"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_scorer_refuses_special_files_without_reading(scorer, folder, kind):
    path = str(folder / "b.jpg")
    expected = _make_special_file(path, kind)
    with FifoWatchdog(path) as watchdog:
        with pytest.raises(ImageError, match=f"cannot read image {path}: {expected}, not a regular file"):
            scorer.score([str(folder / "a.png"), path])
    assert not watchdog.fired, "the scorer blocked reading the FIFO"


def test_scorer_refuses_a_file_above_the_size_limit(untrained_export, folder):
    from keras_lmiqa.scorer import load_scorer

    size = os.path.getsize(folder / "a.png")
    exact = load_scorer(untrained_export, max_file_bytes=size)
    big = folder / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(size))
    with pytest.raises(ImageError, match=f"cannot read image {big}: {size + 4} bytes, above the {size}-byte limit"):
        exact.score([str(big)])
    assert exact.score([str(folder / "a.png")]).shape == (1,)  # at the limit: read


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_cli_refuses_special_files_in_a_folder(untrained_export, folder, kind, capsys, tmp_path):
    from keras_lmiqa.cli import main

    path = str(folder / "b.jpg")
    expected = _make_special_file(path, kind)
    with FifoWatchdog(path) as watchdog:
        assert main(["score", "--model", untrained_export, str(folder)]) == 2
        assert f"cannot read image {path}: {expected}, not a regular file" in _error_line(capsys)
        assert main(["score", "--model", untrained_export, path]) == 2  # named directly, too
        assert f"{expected}, not a regular file" in _error_line(capsys)

        # --skip-errors: the good image is scored, the special file gets its reason.
        table = tmp_path / "scores.csv"
        assert main(["score", "--model", untrained_export, str(folder), "--skip-errors", "--csv", str(table)]) == 1
        rows = list(csv.DictReader(table.open()))
        assert [row["path"] for row in rows] == [str(folder / "a.png"), path]
        assert 0.0 <= float(rows[0]["score"]) <= 1.0 and rows[0]["error"] == ""
        assert rows[1]["score"] == "" and f"{expected}, not a regular file" in rows[1]["error"]
    assert not watchdog.fired, "lmiqa score blocked reading the FIFO"


def test_cli_size_limit(untrained_export, folder, capsys):
    from keras_lmiqa.cli import main

    big = folder / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(2 * 2 ** 20))
    assert main(["score", "--model", untrained_export, str(big), "--max-image-mb", "1"]) == 2
    assert f"cannot read image {big}: {2 * 2 ** 20 + 4} bytes, above the 1048576-byte limit" in _error_line(capsys)


@pytest.mark.parametrize("target, message", [
    ("{tmp}/missing/scores.csv", "--csv {tmp}/missing/scores.csv: folder {tmp}/missing does not exist"),
    ("{tmp}", "--csv {tmp} is a folder"),
    ("/proc/version", "--csv /proc/version: cannot create files in /proc"),
    ("/dev/null", "--csv /dev/null is a character device, not a regular file"),
])
def test_unwritable_csv_fails_before_scoring(folder, tmp_path, target, message, capsys):
    from keras_lmiqa.cli import main

    names = {"tmp": str(tmp_path)}
    # The model path does not exist: the output check comes first, before any model
    # loads or image is read, so nothing is scored and then lost.
    assert main(["score", "--model", str(tmp_path / "no-model"), str(folder), "--csv", target.format(**names)]) == 2
    assert message.format(**names) in _error_line(capsys)
    assert main(["score", "--model", str(tmp_path / "no-model"), str(folder), "--json", target.format(**names)]) == 2
    assert message.replace("--csv", "--json").format(**names) in _error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["images"]


def test_results_are_written_atomically(untrained_export, folder, tmp_path, capsys):
    from keras_lmiqa.cli import main

    table, listing = tmp_path / "out" / "scores.csv", tmp_path / "out" / "scores.json"
    table.parent.mkdir()
    table.write_text("previous results\n")
    link = tmp_path / "link.csv"
    link.symlink_to(table)
    (folder / "bad.png").write_bytes(b"\x89PNG not really")
    # A failed run leaves the previous results as they were, and no temporary file.
    assert main(["score", "--model", untrained_export, str(folder), "--csv", str(link)]) == 2
    capsys.readouterr()
    assert table.read_text() == "previous results\n" and os.listdir(table.parent) == ["scores.csv"]
    # A run that completes replaces them in one rename, through the symlink.
    assert main(["score", "--model", untrained_export, str(folder), "--skip-errors", "--csv", str(link),
                 "--json", str(listing)]) == 1
    rows = list(csv.DictReader(table.open()))
    assert [os.path.basename(row["path"]) for row in rows] == ["a.png", "bad.png"]
    assert rows[0]["error"] == "" and rows[1]["error"]
    assert link.is_symlink() and sorted(os.listdir(table.parent)) == ["scores.csv", "scores.json"]


def test_the_serving_clients_read_only_regular_files_under_the_limit(tmp_path):
    """The gRPC/REST clients read image paths lazily through `serving.images.read_bytes`:
    a FIFO, /dev/zero and an oversized file are refused without reading."""
    from keras_lmiqa.serving.images import read_bytes

    fifo = tmp_path / "b.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(4096))
    with FifoWatchdog(str(fifo), seconds=20) as watchdog:
        with pytest.raises(ImageError, match=r"b\.jpg: a FIFO, not a regular file"):
            read_bytes(str(fifo))
    assert not watchdog.fired
    with pytest.raises(ImageError, match=r"zero\.png: .*not a regular file"):
        read_bytes(str(zero))
    with pytest.raises(ImageError, match=r"big\.png: .*4100 bytes.*1000"):
        read_bytes(str(big), max_bytes=1000)
    assert read_bytes(str(big)) == big.read_bytes()


def test_a_file_name_that_is_not_utf8_is_written_to_csv_and_json(untrained_model, folder, tmp_path, capsys):
    import json

    import cv2
    from crafted import photo

    from keras_lmiqa.cli import main

    name = os.fsdecode(b"bad\xff\xfename.bmp")  # "bad\udcff\udcfename.bmp": the bytes Python cannot decode
    _, encoded = cv2.imencode(".bmp", photo(40, 50))
    (folder / name).write_bytes(encoded.tobytes())
    table, listing = tmp_path / "scores.csv", tmp_path / "scores.json"
    assert main(["score", "--model", untrained_model, str(folder), "--csv", str(table), "--json", str(listing)]) == 0
    assert b"/bad\xff\xfename.bmp," in table.read_bytes()  # the name's own bytes
    with open(table, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        rows = list(csv.DictReader(handle))
    assert [os.path.basename(row["path"]) for row in rows] == ["a.png", name]
    assert os.path.isfile(rows[1]["path"]) and 0.0 <= float(rows[1]["score"]) <= 1.0 and rows[1]["error"] == ""
    listed = json.loads(listing.read_text(encoding="ascii"))
    assert listed[1]["path"] == rows[1]["path"] and listed[1]["score"] == pytest.approx(float(rows[1]["score"]),
                                                                                         abs=1e-4)
