"""The one image decoder (training, evaluation, serving): formats, EXIF, pixel limit, bad files."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from crafted import (
    animated_gif,
    bmp_declaring,
    cmyk_jpeg,
    exif_jpeg,
    exif_segment,
    gif_declaring,
    jpeg,
    jpeg_declaring,
    photo,
    png,
    png_declaring,
    with_segment,
)

from keras_lmiqa import image_io
from keras_lmiqa.config import TrainConfig
from keras_lmiqa.errors import ImageError
from keras_lmiqa.models.scoring import predict_quality
from keras_lmiqa.pipeline import (
    TrainPipeline,
    decode_image,
    find_all_undecodable,
    find_undecodable,
    inference_dataset,
)

LIMIT = 10_000_000
graph_decode = tf.function(lambda contents: decode_image(contents, LIMIT),
                           input_signature=[tf.TensorSpec([], tf.string)])


def _decoded(contents: bytes) -> np.ndarray:
    """The graph-mode result, checked equal to the eager one."""
    in_graph = graph_decode(tf.constant(contents)).numpy()
    np.testing.assert_array_equal(decode_image(contents, LIMIT).numpy(), in_graph)
    return in_graph


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    out = _decoded(png(deep))
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, (deep >> 8).astype(np.uint8))  # the high byte, not a wrap-around
    grey = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    np.testing.assert_array_equal(_decoded(png(grey)), np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, -1))


def test_cmyk_jpeg_is_converted_to_rgb():
    from PIL import Image

    pixels = photo(40, 56)
    contents = cmyk_jpeg(pixels)
    assert Image.open(io.BytesIO(contents)).mode == "CMYK"
    out = _decoded(contents).astype(int)
    assert out.shape == (40, 56, 3)
    pillow_rgb = np.asarray(Image.open(io.BytesIO(contents)).convert("RGB")).astype(int)
    assert np.abs(out - pillow_rgb).mean() < 3.0  # same conversion up to IDCT rounding
    assert np.abs(out - pixels.astype(int)).mean() < 6.0  # and close to the photo (not inverted)


def test_jpeg_is_decoded_with_the_accurate_idct_as_pillow_does():
    """libjpeg's accurate integer IDCT (Pillow's decode), not TensorFlow's default fast
    one, which is off by several levels on a noisy photo (the cues quality depends on)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    noisy = np.clip(photo(96, 128).astype(int) + rng.normal(0, 25, (96, 128, 3)), 0, 255).astype(np.uint8)
    for quality in (75, 95):
        contents = jpeg(noisy, quality)
        out = _decoded(contents).astype(int)
        pillow = np.asarray(Image.open(io.BytesIO(contents)).convert("RGB")).astype(int)
        assert out.shape == pillow.shape == (96, 128, 3)
        assert np.abs(out - pillow).max() <= 1
        fast = tf.io.decode_jpeg(contents, dct_method="INTEGER_FAST").numpy().astype(int)
        assert np.abs(fast - pillow).max() >= 3 and (fast != pillow).mean() > 0.1  # what it was before
    buffer = io.BytesIO()  # a one-channel (grey) JPEG becomes RGB too
    Image.fromarray(noisy[..., 0]).save(buffer, format="JPEG", quality=90)
    out = _decoded(buffer.getvalue()).astype(int)
    pillow = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).astype(int)
    assert out.shape == (96, 128, 3) and np.abs(out - pillow).max() <= 1


def test_animated_gif_gives_its_first_frame():
    frames = [np.full((10, 14, 3), value, np.uint8) for value in (30, 200, 120)]
    out = _decoded(animated_gif(frames))
    assert out.shape == (10, 14, 3)
    np.testing.assert_array_equal(out, frames[0])


def test_grey_and_rgba_become_rgb():
    grey = photo(20, 24)[..., 0]
    np.testing.assert_array_equal(_decoded(png(grey)), np.repeat(grey[..., None], 3, -1))
    rgba = np.dstack([photo(20, 24), np.full((20, 24), 7, np.uint8)])
    np.testing.assert_array_equal(_decoded(png(rgba)), rgba[..., :3])


def _pillow_oriented(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Pillow's own EXIF transform (ImageOps.exif_transpose) applied to `pixels`."""
    from PIL import Image, ImageOps

    image = Image.fromarray(pixels)
    image.getexif()[0x0112] = orientation
    return np.asarray(ImageOps.exif_transpose(image))


@pytest.mark.parametrize("little_endian", [True, False])
def test_exif_orientation_is_applied_as_pillow_does(little_endian):
    pixels = photo(30, 44)
    plain = tf.io.decode_jpeg(jpeg(pixels), dct_method="INTEGER_ACCURATE").numpy()  # decode_jpeg ignores EXIF
    for orientation in range(1, 9):
        contents = exif_jpeg(pixels, orientation, little_endian)
        assert int(image_io.exif_orientation(contents)) == orientation
        out = _decoded(contents)
        expected = _pillow_oriented(plain, orientation)
        assert out.shape == expected.shape == ((30, 44, 3) if orientation < 5 else (44, 30, 3))
        np.testing.assert_array_equal(out, expected, err_msg=f"orientation {orientation}")


def _shortened(segment: bytes, by: int) -> bytes:
    length = int.from_bytes(segment[2:4], "big")
    return segment[:2] + (length - by).to_bytes(2, "big") + segment[4:]


def test_exif_parser_ignores_what_is_not_a_valid_orientation():
    base = jpeg(photo(12, 16))
    cases = {
        "no exif": base,
        "orientation 0": with_segment(base, exif_segment(0)),
        "orientation 9": with_segment(base, exif_segment(9)),
        "xmp app1": with_segment(base, b"\xff\xe1\x00\x10http://ns.adobe"),
        "bad byte order": with_segment(base, exif_segment(6).replace(b"II*\x00", b"IX*\x00")),
        # the segment length ends it just before the orientation entry (the last one)
        "entry past segment": with_segment(base, _shortened(exif_segment(6), 16)),
        "length 0": base[:2] + b"\xff\xe1\x00\x00Exif\x00\x00II" + base[2:],
    }
    for name, contents in cases.items():
        assert int(image_io.exif_orientation(contents)) == 1, name
    # An Exif segment after other APP segments (JFIF APP0, an ICC APP2) is still found.
    later = with_segment(with_segment(base, b"\xff\xe2\x00\x06ICC\x00"), exif_segment(8))
    assert int(image_io.exif_orientation(later)) == 8
    assert _decoded(later).shape == (16, 12, 3)
    assert int(image_io.exif_orientation(png(photo(8, 8)))) == 1
    assert int(image_io.exif_orientation(with_segment(base, _shortened(exif_segment(6), 0)))) == 6  # control


@pytest.mark.parametrize("make", [png_declaring, jpeg_declaring, gif_declaring, bmp_declaring])
def test_declared_size_is_refused_before_decoding(make):
    contents = make(3000, 4000)  # a few hundred bytes declaring 12 Mpx
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        graph_decode(tf.constant(contents))  # LIMIT is 10 Mpx
    assert image_io.error_reason(caught.value.message) == (
        "image exceeds the pixel limit: its header declares 4000x3000 pixels, above max_pixels=10000000")
    with pytest.raises(tf.errors.InvalidArgumentError, match="header declares 4000x3000"):
        decode_image(contents, 12_000_000 - 1)
    # At the limit the header passes. libjpeg pads missing scan data: a few hundred
    # bytes become 36 MB, the bomb the header check stops. TensorFlow's GIF decoder
    # returns the 8 x 8 frame (the canvas check is the conservative bound); the PNG and
    # BMP decoders report the short data. None of them is a pixel-limit refusal.
    expected = {jpeg_declaring: (3000, 4000, 3), gif_declaring: (8, 8, 3)}
    if make in expected:
        assert decode_image(contents, 12_000_000).shape == expected[make]
    else:
        with pytest.raises(tf.errors.InvalidArgumentError) as caught:
            decode_image(contents, 12_000_000)
        assert "pixel limit" not in caught.value.message


def test_header_sizes_are_read_exactly():
    pixels = photo(37, 53)
    import cv2

    bmp = cv2.imencode(".bmp", pixels)[1].tobytes()
    for contents in (png(pixels), jpeg(pixels), animated_gif([pixels]), bmp):
        fmt = image_io.image_format(contents)
        assert image_io.header_size(contents, fmt).numpy().tolist() == [37, 53]
    with pytest.raises(tf.errors.InvalidArgumentError, match="header declares 53x37"):
        decode_image(png(pixels), 37 * 53 - 1)
    assert decode_image(png(pixels), 37 * 53).shape == (37, 53, 3)


def test_bad_files_are_named_with_the_reason(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(png(photo(20, 20)))
    files = {
        "empty.jpg": b"",
        "text.jpg": b"just some text in a .jpg",
        "truncated.png": png(photo(40, 40))[:150],
        "truncated.jpg": jpeg(photo(40, 40))[:300],
        "huge.png": png_declaring(5000, 5000),
    }
    for name, contents in files.items():
        (tmp_path / name).write_bytes(contents)
    paths = [str(good)] + [str(tmp_path / name) for name in files] + [str(tmp_path / "missing.png")]
    found = dict(find_all_undecodable(paths, LIMIT))
    assert list(found) == paths[1:]
    assert found[str(tmp_path / "empty.jpg")] == "image is empty (0 bytes)"
    assert found[str(tmp_path / "text.jpg")] == "not a JPEG, PNG, GIF or BMP image (unknown leading bytes)"
    assert "pixel limit" in found[str(tmp_path / "huge.png")]
    assert "missing.png" in found[str(tmp_path / "missing.png")]
    for reason in found.values():
        assert "\n" not in reason and "Graph execution" not in reason and "{{" not in reason
    assert find_undecodable(paths, LIMIT) == (paths[1], "image is empty (0 bytes)")
    from keras_lmiqa.models import build_branch

    config = TrainConfig(backbone="tiny", weights="none", crop_size=32, grid_size=2)
    with pytest.raises(ImageError, match=r"cannot use image .*truncated\.png: "):
        predict_quality(build_branch(config), [str(good), paths[3]], config)


def test_tiny_images_are_upscaled_in_training_and_inference(tmp_path):
    config = TrainConfig(backbone="tiny", weights="none", crop_size=16, num_crops=3, num_positives=1, batch_size=3,
                         grid_size=2, cache="none", flip=False)
    colours = [(10, 200, 30), (250, 5, 100), (60, 60, 60)]
    paths = []
    for (height, width), colour in zip([(2, 2), (2, 7), (3, 2)], colours):
        path = tmp_path / f"tiny_{height}x{width}.png"
        path.write_bytes(png(np.full((height, width, 3), colour, np.uint8)))
        paths.append(str(path))
    from keras_lmiqa import crops as crop_ops

    (batch,) = list(inference_dataset(paths, config, batch_size=3))
    crops = batch["crops"].numpy()
    # Grids of 1, 4 and 2 windows (the windows of a tiny image repeat across scales and
    # are dropped), padded to the longest with empty windows, whose crops are black.
    counts = [crop_ops.grid_window_count(h, w, 16, config.scales, 2) for h, w in [(2, 2), (2, 7), (3, 2)]]
    assert counts == [1, 4, 2]
    assert crops.shape == (3, max(counts), 16, 16, 3)
    for index, (colour, count) in enumerate(zip(colours, counts)):  # every crop is the flat colour, upscaled
        np.testing.assert_array_equal(crops[index, :count], np.broadcast_to(colour, crops[index, :count].shape))
        assert (crops[index, count:] == 0).all()
    assert np.isfinite(batch["saliency"].numpy()).all()
    (train_batch,) = list(TrainPipeline(paths, [0.1, 0.5, 0.9], config).epoch_dataset(0, 3, 1))
    by_id = dict(zip(train_batch["image_id"].numpy(), train_batch["crops"].numpy()))
    for index, colour in enumerate(colours):
        np.testing.assert_array_equal(by_id[index], np.broadcast_to(colour, by_id[index].shape))
    assert np.isfinite(train_batch["saliency"].numpy()).all()


def test_one_pixel_wide_image_crops_hold_only_its_pixels():
    from keras_lmiqa import crops

    row = np.arange(21, dtype=np.uint8).reshape(1, 7, 3) * 10 + 5  # no zero pixel anywhere
    windows = crops.grid_windows(1, 7, 16, (1.0, 0.5), 2)
    cut = crops.cut_crops(tf.constant(row[None]), windows[None], 16).numpy()
    assert (cut > 0).all()


def test_training_evaluation_and_serving_see_the_same_rotated_image(untrained_export, untrained_model, tmp_path):
    from keras_lmiqa.loading import read_run_record

    pixels = photo(48, 80)
    contents = exif_jpeg(pixels, 6)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(contents)
    stored = tf.io.decode_jpeg(contents, dct_method="INTEGER_ACCURATE")  # as stored: sideways
    upright = _pillow_oriented(stored.numpy(), 6)
    config, _, _ = read_run_record(os.path.join(os.path.dirname(untrained_model), "config.json"))
    # training: the pipeline's decoded element is the upright image
    element = TrainPipeline([str(path)], [0.5], config)._prepare(tf.constant(str(path)), 0.5, 0)
    np.testing.assert_array_equal(element["image"].numpy(), upright)
    # serving and evaluation: the encoded file scores as its upright pixels do
    loaded = tf.saved_model.load(untrained_export)
    by_bytes = loaded.signatures["serving_default"](images=tf.constant([contents]))["score"].numpy()
    by_pixels = loaded.signatures["score_pixels"](pixels=tf.constant(upright[None]))["score"].numpy()
    sideways = loaded.signatures["score_pixels"](pixels=stored[None])["score"]
    np.testing.assert_allclose(by_bytes, by_pixels, atol=1e-6)
    assert abs(float(sideways.numpy()[0]) - float(by_bytes[0])) > 1e-4  # orientation changes the score
    import keras

    model = keras.saving.load_model(untrained_model)
    np.testing.assert_allclose(predict_quality(model, [str(path)], config), by_bytes, atol=1e-5)


def test_a_gif_frame_larger_than_its_screen_is_refused_before_decoding(untrained_model, tmp_path, capsys):
    from crafted import gif_with_large_frame

    from keras_lmiqa.cli import main
    from keras_lmiqa.image_io import gif_pixels
    from keras_lmiqa.scorer import load_scorer

    bomb = gif_with_large_frame(16, 3000)  # the header says 16x16; the frame 3000x3000
    assert len(bomb) < 50 and gif_pixels(bomb) == 16 * 16 + 3000 * 3000
    scorer = load_scorer(untrained_model)  # max_pixels 4,000,000
    with pytest.raises(ImageError, match=r"^cannot score images\[0\] \(bytes\): image exceeds the pixel limit: its "
                                         r"GIF screen and frames hold 9000256 pixels, above max_pixels=4000000$"):
        scorer.run([bomb])
    path = tmp_path / "bomb.gif"
    path.write_bytes(bomb)
    assert main(["score", "--model", untrained_model, str(path)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"lmiqa score: error: cannot score {path}: image exceeds the pixel limit: its GIF screen and "
                     "frames hold 9000256 pixels, above max_pixels=4000000"]
