"""`on_bad_image`: "error" stops training naming the file; "skip" drops and reports."""

from __future__ import annotations

import json
import logging
import os

import cv2
import pytest
import skimage.data

SETTINGS = ["--backbone", "tiny", "--weights", "none", "--crop-size", "32", "--crops", "3", "--positives", "1",
            "--batch-size", "4", "--epochs", "1", "--grid-size", "2", "--steps-per-epoch", "2",
            "--set", "head_units=16", "--set", "embedding_dim=8", "--set", "checkpoint_every=0",
            "--set", "val_fraction=0.25", "--set", "test_fraction=0.34", "--dataset-option", "group_column=group"]
BAD = {"empty.png": b"", "notes.jpg": b"a text file named like a photo", "cut.png": None}


def _dataset(folder, bad_per_group: bool) -> tuple[str, dict]:
    """16 good photos in 4 groups, plus bad files (in every group, or one each in groups 0-2)."""
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    rows, bad_paths = ["path,mos,group"], {}
    for ref, photo in enumerate(photos):
        image = cv2.resize(photo, (64, 48), interpolation=cv2.INTER_AREA)
        for level in range(4):
            name = f"ref{ref}_{level}.png"
            cv2.imwrite(os.path.join(folder, name), cv2.GaussianBlur(image, (0, 0), 0.1 + level)[..., ::-1])
            rows.append(f"{name},{5 - level},ref{ref}")
    full = cv2.imencode(".png", photos[0][:40, :40])[1].tobytes()
    for index, (name, contents) in enumerate(BAD.items()):
        for ref in (range(4) if bad_per_group else [index]):
            stored = f"g{ref}_{name}"
            with open(os.path.join(folder, stored), "wb") as handle:
                handle.write(full[:120] if contents is None else contents)
            rows.append(f"{stored},3,ref{ref}")
            bad_paths[os.path.join(folder, stored)] = name
    with open(os.path.join(folder, "labels.csv"), "w") as handle:
        handle.write("\n".join(rows) + "\n")
    return os.path.join(folder, "labels.csv"), bad_paths


def test_skip_drops_and_reports_each_bad_image(tmp_path, caplog):
    from keras_lmiqa.cli.train_cmd import add_arguments, resolve_config
    from keras_lmiqa.training import train

    data = tmp_path / "data"
    data.mkdir()
    labels, bad = _dataset(str(data), bad_per_group=False)
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--dataset", "csv", "--data-root", labels, "--output-dir", str(tmp_path / "run"),
                              "--on-bad-image", "skip", *SETTINGS])
    config = resolve_config(args)
    assert config.on_bad_image == "skip"
    with caplog.at_level(logging.WARNING, logger="keras_lmiqa.training"):
        result = train(config)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    skipped = {entry["path"]: entry["reason"] for entry in metrics["skipped"]}
    assert sorted(skipped) == sorted(bad)
    by_name = {bad[path]: reason for path, reason in skipped.items()}
    assert by_name["empty.png"] == "image is empty (0 bytes)"
    assert by_name["notes.jpg"] == "not a JPEG, PNG, GIF or BMP image (unknown leading bytes)"
    assert "PNG" in by_name["cut.png"]  # the decoder's own words about the truncated file
    assert sum(metrics["images"].values()) == 16  # the good ones only: nothing substituted
    assert result.metrics["test"]["n"] == metrics["images"]["test"] > 0
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping image")]
    assert sorted(logged) == sorted(f"skipping image {path}: {reason}" for path, reason in skipped.items())
    predictions = (tmp_path / "run" / "test_predictions.csv").read_text()
    assert not any(os.path.basename(path) in predictions for path in bad)


def test_error_stops_training_naming_the_file(tmp_path, capsys):
    from keras_lmiqa.cli import main

    data = tmp_path / "data"
    data.mkdir()
    labels, bad = _dataset(str(data), bad_per_group=True)  # whatever the split, train holds bad files
    code = main(["train", "--dataset", "csv", "--data-root", labels, "--output-dir", str(tmp_path / "run"),
                 *SETTINGS])  # on_bad_image defaults to "error"
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lmiqa")]
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("lmiqa train: error: cannot use image ")
    named = [path for path in bad if f"cannot use image {path}: " in line]
    assert len(named) == 1, line
    reason = line.split(f"{named[0]}: ", 1)[1]
    assert reason and "Graph execution" not in reason and "{{" not in reason
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("value", ["ignore", "Skip"])
def test_on_bad_image_values_are_checked(value, capsys):
    from keras_lmiqa.cli import main

    assert main(["train", "--dataset", "csv", "--data-root", "x.csv", "--on-bad-image", value,
                 "--print-config"]) == 2
    assert "on_bad_image must be error or skip" in capsys.readouterr().err
