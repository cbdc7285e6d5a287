"""Batch scoring on Apache Beam (`keras_lmiqa.beam`, `lmiqa score-batch`) on the DirectRunner:
the same rows as `lmiqa score --skip-errors` on the same files, one per input, bad files
as error rows, Beam metrics counted."""

from __future__ import annotations

import glob
import json
import os
import sys

import apache_beam as beam
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "reliability"))
from untrained import write_untrained_run  # noqa: E402

MAX_IMAGE_MB = 0.25  # both sides: files above 262 144 bytes are refused unread
GOOD_FILES = 290


def write_photos(folder: str, count: int, seed: int = 0) -> dict[str, str]:
    """`count` photos cut from scikit-image's pictures at random sizes (20-200 px a side), as
    JPEG, PNG, BMP, GIF, grey and RGBA, and the bad files: broken, empty, not an image,
    above the size limit, a header declaring too many pixels, a FIFO. Returns {name: kind}."""
    import cv2
    import skimage.data
    from PIL import Image

    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    rng = np.random.default_rng(seed)
    kinds = {}
    for index in range(count):
        photo = sources[index % len(sources)]
        height, width = (int(v) for v in rng.integers(20, 200, 2))
        top, left = int(rng.integers(0, photo.shape[0] - 200)), int(rng.integers(0, photo.shape[1] - 200))
        pixels = cv2.resize(photo[top:top + 200, left:left + 200], (width, height), interpolation=cv2.INTER_AREA)
        kind = ("jpg", "png", "bmp", "gif", "grey.png", "rgba.png", "grey.jpg")[index % 7]
        if kind.startswith("grey"):
            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        elif kind == "rgba.png":
            pixels = np.dstack([pixels, np.full(pixels.shape[:2], 180, np.uint8)])
        name = f"photo{index:03d}.{kind}"
        file_format = {"jpg": "JPEG", "png": "PNG", "bmp": "BMP", "gif": "GIF"}[kind.rsplit(".", 1)[-1]]
        Image.fromarray(pixels).save(os.path.join(folder, name), format=file_format,
                                     **({"quality": int(rng.integers(40, 95))} if file_format == "JPEG" else {}))
        kinds[name] = "good"
    good_jpeg = open(os.path.join(folder, "photo000.jpg"), "rb").read()
    bad = {
        "truncated.jpg": good_jpeg[:len(good_jpeg) // 3],
        "empty.png": b"",
        "notes.jpg": b"quality notes, not an image\n",
        "oversized.bmp": b"BM" + bytes(int(MAX_IMAGE_MB * 2 ** 20)),
        # a valid PNG header declaring 60 000 x 60 000 pixels: refused before decoding
        "huge-header.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (60000).to_bytes(4, "big") * 2 + bytes(64),
    }
    for name, contents in bad.items():
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(contents)
        kinds[name] = "bad"
    os.mkfifo(os.path.join(folder, "pipe.jpg"))  # never read: a read would block
    kinds["pipe.jpg"] = "bad"
    return kinds


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[str, dict[str, str]]:
    folder = str(tmp_path_factory.mktemp("beam_photos"))
    return folder, write_photos(folder, GOOD_FILES)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return write_untrained_run(str(tmp_path_factory.mktemp("beam_run")))


@pytest.fixture(scope="module")
def lmiqa_score_rows(photos, tiny_model, tmp_path_factory) -> dict[str, dict]:
    """`lmiqa score --skip-errors --json` on the folder: {path: row}."""
    from keras_lmiqa.cli import main

    folder, _ = photos
    out = str(tmp_path_factory.mktemp("beam_reference") / "scores.json")
    code = main(["score", "--model", tiny_model, "--skip-errors", "--max-image-mb", str(MAX_IMAGE_MB),
                 "--json", out, folder])
    assert code == 1  # some files are bad
    return {row["path"]: row for row in json.load(open(out))}


def _in_process_options():
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"])


def _counters(result) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter

    found = result.metrics().query(MetricsFilter().with_namespace("lmiqa"))["counters"]
    # RunInference adds its own (num_inferences, ...) in the handler's namespace
    return {counter.key.metric.name: counter.committed for counter in found
            if counter.key.metric.name in ("scored", "failed", "bytes_read")}


def _read_jsonl(prefix: str) -> list[dict]:
    return [json.loads(line) for shard in sorted(glob.glob(prefix + "-*.jsonl")) for line in open(shard)]


def test_score_images_gives_lmiqa_scores_rows_for_every_file_and_counts(photos, tiny_model, lmiqa_score_rows,
                                                                         tmp_path):
    from keras_lmiqa.beam import ScoreImages, WriteRows

    folder, kinds = photos
    good_jpeg = open(os.path.join(folder, "photo000.jpg"), "rb").read()
    pipeline = beam.Pipeline(options=_in_process_options())
    outputs = (pipeline
               | beam.Create([os.path.join(folder, "*.*"), ("in-memory.jpg", good_jpeg),
                              ("in-memory-bad", b"\x89PNG broken"), 7])
               | ScoreImages(model=tiny_model, max_batch_size=8, max_file_bytes=int(MAX_IMAGE_MB * 2 ** 20),
                             dead_letter=True))
    outputs["rows"] | "WriteRows" >> WriteRows(str(tmp_path / "rows"), "jsonl")
    outputs["failed"] | "WriteFailed" >> WriteRows(str(tmp_path / "failed"), "jsonl")
    result = pipeline.run()
    result.wait_until_finish()

    collected = {"rows": _read_jsonl(str(tmp_path / "rows")), "failed": _read_jsonl(str(tmp_path / "failed"))}
    rows = collected["rows"]
    by_path = {row["path"]: row for row in rows}
    assert len(rows) == len(by_path) == len(kinds) + 3  # one row per file and per (key, bytes) element
    files = {path: row for path, row in by_path.items() if path.startswith(folder)}
    assert set(files) == set(lmiqa_score_rows) == {os.path.join(folder, name) for name in kinds}
    for path, row in files.items():
        expected = lmiqa_score_rows[path]
        assert row["error"] == expected["error"], path
        if expected["error"] is None:
            assert abs(row["score"] - expected["score"]) <= 1e-6 and abs(row["mos"] - expected["mos"]) <= 1e-6, path
        else:
            assert row["score"] is None and row["mos"] is None
    bad = {os.path.join(folder, name) for name, kind in kinds.items() if kind == "bad"}
    assert {path for path, row in files.items() if row["error"]} == bad
    assert "above the 262144-byte limit; not read" in files[os.path.join(folder, "oversized.bmp")]["error"]
    assert "a FIFO, not a regular file" in files[os.path.join(folder, "pipe.jpg")]["error"]
    assert "exceeds the pixel limit" in files[os.path.join(folder, "huge-header.png")]["error"]

    # (key, bytes) elements: labelled by their key, scored as the same file is
    assert by_path["in-memory.jpg"]["score"] == files[os.path.join(folder, "photo000.jpg")]["score"]
    assert by_path["in-memory-bad"]["error"].startswith("cannot score in-memory-bad: ")
    assert "expected a file pattern or a (key, encoded image bytes) pair, got int" in by_path["7"]["error"]

    failed_rows = sorted(collected["failed"], key=lambda row: row["path"])
    assert failed_rows == sorted((row for row in rows if row["error"]), key=lambda row: row["path"])
    readable = [os.path.join(folder, name) for name in kinds if name not in ("oversized.bmp", "pipe.jpg")]
    assert _counters(result) == {"scored": GOOD_FILES + 1, "failed": len(bad) + 2,
                                 "bytes_read": sum(os.path.getsize(path) for path in readable)}


def test_score_batch_cli_writes_sharded_files_on_two_worker_processes(photos, tiny_model, lmiqa_score_rows, tmp_path,
                                                                      capsys):
    import pyarrow.parquet

    from keras_lmiqa.cli import main

    folder, kinds = photos
    names = ["photo001.png", "photo002.bmp", "photo003.gif", "photo004.grey.png", "truncated.jpg"]
    prefix = str(tmp_path / "out" / "scores")
    code = main(["score-batch", "--input", os.path.join(folder, "photo00[1-4].*"),
                 "--input", os.path.join(folder, "truncated.jpg"), "--output", prefix, "--format", "parquet",
                 "--model", tiny_model, "--num-shards", "2", "--dead-letter", str(tmp_path / "dead" / "failed"),
                 "--", "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert code == 1
    assert "scored 4, failed 1" in capsys.readouterr().err
    shards = sorted(glob.glob(prefix + "-*.parquet"))
    assert [os.path.basename(s) for s in shards] == ["scores-00000-of-00002.parquet", "scores-00001-of-00002.parquet"]
    rows = [row for shard in shards for row in pyarrow.parquet.read_table(shard).to_pylist()]
    assert sorted(row["path"] for row in rows) == sorted(os.path.join(folder, name) for name in names)
    for row in rows:
        expected = lmiqa_score_rows[row["path"]]
        assert row["error"] == expected["error"]
        if row["error"] is None:
            assert abs(row["score"] - expected["score"]) <= 1e-6
    dead = _read_jsonl(str(tmp_path / "dead" / "failed"))
    assert [row["path"] for row in dead] == [os.path.join(folder, "truncated.jpg")]


def test_score_batch_refuses_bad_flags_in_one_line_before_starting(tmp_path, capsys):
    from keras_lmiqa.cli import main

    (tmp_path / "a.jpg").write_bytes(b"x")
    cases = [
        (["--input", str(tmp_path / "none-*.jpg")], "matches no file"),
        (["--input", str(tmp_path)], "is a folder; give a pattern such as"),
        (["--input", str(tmp_path / "*.jpg"), "--pretrained", "no-such-model"], "no pretrained model named"),
        (["--input", str(tmp_path / "*.jpg"), "--model", str(tmp_path / "missing.keras")], "model not found"),
        (["--input", str(tmp_path / "*.jpg"), "--batch-size", "0"], "--batch-size must be >= 1"),
        (["--input", str(tmp_path / "*.jpg"), "--runner", "NoSuchRunner"], "--runner NoSuchRunner"),
    ]
    for flags, message in cases:
        assert main(["score-batch", "--output", str(tmp_path / "out" / "s"), *flags]) == 2, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lmiqa score-batch: error: ") and message in err[0], (flags, err)


def test_stage_model_copies_a_folder_and_a_file_through_beam_filesystems(tmp_path, monkeypatch):
    import keras_lmiqa.beam as beam_lib

    (tmp_path / "export" / "1" / "variables").mkdir(parents=True)
    (tmp_path / "export" / "1" / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "export" / "1" / "variables" / "variables.index").write_bytes(b"index")
    (tmp_path / "model.keras").write_bytes(b"zip")
    assert beam_lib.stage_model(str(tmp_path / "model.keras")) == str(tmp_path / "model.keras")  # local: as is
    monkeypatch.setattr(beam_lib, "_is_local", lambda path: False)  # treat the paths as a remote file system's
    folder = beam_lib.stage_model(str(tmp_path / "export"))
    assert open(os.path.join(folder, "1", "variables", "variables.index"), "rb").read() == b"index"
    assert open(os.path.join(folder, "1", "saved_model.pb"), "rb").read() == b"graph"
    assert open(beam_lib.stage_model(str(tmp_path / "model.keras")), "rb").read() == b"zip"
    with pytest.raises(beam_lib.ModelError, match="model not found"):
        beam_lib.stage_model(str(tmp_path / "nothing"))
