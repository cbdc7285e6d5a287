"""The KADID-style distortions of the demo dataset, on real bundled photographs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keras_lmiqa.datasets import distortions, photos

NAMES = list(distortions.DISTORTIONS)
RANDOM = {"motion_blur", "gaussian_noise", "impulse_noise", "color_block"}


def _photo(name: str, size: tuple[int, int]) -> np.ndarray:
    match = [p for p in photos.bundled_photos() if p.name == name]
    assert match, f"bundled photograph {name} not found"
    return cv2.resize(photos.load_rgb(match[0].path), size, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def colour():
    """A colour photograph, non-square (160 wide x 128 high)."""
    return _photo("astronaut", (160, 128))


@pytest.fixture(scope="module")
def grey():
    """A grey photograph as 3 equal channels."""
    return _photo("camera", (128, 128))


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_catalogue():
    assert len(NAMES) >= 12
    for expected in ("gaussian_blur", "motion_blur", "gaussian_noise", "impulse_noise", "jpeg", "desaturate",
                     "contrast", "brighten", "darken", "pixelate", "quantization", "color_block"):
        assert expected in NAMES
    assert any(n in NAMES for n in ("jpeg2000", "webp", "jpeg_chroma"))
    assert distortions.LEVELS == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_input_untouched(name, colour):
    before = colour.copy()
    for level in distortions.LEVELS:
        out = distortions.DISTORTIONS[name](colour, level, np.random.default_rng(0))
        assert out.shape == colour.shape and out.dtype == np.uint8
        assert out is not colour
    np.testing.assert_array_equal(colour, before)


@pytest.mark.parametrize("name", NAMES)
def test_level_one_is_closer_than_level_five(name, colour, grey):
    images = [colour] if name == "desaturate" else [colour, grey]
    for image in images:
        mse = [_mse(image, distortions.DISTORTIONS[name](image, level, np.random.default_rng(3)))
               for level in distortions.LEVELS]
        assert 0 < mse[0] < mse[4], (name, mse)
        # Levels are nested: the error never drops by much from one level to the next.
        assert all(b >= 0.9 * a for a, b in zip(mse, mse[1:])), (name, mse)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name, colour):
    for level in (1, 5):
        first = distortions.DISTORTIONS[name](colour, level, np.random.default_rng(7))
        second = distortions.DISTORTIONS[name](colour, level, np.random.default_rng(7))
        assert first.tobytes() == second.tobytes()
    if name in RANDOM:
        other = distortions.DISTORTIONS[name](colour, 5, np.random.default_rng(8))
        assert other.tobytes() != first.tobytes()


def test_desaturate_is_a_no_op_on_grey(grey):
    for level in distortions.LEVELS:
        np.testing.assert_array_equal(distortions.desaturate(grey, level, np.random.default_rng(0)), grey)
    fully = distortions.desaturate(_photo("coffee", (96, 64)), 5, np.random.default_rng(0)).astype(int)
    assert np.abs(fully[..., 0] - fully[..., 1]).max() <= 1 and np.abs(fully[..., 1] - fully[..., 2]).max() <= 1


def test_brighten_and_darken_move_the_mean(colour):
    mean = colour.mean()
    assert distortions.brighten(colour, 3, np.random.default_rng(0)).mean() > mean + 20
    assert distortions.darken(colour, 3, np.random.default_rng(0)).mean() < mean - 20


def test_small_odd_sized_image(colour):
    small = np.ascontiguousarray(colour[:37, :53])
    for name, fn in distortions.DISTORTIONS.items():
        for level in (1, 5):
            out = fn(small, level, np.random.default_rng(0))
            assert out.shape == small.shape and out.dtype == np.uint8, name


@pytest.mark.parametrize("bad_level", [0, 6, 2.5, True])
def test_rejects_bad_level(bad_level, colour):
    with pytest.raises(ValueError, match="level"):
        distortions.gaussian_blur(colour, bad_level, np.random.default_rng(0))


def test_rejects_bad_image(colour):
    with pytest.raises(ValueError, match="RGB uint8"):
        distortions.jpeg(colour.astype(np.float32), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="RGB uint8"):
        distortions.jpeg(colour[..., 0], 1, np.random.default_rng(0))
    with pytest.raises(KeyError, match="unknown distortion"):
        distortions.apply("fog", colour, 1, np.random.default_rng(0))
