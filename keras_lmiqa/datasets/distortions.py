"""KADID-style synthetic distortions for the built-in `demo` dataset.

Every distortion is a pure NumPy/OpenCV function

    fn(image, level, rng) -> image

taking an RGB `uint8` array of shape `(H, W, 3)`, a severity `level` in 1..5 (1 = mild,
5 = severe) and a `numpy.random.Generator` (used only by the random distortions: noise,
motion-blur direction, colour-block placement), and returning a new RGB `uint8` array of
the same shape. The same image, level and generator state always give the same bytes.
The random draws do not depend on the level, so generators seeded alike give nested
severities (the same noise pattern, scaled; the same blur direction; more blocks).

Spatial parameters (blur widths, shifts, block sizes) are given for a 256-pixel image and
scale with the short side of the input, so a level means the same visual severity at
every `image_size`.

`DISTORTIONS` maps each distortion name to its function, in a fixed order. The
compression type is `jpeg2000` when the installed OpenCV can encode JPEG 2000, else
`webp`, else `jpeg_chroma` (JPEG with harsh chroma loss).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

LEVELS = (1, 2, 3, 4, 5)

Distortion = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

# Luma weights (ITU-R BT.601), applied to RGB.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _check(image: np.ndarray, level: int) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", None)
        raise ValueError(f"expected an RGB uint8 array of shape (H, W, 3); got shape {shape}, dtype {dtype}")
    if isinstance(level, bool) or int(level) != level or not 1 <= int(level) <= 5:
        raise ValueError(f"level must be an integer in 1..5; got {level!r}")


def _param(values: tuple, level: int):
    return values[int(level) - 1]


def _scale(image: np.ndarray) -> float:
    """Spatial scale of `image` relative to the 256-pixel design size."""
    return min(image.shape[:2]) / 256.0


def _resample_factor(factor: float, image: np.ndarray) -> float:
    """A downsampling factor given at 256 px, scaled so it stays above 1 at any size."""
    return 1.0 + (factor - 1.0) * _scale(image)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ _LUMA


# --- blur ---------------------------------------------------------------------------


def gaussian_blur(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Isotropic Gaussian blur, sigma 0.7 .. 5 pixels (at 256 px)."""
    _check(image, level)
    sigma = _param((0.7, 1.2, 2.0, 3.2, 5.0), level) * _scale(image)
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def _line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised anti-aliased line of `length` pixels at `angle_deg`."""
    size = int(np.ceil(length)) | 1
    size = max(size, 3)
    centre = (size - 1) / 2.0
    theta = np.deg2rad(angle_deg)
    t = np.linspace(-(length - 1) / 2.0, (length - 1) / 2.0, max(2, int(length * 8)))
    xs = centre + t * np.cos(theta)
    ys = centre + t * np.sin(theta)
    kernel = np.zeros((size, size), dtype=np.float64)
    x0 = np.floor(xs).astype(int)
    y0 = np.floor(ys).astype(int)
    fx = xs - x0
    fy = ys - y0
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        yy = np.clip(y0 + dy, 0, size - 1)
        xx = np.clip(x0 + dx, 0, size - 1)
        np.add.at(kernel, (yy, xx), w)
    return (kernel / kernel.sum()).astype(np.float32)


def motion_blur(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Linear motion blur in a random direction, 3 .. 21 pixels long (at 256 px)."""
    _check(image, level)
    length = _param((3.0, 5.0, 8.0, 13.0, 21.0), level) * _scale(image)
    angle = float(rng.uniform(0.0, 180.0))
    kernel = _line_kernel(max(length, 2.0), angle)
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


# --- noise --------------------------------------------------------------------------


def gaussian_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise, independent per channel, sigma 5 .. 40 grey levels."""
    _check(image, level)
    sigma = _param((5.0, 10.0, 16.0, 25.0, 40.0), level)
    noise = rng.standard_normal(size=image.shape, dtype=np.float32)
    return _to_uint8(image.astype(np.float32) + np.float32(sigma) * noise)


def impulse_noise(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: 0.5 % .. 10 % of the pixels set to black or white."""
    _check(image, level)
    amount = _param((0.005, 0.012, 0.025, 0.05, 0.1), level)
    u = rng.random(image.shape[:2])
    out = image.copy()
    out[u < amount / 2] = 0
    out[(u >= amount / 2) & (u < amount)] = 255
    return out


# --- compression --------------------------------------------------------------------


def _codec_roundtrip(image: np.ndarray, ext: str, params: list[int]) -> np.ndarray:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(ext, bgr, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {ext}")
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoded is None or decoded.shape != bgr.shape:
        raise RuntimeError(f"OpenCV could not decode its own {ext} output")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def jpeg(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression (OpenCV, 4:2:0), quality 45 .. 4."""
    _check(image, level)
    quality = _param((45, 25, 14, 8, 4), level)
    return _codec_roundtrip(image, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality])


def jpeg2000(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG 2000 compression (OpenCV/OpenJPEG), compression parameter 60 .. 3 (x1000)."""
    _check(image, level)
    rate = _param((60, 30, 15, 7, 3), level)
    return _codec_roundtrip(image, ".jp2", [cv2.IMWRITE_JPEG2000_COMPRESSION_X1000, rate])


def webp(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """WebP (lossy) compression, quality 30 .. 1."""
    _check(image, level)
    quality = _param((30, 15, 8, 4, 1), level)
    return _codec_roundtrip(image, ".webp", [cv2.IMWRITE_WEBP_QUALITY, quality])


def jpeg_chroma(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Chroma-only loss: the colour planes are downsampled 2 .. 12 times (nearest)."""
    _check(image, level)
    factor = _resample_factor(_param((2.0, 3.0, 5.0, 8.0, 12.0), level), image)
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    h, w = image.shape[:2]
    small = cv2.resize(ycc[..., 1:], (max(1, round(w / factor)), max(1, round(h / factor))),
                       interpolation=cv2.INTER_AREA)
    ycc[..., 1:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _supports(ext: str) -> bool:
    try:
        ok, buffer = cv2.imencode(ext, np.full((128, 128, 3), 128, np.uint8))
        return bool(ok) and cv2.imdecode(buffer, cv2.IMREAD_COLOR) is not None
    except cv2.error:
        return False


# --- colour and tone ----------------------------------------------------------------


def desaturate(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Colour saturation loss: blend towards the luma, keeping 70 % .. 0 % of the chroma.

    A no-op on grey images (all channels equal).
    """
    _check(image, level)
    keep = _param((0.7, 0.5, 0.3, 0.15, 0.0), level)
    x = image.astype(np.float32)
    grey = _luma(image)[..., None]
    return _to_uint8(grey + keep * (x - grey))


def contrast(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Contrast loss: blend towards the mean grey, keeping 80 % .. 35 % of the contrast."""
    _check(image, level)
    keep = _param((0.8, 0.68, 0.56, 0.45, 0.35), level)
    x = image.astype(np.float32)
    mean = float(_luma(image).mean())
    return _to_uint8(mean + keep * (x - mean))


def brighten(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Over-exposure: gamma 1/1.3 .. 1/3.2 on RGB and a lift towards white.

    Shadows are lifted and highlights compressed, washing the image out.
    """
    _check(image, level)
    gamma = _param((1.3, 1.6, 2.0, 2.5, 3.2), level)
    lift = _param((0.0, 0.03, 0.07, 0.12, 0.18), level)
    x = image.astype(np.float32) / 255.0
    y = np.power(x, 1.0 / gamma)
    return _to_uint8(255.0 * (lift + (1.0 - lift) * y))


def darken(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Under-exposure: gamma 1.3 .. 3 on RGB with a gain loss, crushing the shadows."""
    _check(image, level)
    gamma = _param((1.3, 1.6, 2.0, 2.5, 3.0), level)
    gain = _param((1.0, 0.96, 0.92, 0.87, 0.8), level)
    x = image.astype(np.float32) / 255.0
    return _to_uint8(255.0 * gain * np.power(x, gamma))


def chromatic_aberration(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Lateral colour shift: red moved right and blue moved left by 0.5 .. 4 pixels (at 256 px,
    sub-pixel shifts interpolated)."""
    _check(image, level)
    shift = _param((0.5, 1.0, 1.75, 2.75, 4.0), level) * _scale(image)
    h, w = image.shape[:2]
    out = image.copy()
    for channel, dx in ((0, shift), (2, -shift)):
        matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, 0.0]], dtype=np.float32)
        out[..., channel] = cv2.warpAffine(
            np.ascontiguousarray(image[..., channel]), matrix, (w, h), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101
        )
    return out


# --- spatial and quantisation artifacts ---------------------------------------------


def pixelate(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Pixelation: each block of 2 .. 9 pixels square (at 256 px, at least 2) takes its mean.

    The block grid is offset by half a block, so it does not line up with the dyadic
    pyramid of MS-SSIM (which would hide aligned 4- or 8-pixel blocks at coarse scales).
    """
    _check(image, level)
    block = max(2, int(round(_param((2, 3, 4, 6, 9), level) * _scale(image))))
    h, w = image.shape[:2]
    offset = block // 2
    rows = -(-(h + offset) // block)
    cols = -(-(w + offset) // block)
    padded = cv2.copyMakeBorder(
        image, offset, rows * block - h - offset, offset, cols * block - w - offset, cv2.BORDER_REPLICATE
    )
    means = padded.reshape(rows, block, cols, block, 3).astype(np.float32).mean(axis=(1, 3))
    blocks = np.repeat(np.repeat(_to_uint8(means), block, axis=0), block, axis=1)
    return np.ascontiguousarray(blocks[offset : offset + h, offset : offset + w])


def quantization(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Posterisation: each channel reduced to 32, 16, 8, 4, 2 tones, placed by its histogram.

    The tone boundaries are the channel's quantiles (equal pixel counts per tone) and
    each tone is the mean of its pixels, so the severity does not hinge on where a fixed
    grid falls in a low-contrast histogram. Each level merges pairs of tones of the level
    below, so the error can only grow with the level.
    """
    _check(image, level)
    tones = _param((32, 16, 8, 4, 2), level)
    out = np.empty_like(image)
    for channel in range(3):
        values = image[..., channel]
        counts = np.bincount(values.ravel(), minlength=256).astype(np.float64)
        cumulative = np.cumsum(counts) / counts.sum()
        # bin of each grey value: the quantile interval its cumulative share falls in
        bins = np.minimum((cumulative - counts / counts.sum() / 2) * tones, tones - 1).astype(np.int64)
        grey = np.arange(256, dtype=np.float64)
        sums = np.bincount(bins, weights=counts * grey, minlength=tones)
        totals = np.bincount(bins, weights=counts, minlength=tones)
        means = np.where(totals > 0, sums / np.maximum(totals, 1), 0.0)
        lut = np.clip(np.rint(means[bins]), 0, 255).astype(np.uint8)
        out[..., channel] = lut[values]
    return out


def color_block(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Local patch artifacts: 1 .. 11 random-colour square blocks of side 1/10 of the image.

    The placements and colours of all 11 blocks are always drawn, and level k pastes the
    first few, so with equally seeded generators a higher level adds blocks.
    """
    _check(image, level)
    count = _param((1, 2, 4, 7, 11), level)
    h, w = image.shape[:2]
    side = max(2, round(min(h, w) / 10))
    ys = rng.integers(0, h - side + 1, size=11)
    xs = rng.integers(0, w - side + 1, size=11)
    colours = rng.integers(0, 256, size=(11, 3)).astype(np.uint8)
    out = image.copy()
    for y, x, colour in list(zip(ys, xs, colours))[:count]:
        out[y : y + side, x : x + side] = colour
    return out


def sharpen(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Over-sharpening: unsharp mask (sigma 1.5 px at 256 px), amount 0.8 .. 4.5, with overshoot clipping."""
    _check(image, level)
    amount = _param((0.8, 1.5, 2.3, 3.2, 4.5), level)
    sigma = 1.5 * _scale(image)
    x = image.astype(np.float32)
    blurred = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    return _to_uint8(x + amount * (x - blurred))


def _compression_type() -> tuple[str, Distortion]:
    if _supports(".jp2"):
        return "jpeg2000", jpeg2000
    if _supports(".webp"):
        return "webp", webp
    return "jpeg_chroma", jpeg_chroma


_COMPRESSION_NAME, _COMPRESSION_FN = _compression_type()

DISTORTIONS: dict[str, Distortion] = {
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "gaussian_noise": gaussian_noise,
    "impulse_noise": impulse_noise,
    "jpeg": jpeg,
    _COMPRESSION_NAME: _COMPRESSION_FN,
    "desaturate": desaturate,
    "contrast": contrast,
    "brighten": brighten,
    "darken": darken,
    "chromatic_aberration": chromatic_aberration,
    "pixelate": pixelate,
    "quantization": quantization,
    "color_block": color_block,
    "sharpen": sharpen,
}
"""Distortion name -> `fn(image_uint8_rgb, level, rng) -> uint8 rgb`, in build order."""


def apply(name: str, image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Apply distortion `name` at `level`; raises KeyError naming the valid types."""
    if name not in DISTORTIONS:
        raise KeyError(f"unknown distortion {name!r}; valid: {', '.join(DISTORTIONS)}")
    return DISTORTIONS[name](image, level, rng)


__all__ = ["DISTORTIONS", "LEVELS", "apply"] + [name for name in DISTORTIONS]
