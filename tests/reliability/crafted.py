"""Test images built byte by byte: EXIF JPEGs, 16-bit PNGs, CMYK JPEGs, animated GIFs,
headers declaring more pixels than the data holds."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import skimage.data


def photo(height: int = 48, width: int = 64) -> np.ndarray:
    """A real photograph (RGB uint8), resized; not symmetric, so rotations differ."""
    return cv2.resize(skimage.data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)


def jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    ok, buffer = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def png(pixels: np.ndarray) -> bytes:
    """PNG of uint8 or uint16 pixels (grey, RGB or RGBA); cv2 keeps 16 bits."""
    if pixels.ndim == 3:  # cv2 writes BGR(A)
        pixels = np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=-1)
    ok, buffer = cv2.imencode(".png", pixels)
    assert ok
    return buffer.tobytes()


def exif_segment(orientation: int, little_endian: bool = True, extra_entries: int = 2) -> bytes:
    """An APP1 'Exif' segment whose IFD0 holds `extra_entries` other tags, then 0x0112."""
    order = "<" if little_endian else ">"
    entries = [struct.pack(order + "HHII", 0x010F + i, 2, 4, 0x41424300) for i in range(extra_entries)]
    # SHORT values sit left-justified in the 4-byte value field, in the file's byte order.
    entries.append(struct.pack(order + "HHI", 0x0112, 3, 1) + struct.pack(order + "H", orientation) + b"\0\0")
    ifd = struct.pack(order + "H", len(entries)) + b"".join(entries) + struct.pack(order + "I", 0)
    tiff = (b"II" if little_endian else b"MM") + struct.pack(order + "HI", 42, 8) + ifd
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def with_segment(jpeg_bytes: bytes, segment: bytes) -> bytes:
    """Insert a marker segment right after SOI (and after a JFIF APP0 if there is one)."""
    assert jpeg_bytes[:2] == b"\xff\xd8"
    at = 2
    if jpeg_bytes[2:4] == b"\xff\xe0":
        at = 4 + struct.unpack(">H", jpeg_bytes[4:6])[0]
    return jpeg_bytes[:at] + segment + jpeg_bytes[at:]


def exif_jpeg(pixels: np.ndarray, orientation: int, little_endian: bool = True) -> bytes:
    return with_segment(jpeg(pixels), exif_segment(orientation, little_endian))


def cmyk_jpeg(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def animated_gif(frames: list[np.ndarray]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    images = [Image.fromarray(f) for f in frames]
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(height: int, width: int) -> bytes:
    """A PNG whose IHDR declares height x width (8-bit grey) but whose data is one short
    row: decoding it would allocate the declared size before finding the data short."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def jpeg_declaring(height: int, width: int) -> bytes:
    """A real small JPEG whose SOF0 header is patched to declare height x width."""
    data = bytearray(jpeg(photo(16, 16)))
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_declaring(height: int, width: int) -> bytes:
    data = bytearray(animated_gif([np.zeros((8, 8, 3), np.uint8)]))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_declaring(height: int, width: int) -> bytes:
    _, buffer = cv2.imencode(".bmp", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(buffer.tobytes())
    data[18:26] = struct.pack("<ii", width, -height)  # negative: top-down rows
    return bytes(data)


def gif_with_large_frame(screen: int, frame: int) -> bytes:
    """A GIF whose logical screen (the header's size) is screen x screen but whose one frame
    declares frame x frame: a few dozen bytes that make a decoder allocate the frame."""
    header = b"GIF89a" + struct.pack("<HHBBB", screen, screen, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, frame, frame, 0)
    return header + descriptor + b"\x02\x02\x44\x01\x00" + b"\x3b"
