"""The working size: large photos are scored downscaled (large JPEGs decoded at reduced size),
the spec field survives model.keras and the export, and models without one keep their windows."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_lmiqa import artifacts, working_size
from keras_lmiqa.crops import grid_window_count
from keras_lmiqa.errors import ModelError
from keras_lmiqa.image_io import decode_image, decode_image_reduced
from keras_lmiqa.inference_spec import NATIVE_RULE, WORKING_SIZE_RULE, InferenceSpec

MAX_PIXELS = 50_000_000


def _made_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour waves with a little fine texture, uint8."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    waves = np.stack([np.sin(rows / (7.0 + 5 * c) + c) * np.cos(cols / (11.0 + 3 * c) - c) for c in range(3)], -1)
    texture = np.random.default_rng(seed).normal(0.0, 6.0, (height, width, 3))
    return np.clip(np.round(127.5 + 90.0 * waves + texture), 0, 255).astype(np.uint8)


def _jpeg(pixels: np.ndarray, orientation: int = 1) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def _upscale(pixels: np.ndarray, factor: int) -> np.ndarray:
    image = Image.fromarray(pixels)
    return np.asarray(image.resize((image.width * factor, image.height * factor), Image.LANCZOS))


def test_working_shape_and_jpeg_ratio_of_camera_sizes():
    assert working_size.working_shape(3024, 4032, 512).numpy().tolist() == [384, 512]  # 12 MP phone photo
    assert working_size.working_shape(4000, 6000, 512).numpy().tolist() == [341, 512]  # 24 MP camera photo
    assert working_size.working_shape(512, 512, 512).numpy().tolist() == [512, 512]
    assert working_size.working_shape(300, 200, 512).numpy().tolist() == [300, 200]  # never upscaled
    assert working_size.working_shape(3024, 4032, 0).numpy().tolist() == [3024, 4032]  # no working size
    # The largest libjpeg reduction whose long side stays >= 512: ceil(4032/8) = 504 is too small.
    assert int(working_size.jpeg_ratio(3024, 4032, 512)) == 4
    assert int(working_size.jpeg_ratio(4000, 6000, 512)) == 8  # 750 px
    assert int(working_size.jpeg_ratio(700, 1000, 512)) == 1  # 500 px at 1/2 would be too small
    assert int(working_size.jpeg_ratio(3024, 4032, 0)) == 1


def test_a_large_jpeg_is_decoded_at_reduced_size_with_its_orientation():
    photo = _made_photo(1800, 2400)
    contents = _jpeg(photo)
    pixels, full_size = decode_image_reduced(contents, MAX_PIXELS, lambda h, w: working_size.jpeg_ratio(h, w, 256))
    assert pixels.shape == (225, 300, 3) and full_size.numpy().tolist() == [1800, 2400]  # 1/8 scale
    working, full_size = working_size.decode_working(contents, MAX_PIXELS, 256)
    assert working.shape == (192, 256, 3) and full_size.numpy().tolist() == [1800, 2400]
    # The reduced decode looks like the antialiased downscale of the full decode.
    from_full = working_size.to_working_size(decode_image(contents, MAX_PIXELS), 256)
    assert np.abs(working.numpy().astype(float) - from_full.numpy()).mean() < 2.0
    # EXIF orientation 6 (rotate 90 clockwise) still applies to the reduced decode.
    turned, turned_size = working_size.decode_working(_jpeg(photo, orientation=6), MAX_PIXELS, 256)
    assert turned.shape == (256, 192, 3) and turned_size.numpy().tolist() == [2400, 1800]
    assert np.abs(turned.numpy().astype(float) - np.rot90(working.numpy(), -1)).mean() < 1.0


def test_other_formats_decode_whole_and_the_pixel_limit_still_holds():
    photo = _made_photo(600, 800)
    png = tf.io.encode_png(photo).numpy()
    pixels, full_size = decode_image_reduced(png, MAX_PIXELS, lambda h, w: working_size.jpeg_ratio(h, w, 128))
    assert pixels.shape == (600, 800, 3) and full_size.numpy().tolist() == [600, 800]
    assert working_size.decode_working(png, MAX_PIXELS, 128)[0].shape == (96, 128, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="exceeds the pixel limit"):
        working_size.decode_working(_jpeg(photo), 400_000, 128)  # declared 480,000 pixels


def test_small_images_are_left_bit_for_bit():
    photo = _made_photo(200, 300)
    assert working_size.to_working_size(photo, 512).numpy().tobytes() == photo.tobytes()
    contents = _jpeg(photo)
    assert (working_size.decode_working(contents, MAX_PIXELS, 512)[0].numpy().tobytes()
            == decode_image(contents, MAX_PIXELS).numpy().tobytes())


def _spec(working_long_side: int = 0) -> InferenceSpec:
    return InferenceSpec(crop_size=32, scales=(1.0, 0.5), grid_size=2, saliency_long_side=32, max_pixels=4_000_000,
                         working_long_side=working_long_side)


def test_the_spec_field_its_rule_and_old_records():
    spec = _spec(128)
    assert spec.window_rule == WORKING_SIZE_RULE and InferenceSpec.from_dict(spec.to_dict()) == spec
    # 4 x 4 native tiles, or 128 one-pixel windows along a 1 x 128 strip, plus 2 x 2 per scale.
    assert spec.max_windows == 128 + 2 * 4
    old = {k: v for k, v in _spec().to_dict().items() if k != "working_long_side"}
    assert old["window_rule"] == NATIVE_RULE
    assert InferenceSpec.from_dict(old) == _spec(0)  # a spec saved before the field: native pixels
    with pytest.raises(ModelError, match="does not match working_long_side=128"):
        InferenceSpec.from_dict({**spec.to_dict(), "window_rule": NATIVE_RULE})
    with pytest.raises(ModelError, match="working_long_side must be 0 or >= crop_size"):
        _spec(16)


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from keras_lmiqa.config import from_dict
    from keras_lmiqa.models import build_branch
    from keras_lmiqa.models.image_quality import image_quality_model

    config = from_dict({"backbone": "tiny", "weights": "none", "crop_size": 32, "head_units": 16,
                        "embedding_dim": 8, "scales": [1.0, 0.5], "saliency_long_side": 32})
    keras.utils.set_random_seed(3)
    return image_quality_model(build_branch(config), _spec(128), {"backbone": "tiny"})


def test_working_size_survives_model_keras_and_the_export(tiny_model, tmp_path):
    import keras

    from keras_lmiqa.export import export_model
    from keras_lmiqa.scorer import load_scorer

    path = str(tmp_path / "model.keras")
    artifacts.save_keras(tiny_model, path)
    loaded = keras.saving.load_model(path)
    assert loaded.spec == tiny_model.spec and loaded.spec.working_long_side == 128
    version = export_model(loaded, str(tmp_path / "export"))
    exported = load_scorer(version)
    assert exported.metadata["crops"]["working_long_side"] == 128
    assert exported.metadata["crops"]["window_rule"] == WORKING_SIZE_RULE
    photo = _made_photo(384, 512)
    contents = _jpeg(photo)
    got = exported.run([photo, contents])
    want = loaded.score_images([photo, contents])
    np.testing.assert_allclose(got["score"], want["score"], atol=1e-5)
    # Windows are cut on the 96 x 128 working image and reported in the photo's pixels.
    count = grid_window_count(96, 128, 32, (1.0, 0.5), 2)
    windows = got["crop_windows"][0]
    assert len(windows) == count and windows[:, 2].max() == 384 and windows[:, 3].max() == 512


def test_a_photo_scores_as_its_working_size_picture(tiny_model):
    photo = _made_photo(96, 128)
    scores = tiny_model.score_images([photo] + [_upscale(photo, f) for f in (2, 4, 8)])["score"]
    assert np.abs(scores[1:] - scores[0]).max() < 0.01
    # The exact form: a large image scores as its own downscale to the working size.
    big = _made_photo(600, 900, seed=1)
    small = working_size.to_working_size(big, 128).numpy()
    pair = tiny_model.score_images([big, small])["score"]
    assert pair[0] == pytest.approx(pair[1], abs=1e-6)


def test_a_model_without_a_working_size_tiles_native_pixels(tiny_model):
    from keras_lmiqa.models.image_quality import image_quality_model

    native = image_quality_model(tiny_model.branch, _spec(0))
    photo = _made_photo(96, 128)
    out = native.score_images([photo, _upscale(photo, 4)])
    counts = (out["crop_windows"][..., 2] > 0).sum(-1)
    assert counts.tolist() == [grid_window_count(96, 128, 32, (1.0, 0.5), 2),
                               grid_window_count(384, 512, 32, (1.0, 0.5), 2)]


def test_training_crops_see_the_working_size(tmp_path):
    from keras_lmiqa.config import from_dict
    from keras_lmiqa.pipeline import TrainPipeline

    config = from_dict({"backbone": "tiny", "weights": "none", "crop_size": 32, "working_long_side": 64})
    pipeline = TrainPipeline([os.fspath(tmp_path / "x.jpg")], [0.5], config)
    element = pipeline._decode({"contents": tf.constant(_jpeg(_made_photo(480, 640))), "quality": 0.5,
                                "image_id": 0})
    assert element["image"].shape == (48, 64, 3)
