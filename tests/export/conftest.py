"""Fixtures for the export tests: mixed-format images and one export of the trained run."""

from __future__ import annotations

import os

import numpy as np
import pytest


def write_test_images(folder: str) -> list[str]:
    """Photos of different sizes as PNG, JPEG, BMP, GIF, grayscale and RGBA files."""
    import cv2
    import skimage.data
    from PIL import Image

    astronaut, coffee, chelsea = skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()
    camera = skimage.data.camera()
    specs = [
        ("rgb.png", cv2.resize(astronaut, (150, 110), interpolation=cv2.INTER_AREA), "PNG"),
        ("rgb.jpg", cv2.resize(coffee, (97, 131), interpolation=cv2.INTER_AREA), "JPEG"),
        ("rgb.bmp", cv2.resize(chelsea, (80, 60), interpolation=cv2.INTER_AREA), "BMP"),
        ("gray.png", cv2.resize(camera, (120, 90), interpolation=cv2.INTER_AREA), "PNG"),
        ("gray.jpg", cv2.resize(camera, (64, 200), interpolation=cv2.INTER_AREA), "JPEG"),
        ("rgba.png", np.dstack([cv2.resize(coffee, (70, 100), interpolation=cv2.INTER_AREA),
                                np.full((100, 70), 200, np.uint8)]), "PNG"),
        ("small.png", cv2.resize(chelsea, (24, 20), interpolation=cv2.INTER_AREA), "PNG"),
        ("rgb.gif", cv2.resize(astronaut, (90, 90), interpolation=cv2.INTER_AREA), "GIF"),
    ]
    paths = []
    for name, pixels, kind in specs:
        path = os.path.join(folder, name)
        Image.fromarray(pixels).save(path, format=kind, **({"quality": 90} if kind == "JPEG" else {}))
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def image_files(tmp_path_factory) -> list[str]:
    return write_test_images(str(tmp_path_factory.mktemp("export_images")))


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory) -> tuple[str, str]:
    """(export base folder, version folder) of the trained run, exported once per session."""
    from keras_lmiqa.export import export_model

    base = str(tmp_path_factory.mktemp("exports") / "lmiqa")
    return base, export_model(os.path.join(trained_run, "model.keras"), base)


@pytest.fixture(scope="session")
def reference(trained_run):
    """(branch model, TrainConfig, ScoreScale) of the trained run, for predict_quality."""
    from keras_lmiqa.loading import load_branch, read_run_record

    config, scale, _ = read_run_record(os.path.join(trained_run, "config.json"))
    return load_branch(os.path.join(trained_run, "model.keras")), config, scale
