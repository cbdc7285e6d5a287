"""Inputs and conditions that must not end in a raw traceback: a full disk under stdout or a
saved file, and a dataset option of the wrong kind. Each is one line and exit code 2."""

from __future__ import annotations

import errno
import sys

import pytest


def _lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_the_table_to_a_full_disk_is_one_line(untrained_model, tmp_path, monkeypatch, capsys):
    from crafted import photo, png

    from keras_lmiqa.cli import main

    (tmp_path / "a.png").write_bytes(png(photo(40, 50)))
    full = open("/dev/full", "w")  # every write fails with ENOSPC, as `> out.txt` on a full disk
    monkeypatch.setattr(sys, "stdout", full)
    assert main(["score", "--model", untrained_model, str(tmp_path / "a.png")]) == 2
    monkeypatch.undo()
    full.close()
    assert _lines(capsys) == ["lmiqa score: error: cannot write standard output: No space left on device"]


def test_a_full_disk_while_saving_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    from keras_lmiqa import artifacts
    from keras_lmiqa.cli import main, train_cmd

    model = tmp_path / "model.keras"
    model.write_text("the previous model")

    def save_on_a_full_disk(args):  # what model.save meets when the disk fills: a write() error, no file name
        with artifacts.atomic_path(str(model)) as temporary:
            with open(temporary, "w") as handle:
                handle.write("half a model")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train_cmd, "run", save_on_a_full_disk)
    assert main(["train", "--dataset", "demo"]) == 2
    assert _lines(capsys) == [f"lmiqa train: error: cannot write {model}: No space left on device"]
    assert model.read_text() == "the previous model" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]


@pytest.mark.parametrize("option, message", [
    ("image_root=[1]", "csv: option image_root expects text, a number or true/false, got [1]"),
    ("higher_better=maybe", "csv: option higher_better expects true or false, got 'maybe'"),
    ("group_column={a: 1}", "csv: option group_column expects text, a number or true/false, got {'a': 1}"),
])
def test_a_dataset_option_of_the_wrong_kind_is_one_line(toy_dataset, tmp_path, option, message, capsys):
    from keras_lmiqa.cli import main

    assert main(["train", "--dataset", "csv", "--data-root", toy_dataset, "--dataset-option", option,
                 "--output-dir", str(tmp_path / "run")]) == 2
    assert _lines(capsys) == [f"lmiqa train: error: {message}"]
