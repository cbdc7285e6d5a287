"""The development server's memory budget: decoded pixels per request, read from the
image headers before anything is decoded, and requests scored at once."""

from __future__ import annotations

import struct
import threading
import time
import zlib

import cv2
import grpc
import numpy as np
import pytest
from serving_helpers import SCALES, start_local

from keras_lmiqa.serving import Client, RequestError, RestClient

BUDGET = 1_000_000


def flat_png(height: int, width: int, level: int = 90) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), level, np.uint8))
    assert ok
    return data.tobytes()


def declaring_png(height: int, width: int) -> bytes:
    """A 1x1 PNG whose IHDR says `height` x `width` (its CRC fixed): 70 bytes, no pixel data for that size."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def budget(fake_export):
    running = start_local(fake_export, poll_seconds=0, max_request_pixels=BUDGET)
    yield running
    running.stop()


def _predict(target: str, inputs: dict, signature: str = "serving_default"):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lmiqa"
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(target) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)


def test_request_above_the_pixel_budget_is_refused_naming_the_limit(budget):
    two = [flat_png(800, 700), flat_png(700, 800)]  # 560 000 pixels each, 1 120 000 together
    with pytest.raises(grpc.RpcError) as caught:
        _predict(budget.grpc_target, {"images": two})
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "hold 1120000 pixels, above the server limit of max_request_pixels=1000000" in caught.value.details()
    with pytest.raises(RequestError) as caught:  # REST: 429, the same message
        RestClient(budget.rest_url, timeout=60).predict({"images": np.array(two, dtype=object)})
    assert caught.value.code == "RESOURCE_EXHAUSTED" and "max_request_pixels=1000000" in caught.value.details
    with pytest.raises(grpc.RpcError) as caught:  # pixels: batch x height x width
        _predict(budget.grpc_target, {"pixels": np.zeros([2, 800, 700, 3], np.uint8)}, "score_pixels")
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "1120000 pixels" in caught.value.details()
    answer = _predict(budget.grpc_target, {"images": two[:1]})  # one of them fits
    assert answer.outputs["score"].float_val[0] == pytest.approx(SCALES[2] * 90 / 255, abs=1e-6)


def test_a_header_declaring_a_huge_image_is_refused_before_decoding(budget):
    bomb = declaring_png(30000, 30000)  # 2.7 GB of pixels if it were decoded
    assert len(bomb) < 100
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        _predict(budget.grpc_target, {"images": [bomb]})
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "hold 900000000 pixels" in caught.value.details() and time.monotonic() - started < 5


def test_client_splits_a_request_the_budget_refuses(budget):
    levels = [10, 60, 110, 160, 210]
    images = [flat_png(600, 600, level) for level in levels]  # 360 000 pixels each: two per request fit
    with Client(budget.grpc_target, timeout=60, batch_size=5) as client:
        calls, send = [], client._predict_rpc
        client._predict_rpc = lambda request, timeout=None: (calls.append(1), send(request, timeout=timeout))[1]
        scores = client.score(images)
        np.testing.assert_allclose(scores, [SCALES[2] * level / 255 for level in levels], atol=1e-6)
        assert len(calls) == 5  # all 5 refused; 0-1 scored; 2-4 refused; 2, then 3-4 scored
        with pytest.raises(RequestError) as caught:  # one image alone above the budget: no endless splitting
            client.score([flat_png(1100, 1000)])
        assert caught.value.code == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize("concurrent", [1, 2])
def test_requests_are_scored_at_most_max_concurrent_requests_at_once(fake_export, photo_paths, concurrent):
    running = start_local(fake_export, poll_seconds=0, rest_port=None, max_concurrent_requests=concurrent)
    server = running.stop.__self__
    servable = server.repository.get()
    original = servable.signatures["serving_default"]
    active, most, lock = [0], [0], threading.Lock()

    def counting(**inputs):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)  # long enough for the other clients' requests to arrive
        try:
            return original(**inputs)
        finally:
            with lock:
                active[0] -= 1

    servable.signatures["serving_default"] = counting
    errors = []

    def client_thread():
        try:
            with Client(running.grpc_target, timeout=60) as client:
                for _ in range(3):
                    client.score(photo_paths[:2])
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=client_thread) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        running.stop()
    assert not errors and most[0] == concurrent


def test_an_animated_gif_counts_every_frame(budget):
    import io

    from PIL import Image

    from keras_lmiqa.serving.predictor import gif_pixels

    frame = b"\x2c" + (0).to_bytes(4, "little") + (10).to_bytes(2, "little") + (10).to_bytes(2, "little") + b"\x00"
    frame += b"\x02\x02\x4c\x01\x00"  # LZW code size 2, one 2-byte sub-block, terminator
    tiny = b"GIF89a" + (10).to_bytes(2, "little") * 2 + b"\x00\x00\x00" + frame * 3 + b"\x3b"
    assert gif_pixels(tiny) == 100 + 3 * 100  # the screen and three 10x10 frames
    frames = [Image.fromarray(np.full((200, 200, 3), 4 * i, np.uint8)) for i in range(60)]
    data = io.BytesIO()
    frames[0].save(data, format="GIF", save_all=True, append_images=frames[1:])
    animated = data.getvalue()  # ~15 KB: TensorFlow's decoder reads all 60 frames
    with pytest.raises(grpc.RpcError) as caught:
        _predict(budget.grpc_target, {"images": [animated]})
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_request_pixels" in caught.value.details()
    assert gif_pixels(animated) >= 60 * 200 * 200
    data = io.BytesIO()
    frames[10].save(data, format="GIF")
    assert _predict(budget.grpc_target, {"images": [data.getvalue()]}).outputs["score"].float_val[0] > 0


def test_skip_errors_gives_an_image_above_the_budget_its_own_error_row(budget, tmp_path, capsys):
    import csv

    from keras_lmiqa.cli import main

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(flat_png(600, 600, 60))
    (folder / "b-huge.png").write_bytes(flat_png(1100, 1000, 90))  # 1 100 000 pixels: above the budget alone
    (folder / "c.png").write_bytes(flat_png(600, 600, 160))
    table = tmp_path / "scores.csv"
    assert main(["score", "--server", budget.grpc_target, str(folder), "--skip-errors", "--batch-size", "3",
                 "--timeout", "60", "--csv", str(table)]) == 1
    assert "1 of 3 images could not be scored" in capsys.readouterr().err
    rows = {row["path"].rsplit("/", 1)[1]: row for row in csv.DictReader(table.open())}
    assert float(rows["a.png"]["score"]) == pytest.approx(SCALES[2] * 60 / 255, abs=1e-4)
    assert float(rows["c.png"]["score"]) == pytest.approx(SCALES[2] * 160 / 255, abs=1e-4)
    assert rows["b-huge.png"]["score"] == "" and "max_request_pixels=1000000" in rows["b-huge.png"]["error"]
