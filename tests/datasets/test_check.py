"""`datasets.check` summaries and the `lmiqa datasets` subcommand."""

from __future__ import annotations

import argparse
import os

import pytest

from keras_lmiqa import datasets
from keras_lmiqa.cli import datasets_cmd
from keras_lmiqa.datasets.check import check, format_summary
from keras_lmiqa.errors import ConfigError, DatasetError


def parse(argv):
    parser = argparse.ArgumentParser(prog="lmiqa")
    datasets_cmd.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_check_clean_dataset(koniq_sets):
    summary = check(datasets.load("koniq10k", koniq_sets))
    assert summary["name"] == "koniq10k" and summary["root"] == os.path.abspath(koniq_sets)
    assert summary["count"] == 4 and summary["groups"] == 4 and not summary["synthetic"]
    assert summary["score"] == {"low": 1.5, "high": 3.9, "kind": "MOS", "higher_better": True}
    assert summary["official_split"] == {"train": 2, "val": 1, "test": 1, "none": 0}
    assert summary["missing"] == [] and summary["unreadable"] == []
    text = format_summary(summary)
    assert "images:   4" in text and "MOS 1.5 .. 3.9 (higher = better)" in text
    assert "official split: train 2, val 1, test 1" in text and text.endswith("status:   OK")


def test_check_finds_unreadable_and_missing(live_root):
    data = datasets.load("live", live_root)
    with open(data[0].path, "wb") as handle:
        handle.write(b"BM garbage")
    open(data[1].path, "wb").close()  # empty file
    os.remove(data[2].path)
    summary = check(data)
    assert summary["unreadable"] == [data[0].path, data[1].path]
    assert summary["missing"] == [data[2].path]
    assert summary["groups"] == 3 and summary["official_split"] is None
    text = format_summary(summary)
    assert "DMOS 11 .. 61.5 (lower = better)" in text and "split by reference" in text
    assert "official split: none" in text and "unreadable: 2" in text and "missing: 1" in text
    assert data[2].path in text and text.endswith("PROBLEMS FOUND")


def test_check_uses_the_training_decoder_and_its_pixel_limit(live_root):
    data = datasets.load("live", live_root)
    summary = check(data, max_pixels=10)  # every test image decodes, but is above 10 pixels
    assert summary["unreadable"] == [r.path for r in data]
    assert all("pixel" in reason for reason in summary["reasons"].values())
    assert f"{data[0].path}: {summary['reasons'][data[0].path]}" in format_summary(summary)
    assert check(data)["unreadable"] == []


def test_format_summary_truncates_long_lists(kadid_root):
    summary = check(datasets.load("kadid10k", kadid_root))
    summary["unreadable"] = [f"/x/{i}.png" for i in range(15)]
    text = format_summary(summary, limit=3)
    assert "/x/2.png" in text and "/x/3.png" not in text and "... and 12 more" in text


@pytest.mark.parametrize("text, expected", [
    ("resolution=1024x768", ("resolution", "1024x768")),
    ("realigned=False", ("realigned", False)),
    ("higher_better=true", ("higher_better", True)),
    ("short_side=256", ("short_side", 256)),
    ("group_column=none", ("group_column", None)),
    ("path_column= file name", ("path_column", " file name")),
    ("x=0.5", ("x", 0.5)),
])
def test_parse_option(text, expected):
    assert datasets_cmd.parse_option(text) == expected


def test_parse_option_rejects_missing_equals():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        datasets_cmd.parse_option("realigned")


def test_cli_list(capsys):
    args = parse(["datasets", "list"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for name in ("kadid10k", "tid2013", "live", "csiq", "livec", "koniq10k", "spaq", "livefb", "biq2021", "csv"):
        assert any(line.startswith(name + " ") and datasets.layout(name) in line for line in out.splitlines())


def test_cli_check_ok_with_options(koniq_root, capsys):
    args = parse(["datasets", "check", "koniq10k", "--data-root", koniq_root,
                  "--option", "resolution=1024x768", "--option", "score=MOS_zscore"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "dataset:  koniq10k" in out and "MOS_zscore -1.9 .. 0.8" in out and "status:   OK" in out


def test_cli_check_reports_unreadable(tid_root, capsys):
    with open(os.path.join(tid_root, "distorted_images", "i25_01_1.bmp"), "wb") as handle:
        handle.write(b"nope")
    args = parse(["datasets", "check", "tid2013", "--data-root", tid_root])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "unreadable: 1" in out and "i25_01_1.bmp" in out


def test_cli_check_errors_are_dataset_errors(tmp_path):
    args = parse(["datasets", "check", "kadid10k", "--data-root", str(tmp_path)])
    with pytest.raises(DatasetError, match="kadid10k: missing folder"):
        args.func(args)
    args = parse(["datasets", "check", "kadid10k", "--data-root", str(tmp_path), "--option", "foo=1"])
    with pytest.raises(DatasetError, match="unknown option 'foo'"):
        args.func(args)
    args = parse(["datasets", "check", "kadid10k"])
    with pytest.raises(DatasetError, match="--data-root is required"):
        args.func(args)


def test_cli_requires_an_action():
    with pytest.raises(SystemExit):
        parse(["datasets"])
