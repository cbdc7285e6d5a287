"""Serving fixtures: a fake two-version export, test photos, and running servers.

`server` is parametrised over the server implementations present: always the
development server (`local`, in-process thread), plus TF Serving (`tfserving`) when a
`tensorflow_model_server` binary is on PATH. Every server binds 127.0.0.1 and is
stopped by its fixture.
"""

from __future__ import annotations

import os

import pytest
from serving_helpers import SCALES, SERVER_KINDS, start_server


@pytest.fixture(scope="session")
def fake_export(tmp_path_factory) -> str:
    """Export base folder with versions 1 (scale 1.0) and 2 (scale 0.5) of the fake model."""
    from fake_export import write_fake_export

    base = str(tmp_path_factory.mktemp("fake_exports") / "lmiqa")
    os.makedirs(base)
    for version, scale in SCALES.items():
        write_fake_export(base, version, scale)
    return base


@pytest.fixture(scope="session")
def photo_paths(tmp_path_factory) -> list[str]:
    """Eight real photographs (skimage) of different sizes, as PNG and JPEG files."""
    import cv2
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    paths = []
    for index, photo in enumerate(photos):
        for ext, size in ((".png", (96, 72)), (".JPG", (61, 83))):
            image = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
            path = str(folder / f"photo{index}{ext}")
            cv2.imwrite(path, image[..., ::-1])
            paths.append(path)
    return sorted(paths)


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request, fake_export):
    running = start_server(request.param, fake_export)
    yield running
    running.stop()
