"""Fixtures for the photo pages: made photos, a tiny untrained model and its export, and
headless Chromium driven by Selenium.

The browser is Debian's `chromium` with `chromium-driver` (`make browser` installs them
as root; `.ci/run` does on CI). Without them the browser tests skip, naming the install
command; on CI (`CI` set) a missing browser fails them instead, so CI never passes
without running them.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "reliability"))

from untrained import write_untrained_run  # noqa: E402

INSTALL_HINT = ("install Debian's chromium and chromium-driver (as root: `make browser`, or `apt-get install "
                "chromium chromium-driver`) and selenium (`pip install -e '.[test]'`)")


def write_photos(folder: str) -> list[str]:
    """Six photographs (skimage) blurred or noised by different amounts, as JPEG and PNG
    files of different sizes, and one file that is not an image."""
    import cv2
    import skimage.data

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    paths = []
    for index in range(6):
        photo = cv2.resize(sources[index % 3], (120 + 16 * index, 96), interpolation=cv2.INTER_AREA)
        if index % 2:
            photo = cv2.GaussianBlur(photo, (0, 0), 0.8 * index)
        else:
            photo = np.clip(photo + rng.normal(0, 6.0 * index, photo.shape), 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"photo{index}.{'jpg' if index % 2 else 'png'}")
        cv2.imwrite(path, photo[..., ::-1])
        paths.append(path)
    broken = os.path.join(folder, "broken.jpg")
    with open(broken, "wb") as handle:
        handle.write(b"these bytes are not a JPEG")
    return paths + [broken]


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> str:
    folder = str(tmp_path_factory.mktemp("ui_photos"))
    write_photos(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """model.keras of an untrained `tiny` branch (random weights: distinct scores, no training)."""
    return write_untrained_run(str(tmp_path_factory.mktemp("ui_run")), seed=3)


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory) -> str:
    """Export base folder of `tiny_model` (version 1)."""
    from keras_lmiqa.export import export_model

    base = str(tmp_path_factory.mktemp("ui_exports") / "lmiqa")
    export_model(tiny_model, base)
    return base


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for names in (("chromium", "chromium-browser"), ("chromedriver",)):
        if not any(shutil.which(name) for name in names):
            return f"{names[0]} is not on PATH"
    return None


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (a Selenium WebDriver), one per test process."""
    missing = _browser_missing()
    if missing:
        message = f"no headless browser for the page tests: {missing}; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900", "--no-first-run",
                 "--disable-extensions", "--disable-background-networking"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
