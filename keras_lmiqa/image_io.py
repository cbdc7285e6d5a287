"""Decoding encoded images in graph ops: the one decoder of training, evaluation and serving.

`decode_image(contents, max_pixels)` turns JPEG/PNG/GIF/BMP bytes into [H, W, 3] uint8:

- grey and RGBA become RGB, 16-bit PNGs are scaled to 8 bits (TensorFlow's own
  conversion), CMYK JPEGs are converted by libjpeg, an animated GIF gives its first frame;
- the pixel count is read from the file header and refused above `max_pixels` *before*
  the pixels are allocated (a small file can declare a huge image); the decoded size is
  checked again afterwards. A GIF's header gives only its screen, while TensorFlow's
  decoder allocates every frame's own rectangle: `gif_pixels` (plain Python, run on the
  bytes before they reach the graph by the server and by `Scorer`) counts those;
- a JPEG's EXIF orientation (tag 0x0112 in IFD0 of the APP1 "Exif" segment) is applied,
  so a photo is scored as it is displayed, in training and serving alike.
- JPEGs are decoded with libjpeg's accurate integer IDCT (`dct_method="INTEGER_ACCURATE"`,
  as Pillow decodes them), not TensorFlow's default fast IDCT.

`decode_image_reduced` is the same decoder with a JPEG decoded at 1/2, 1/4 or 1/8 of its
size by libjpeg's scaled IDCT (`keras_lmiqa.working_size` picks the ratio from the header).

Only TensorFlow graph ops (no py_function): the same function runs in tf.data maps and
inside the exported SavedModel. The header and EXIF parsers read through `_read`, which
returns zeros past the end of the data, and bound every loop, so arbitrary bytes give a
decode error or orientation 1, never a crash or a hang.
"""

from __future__ import annotations

import re

import tensorflow as tf

# Format ids, in the order of `_MAGIC`; 0 is "unknown".
JPEG, PNG, GIF, BMP = 1, 2, 3, 4
_MAGIC = ((JPEG, b"\xff\xd8\xff"), (PNG, b"\x89PNG\r\n\x1a\n"), (GIF, b"GIF8"), (BMP, b"BM"))
FORMAT_NAMES = "JPEG, PNG, GIF or BMP"
EXIF_ORIENTATION_TAG = 0x0112
_MAX_SEGMENTS = 64  # JPEG marker segments scanned for the EXIF APP1 (it comes first in practice)
_MAX_IFD_ENTRIES = 64  # IFD0 entries looked at (cameras write ~10-20)


def _read(contents, size, pos, count: int):
    """`count` bytes of `contents` from `pos` as uint8 [count], zero past either end."""
    pos = tf.clip_by_value(tf.cast(pos, tf.int64), 0, size)
    raw = tf.io.decode_raw(tf.strings.substr(contents, pos, tf.constant(count, tf.int64)), tf.uint8)
    raw = tf.pad(raw, [[0, count - tf.shape(raw)[0]]])
    return tf.cast(tf.ensure_shape(raw, [count]), tf.int64)


def image_format(contents) -> tf.Tensor:
    """int32 scalar: JPEG, PNG, GIF, BMP (1-4) from the leading bytes, 0 for anything else."""
    found = tf.constant(0, tf.int32)
    for code, magic in reversed(_MAGIC):
        found = tf.where(tf.strings.substr(contents, 0, len(magic)) == magic, code, found)
    return found


def _le(b, start: int, count: int):
    return sum(b[start + i] * (256 ** i) for i in range(count))


def _be(b, start: int, count: int):
    return sum(b[start + i] * (256 ** (count - 1 - i)) for i in range(count))


def header_size(contents, fmt) -> tf.Tensor:
    """int64 [2] (height, width) the header declares, read without decoding; (0, 0) if unknown.

    JPEG: libjpeg's header parse (`extract_jpeg_shape`, fails on a broken header). PNG:
    IHDR width/height (big-endian uint32 at bytes 16/20). GIF: the logical screen
    (little-endian uint16 at 6/8). BMP: the DIB header (int32 at 18/22, or int16 at
    18/20 in the old 12-byte core header; a negative height means top-down rows).
    """
    size = tf.cast(tf.strings.length(contents), tf.int64)
    head = _read(contents, size, 0, 26)

    def jpeg():
        return tf.io.extract_jpeg_shape(contents, output_type=tf.int64)[:2]

    def png():
        is_ihdr = tf.reduce_all(tf.equal(head[12:16], tf.constant(list(b"IHDR"), tf.int64)))
        dims = tf.stack([_be(head, 20, 4), _be(head, 16, 4)])
        return tf.where(is_ihdr, dims, tf.zeros([2], tf.int64))

    def gif():
        return tf.stack([_le(head, 8, 2), _le(head, 6, 2)])

    def bmp():
        def signed(value, bits):
            return tf.where(value >= 2 ** (bits - 1), value - 2 ** bits, value)

        core = _le(head, 14, 4) == 12
        height = tf.where(core, signed(_le(head, 20, 2), 16), signed(_le(head, 22, 4), 32))
        width = tf.where(core, _le(head, 18, 2), signed(_le(head, 18, 4), 32))
        return tf.abs(tf.stack([height, width]))

    def unknown():
        return tf.zeros([2], tf.int64)

    return tf.switch_case(fmt, [unknown, jpeg, png, gif, bmp])


def exif_orientation(contents) -> tf.Tensor:
    """int32 EXIF orientation (1-8) of a JPEG; 1 when absent, malformed or not a JPEG.

    Walks the marker segments after SOI (at most `_MAX_SEGMENTS`, stopping at SOS/EOI
    or anything not a marker) to the APP1 segment starting "Exif\\0\\0", reads the TIFF
    byte order ("II" little, "MM" big endian) and magic 42, then looks for tag 0x0112
    (type SHORT) among the IFD0 entries lying inside the segment.
    """
    size = tf.cast(tf.strings.length(contents), tf.int64)
    exif_id = tf.constant(list(b"Exif\x00\x00"), tf.int64)

    def scan(pos, tiff, end, done):
        head = _read(contents, size, pos, 10)
        marker, length = head[1], _be(head, 2, 2)
        fill = (head[0] == 0xFF) & (marker == 0xFF)  # fill bytes may precede a marker
        standalone = (head[0] == 0xFF) & (((marker >= 0xD0) & (marker <= 0xD7)) | (marker == 0x01))
        stop = (head[0] != 0xFF) | (marker == 0xDA) | (marker == 0xD9) | (~fill & ~standalone & (length < 2))
        is_exif = ~stop & (marker == 0xE1) & tf.reduce_all(tf.equal(head[4:10], exif_id))
        step = tf.where(fill, tf.constant(1, tf.int64), tf.where(standalone, tf.constant(2, tf.int64), 2 + length))
        return (pos + step, tf.where(is_exif, pos + 10, tiff), tf.where(is_exif, pos + 2 + length, end),
                stop | is_exif | (pos + step >= size))

    _, tiff, end, _ = tf.while_loop(
        lambda pos, tiff, end, done: ~done, scan,
        (tf.constant(2, tf.int64), tf.constant(-1, tf.int64), tf.constant(0, tf.int64), tf.constant(False)),
        maximum_iterations=_MAX_SEGMENTS)
    end = tf.minimum(end, size)

    t = _read(contents, size, tiff, 8)
    little = (t[0] == 0x49) & (t[1] == 0x49)
    big = (t[0] == 0x4D) & (t[1] == 0x4D)

    def u16(b, i):
        return tf.where(little, b[..., i] + 256 * b[..., i + 1], 256 * b[..., i] + b[..., i + 1])

    def u32(b, i):
        return tf.where(little, _le(b, i, 4), _be(b, i, 4))

    ifd = tiff + u32(t, 4)
    count = u16(_read(contents, size, ifd, 2), 0)
    entries = tf.reshape(_read(contents, size, ifd + 2, 12 * _MAX_IFD_ENTRIES), [_MAX_IFD_ENTRIES, 12])
    index = tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64)
    inside = (index < count) & (ifd + 2 + 12 * (index + 1) <= end)
    hit = inside & (u16(entries, 0) == EXIF_ORIENTATION_TAG) & (u16(entries, 2) == 3)
    value = tf.reduce_max(tf.where(hit, u16(entries, 8), 0))
    valid = (tiff >= 0) & (little | big) & (u16(t, 2) == 42) & (u32(t, 4) >= 8) & tf.reduce_any(hit)
    valid &= (value >= 1) & (value <= 8)
    return tf.cast(tf.where(valid, value, 1), tf.int32)


def apply_orientation(image, orientation) -> tf.Tensor:
    """Rotate/flip [H, W, C] pixels stored with EXIF `orientation` to how they display.

    2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
    8 rotate 90 anticlockwise: a transpose for 5-8, then a left-right and/or up-down flip.
    """
    image = tf.cond(orientation >= 5, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    left_right = (orientation == 2) | (orientation == 3) | (orientation == 6) | (orientation == 7)
    up_down = (orientation == 3) | (orientation == 4) | (orientation == 7) | (orientation == 8)
    image = tf.cond(left_right, lambda: tf.reverse(image, [1]), lambda: image)
    return tf.cond(up_down, lambda: tf.reverse(image, [0]), lambda: image)


def _decode_jpeg(contents, ratio: int = 1):
    """A JPEG with libjpeg's accurate integer IDCT (JDCT_ISLOW, what Pillow and libjpeg's
    own tools use). TensorFlow's default is the fast IDCT (JDCT_IFAST), up to ~5 levels
    off on detailed or noisy images: a decoder artefact on exactly the cues that decide
    quality, and a mismatch with images decoded elsewhere. CMYK JPEGs are converted to
    RGB by the same code as before (TensorFlow's jpeg decoder behind both ops). `ratio`
    2, 4 or 8 has libjpeg output ceil(H / ratio) x ceil(W / ratio) pixels by its scaled
    IDCT: a reduced-size decode that never holds the full-size pixels."""
    return tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE", ratio=ratio)


def _decode_reduced_jpeg(contents, ratio):
    """`_decode_jpeg` at `ratio` (int32 scalar tensor: 1, 2, 4 or 8); its attribute is static, so one branch each."""
    branches = {index: (lambda r=r: _decode_jpeg(contents, r)) for index, r in enumerate((1, 2, 4, 8))}
    index = tf.cast(tf.math.round(tf.math.log(tf.cast(ratio, tf.float32)) / tf.math.log(2.0)), tf.int32)
    return tf.switch_case(tf.clip_by_value(index, 0, 3), branches)


def _decode_other(contents):
    # dtype=uint8 also scales 16-bit PNGs (TensorFlow's convert_image_dtype).
    return tf.io.decode_image(contents, channels=3, expand_animations=False, dtype=tf.uint8)


def decode_image(contents, max_pixels: int) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes to [H, W, 3] uint8, displayed orientation.

    JPEGs are decoded with the accurate integer IDCT (`_decode_jpeg`), the other formats
    by `tf.io.decode_image`; the format is the one `image_format` reads from the
    leading bytes (the same test `tf.io.decode_image` makes).

    Fails (InvalidArgumentError) with "image is empty", "not a JPEG, PNG, GIF or BMP
    image", "image exceeds the pixel limit ..." or the decoder's own message.
    """
    return _decode(contents, max_pixels, None)[0]


def decode_image_reduced(contents, max_pixels: int, jpeg_ratio) -> tuple[tf.Tensor, tf.Tensor]:
    """`decode_image`, a JPEG decoded at `jpeg_ratio(height, width)` (int32 1, 2, 4 or 8
    of its header size) -> (pixels [h, w, 3] uint8, full displayed size int32 [2]).

    The pixel limit applies to the declared (full) size, as in `decode_image`. The full
    size is the JPEG header's (swapped by an EXIF orientation 5-8), else the pixels'.
    """
    return _decode(contents, max_pixels, jpeg_ratio)


def _decode(contents, max_pixels: int, jpeg_ratio):
    contents = tf.convert_to_tensor(contents, tf.string)
    fmt = image_format(contents)
    empty = tf.debugging.Assert(tf.strings.length(contents) > 0, ["image is empty (0 bytes)"])
    with tf.control_dependencies([empty]):  # so an empty image is not also "unknown format"
        known = tf.debugging.Assert(fmt > 0, [f"not a {FORMAT_NAMES} image (unknown leading bytes)"])
    with tf.control_dependencies([known]):
        dims = header_size(contents, fmt)
    limit = tf.constant(max_pixels, tf.float64)
    declared = tf.cast(dims[0], tf.float64) * tf.cast(dims[1], tf.float64)
    refuse_early = tf.debugging.Assert(declared <= limit, [tf.strings.format(
        "image exceeds the pixel limit: its header declares {}x{} pixels, above max_pixels={}",
        (dims[1], dims[0], tf.constant(max_pixels, tf.int64)))])
    ratio = tf.constant(1, tf.int32)
    with tf.control_dependencies([refuse_early]):
        if jpeg_ratio is None:
            image = tf.cond(fmt == JPEG, lambda: _decode_jpeg(contents), lambda: _decode_other(contents))
        else:
            ratio = tf.where(fmt == JPEG, tf.cast(jpeg_ratio(dims[0], dims[1]), tf.int32), 1)
            image = tf.cond(fmt == JPEG, lambda: _decode_reduced_jpeg(contents, ratio),
                            lambda: _decode_other(contents))
    image = tf.ensure_shape(image, [None, None, 3])
    orientation = tf.cond(fmt == JPEG, lambda: exif_orientation(contents), lambda: tf.constant(1, tf.int32))
    image = apply_orientation(image, orientation)
    shape = tf.shape(image, out_type=tf.int64)
    backstop = tf.debugging.assert_less_equal(  # a header that understated the size
        shape[0] * shape[1], tf.constant(max_pixels, tf.int64), message="image exceeds the pixel limit (max_pixels)")
    oriented = tf.where(orientation >= 5, tf.reverse(dims, [0]), dims)
    full_size = tf.cast(tf.where(ratio > 1, oriented, shape[:2]), tf.int32)
    with tf.control_dependencies([backstop]):
        return tf.identity(image), full_size


MAX_GIF_BLOCKS = 65536  # frames and extensions `gif_pixels` walks


def gif_pixels(data: bytes) -> int:
    """Pixels TensorFlow's GIF decoder allocates for `data`: the screen, plus every frame's
    own rectangle (it decodes all frames, even for the first one alone, so a small file of
    many frames costs memory per frame). 0 for data that is not a readable GIF."""
    if len(data) < 13 or not data.startswith(b"GIF8"):
        return 0
    total = int.from_bytes(data[6:8], "little") * int.from_bytes(data[8:10], "little")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    blocks = 0
    while pos < len(data):
        blocks += 1
        if blocks > MAX_GIF_BLOCKS:  # no real GIF has this many: refuse rather than walk megabytes of them
            return 1 << 62
        kind = data[pos]
        if kind == 0x2C and pos + 10 <= len(data):  # image descriptor: a frame
            total += int.from_bytes(data[pos + 5:pos + 7], "little") * int.from_bytes(data[pos + 7:pos + 9], "little")
            packed = data[pos + 9]
            pos += 10 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0) + 1  # + local colours, LZW code size
        elif kind == 0x21:  # extension: label, then sub-blocks
            pos += 2
        else:  # trailer (0x3B) or garbage: the decoder stops here too
            break
        while pos < len(data) and data[pos]:  # data sub-blocks, up to the empty one
            pos += data[pos] + 1
        pos += 1
    return total


_NOISE = re.compile(r"^(Graph execution error|Detected at node|\s*File \"|\s*\[\[\{\{node|<stack traces unavailable>)")


def error_reason(message: str) -> str:
    """The useful line of a TensorFlow error message (no graph/node/stack preamble)."""
    for line in message.splitlines():
        if not line.strip() or _NOISE.match(line):
            continue
        line = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", line.strip())
        line = re.sub(r"\s*\[\[\{\{node [^}]*\}\}\]\].*$|\s*\[Op:[^\]]*\]$", "", line)
        # Eager asserts say "Expected 'tf.Tensor(False...)' to be true. Summarized data: b'...'".
        summarized = re.search(r"Summarized data: b?['\"](.*)['\"]$", line)
        if summarized:
            return summarized.group(1)
        assertion = re.match(r"assertion failed: \[(.*)\]$", line)
        return (assertion.group(1) if assertion else line) or message.strip()
    return message.strip()


__all__ = ["FORMAT_NAMES", "apply_orientation", "decode_image", "decode_image_reduced", "error_reason",
           "exif_orientation", "gif_pixels", "header_size", "image_format"]
