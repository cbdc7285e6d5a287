"""The development server: request validation, version polling, retries, CLI process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
from polling import wait_for
from serving_helpers import SERVER_KINDS, free_port, start_local, start_server

from keras_lmiqa.serving import Client, RequestError, RestClient

MAX_REQUEST_BYTES = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def small_server(fake_export):
    """Local server with a 2 MiB request limit and no polling."""
    running = start_local(fake_export, poll_seconds=0, max_request_bytes=MAX_REQUEST_BYTES)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(small_server):
    """The official tensorflow-serving-api stub, to send requests the Client would not."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(small_server.grpc_target,
                                    [("grpc.max_send_message_length", 64 * 1024 * 1024)])
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def _request(inputs: dict, signature: str = "serving_default"):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lmiqa"
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


@pytest.mark.parametrize("inputs, signature, code, words", [
    ({"image": [b"x"]}, "serving_default", "INVALID_ARGUMENT", "images"),
    ({"images": np.float32([1.0, 2.0])}, "serving_default", "INVALID_ARGUMENT", "string"),
    ({"images": np.array([], dtype=object).astype(bytes)}, "serving_default", "INVALID_ARGUMENT", "empty"),
    ({"images": [b"x"] * 65}, "serving_default", "INVALID_ARGUMENT", "64"),
    ({"images": [[b"x"]]}, "serving_default", "INVALID_ARGUMENT", "rank 1"),
    ({"pixels": np.zeros((1, 4, 4, 4), np.uint8)}, "score_pixels", "INVALID_ARGUMENT", "[-1, -1, -1, 3]"),
    ({"images": [b"x"]}, "no_such_signature", "FAILED_PRECONDITION", "no_such_signature"),
    ({"images": [b"x" * (3 * 1024 * 1024)]}, "serving_default", "RESOURCE_EXHAUSTED", ""),
])
def test_bad_requests_get_a_status_and_the_server_stays_up(stub, photo_paths, inputs, signature, code, words):
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(_request(inputs, signature), timeout=20)
    assert caught.value.code().name == code
    assert words in caught.value.details()
    response = stub.Predict(_request({"images": [open(photo_paths[0], "rb").read()]}), timeout=20)
    assert response.model_spec.version.value == 2 and response.outputs["score"].tensor_shape.dim[0].size == 1


def test_rest_errors(small_server, photo_paths):
    url = small_server.rest_url + "/v1/models/lmiqa:predict"

    def post(body: bytes, path: str = url):
        request = urllib.request.Request(path, data=body, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=20)
        return caught.value.code, json.loads(caught.value.read())["error"]

    assert post(b"{not json")[0] == 400
    status, message = post(json.dumps({"instances": [{"image": {"b64": "AAAA"}}]}).encode())
    assert status == 400 and "images" in message
    assert post(json.dumps({"instances": []}).encode())[0] == 400
    assert post(b'{"instances": ["' + b"A" * (3 * 1024 * 1024) + b'"]}')[0] == 413
    assert post(b"{}", small_server.rest_url + "/v1/models/nope:predict")[0] == 404
    assert post(b"{}", small_server.rest_url + "/v2/whatever")[0] == 404
    # columnar "inputs" format, as TF Serving accepts it
    import base64

    body = {"signature_name": "serving_default",
            "inputs": {"images": [{"b64": base64.b64encode(open(photo_paths[0], "rb").read()).decode()}]}}
    with urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(body).encode()), timeout=20) as response:
        outputs = json.loads(response.read())["outputs"]
    assert set(outputs) >= {"score", "mos", "crop_scores", "crop_weights"} and len(outputs["score"]) == 1


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_new_version_is_picked_up_without_failing_requests(kind, fake_export, photo_paths, tmp_path):
    from fake_export import write_fake_export

    export_dir = str(tmp_path / "lmiqa")
    shutil.copytree(fake_export, export_dir)
    running = start_server(kind, export_dir, poll_seconds=0.2 if kind == "local" else 1)
    failures, answers, stop = [], [], threading.Event()

    def keep_scoring():
        with Client(running.grpc_target, timeout=20) as client:
            while not stop.is_set():
                try:
                    answers.append(client.score(photo_paths[:2]))
                except RequestError as error:
                    failures.append(error)

    thread = threading.Thread(target=keep_scoring)
    thread.start()
    try:
        with Client(running.grpc_target) as client:
            base = client.score(photo_paths[:2], version=1)
            write_fake_export(export_dir, 3, 0.25)  # via .tmp-3, renamed into place
            assert wait_for(lambda: 3 in [s["version"] for s in client.status()], timeout=20)
            np.testing.assert_allclose(client.score(photo_paths[:2]), base * 0.25, atol=1e-5)
            assert client.metadata()["version"] == 3
            if kind == "local":  # a removed version folder is unloaded
                shutil.rmtree(os.path.join(export_dir, "1"))
                assert wait_for(lambda: 1 not in [s["version"] for s in client.status()], timeout=10)
    finally:
        stop.set()
        thread.join()
        running.stop()
    assert not failures and len(answers) > 1


def test_client_retries_unavailable_until_the_server_starts(fake_export, photo_paths):
    port = free_port()
    holder = {}

    def start_later():
        time.sleep(0.8)
        holder["server"] = start_local(fake_export, port=port, rest_port=None, poll_seconds=0)

    starter = threading.Thread(target=start_later)
    starter.start()
    try:
        with Client(f"127.0.0.1:{port}", retries=6, backoff=0.2, timeout=10) as client:
            calls, send = [], client._predict_rpc

            def counting(request, timeout=None):
                calls.append(time.monotonic())
                return send(request, timeout=timeout)

            client._predict_rpc = counting
            scores = client.score(photo_paths[:1])
        assert scores.shape == (1,) and len(calls) > 1
    finally:
        starter.join()
        if "server" in holder:
            holder["server"].stop()


def test_client_does_not_retry_invalid_argument_and_gives_up_on_unavailable(small_server):
    with Client(small_server.grpc_target, retries=3, backoff=0.01) as client:
        calls, send = [], client._predict_rpc
        client._predict_rpc = lambda request, timeout=None: (calls.append(1), send(request, timeout=timeout))[1]
        with pytest.raises(RequestError) as caught:
            client.score([b"not an image"])
        assert caught.value.code == "INVALID_ARGUMENT" and len(calls) == 1
    with Client(f"127.0.0.1:{free_port()}", retries=2, backoff=0.01, timeout=2) as client:
        with pytest.raises(RequestError) as caught:
            client.score([b"x"])
        assert caught.value.code == "UNAVAILABLE"
    with pytest.raises(RequestError) as caught:
        RestClient(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01).status()
    assert caught.value.code == "UNAVAILABLE"


def test_cli_serve_subprocess_score_and_sigterm(fake_export, photo_paths, tmp_path, capsys, monkeypatch):
    from keras_lmiqa.cli import main

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(55):  # > 50: progress on stderr
        shutil.copy(photo_paths[i % len(photo_paths)], folder / f"img{i:02d}{os.path.splitext(photo_paths[i % 8])[1]}")
    (folder / "notes.txt").write_text("not an image")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_lmiqa.cli", "serve", "--export-dir", fake_export, "--port", "0",
         "--rest-port", "0", "--poll-seconds", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"serving lmiqa versions \[1, 2\] on 127\.0\.0\.1:(\d+) and REST on http://127\.0\.0\.1:(\d+)",
                          line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        target = f"127.0.0.1:{match[1]}"
        capsys.readouterr()
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress shows on a terminal only
        csv_path, json_path = tmp_path / "scores.csv", tmp_path / "scores.json"
        assert main(["score", "--server", target, str(folder), "--csv", str(csv_path)]) == 0
        assert main(["score", "--server", target, photo_paths[0], "--json", str(json_path)]) == 0
        assert main(["score", "--server", target, photo_paths[0], photo_paths[1]]) == 0
        captured = capsys.readouterr()
        assert "scored 55/55" in captured.err
        table = captured.out.splitlines()
        assert table[0].split() == ["path", "score", "mos"] and table[1].startswith(photo_paths[0])
        rows = csv_path.read_text().splitlines()
        assert rows[0] == "path,score,mos,error" and len(rows) == 56
        assert rows[1].startswith(str(folder / "img00"))
        served = json.loads(json_path.read_text())[0]
        assert served["path"] == photo_paths[0] and 0 <= served["score"] <= 1
        with Client(target) as client:
            assert served["score"] == pytest.approx(float(client.score(photo_paths[:1])[0]), abs=1e-6)
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"not a png")
        assert main(["score", "--server", target, str(bad)]) == 2
        assert main(["score", "--server", target, str(bad), photo_paths[0], "--skip-errors"]) == 1
        assert "1 of 2 images could not be scored" in capsys.readouterr().err
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 0


def test_client_modules_load_no_model_or_training_code():
    # `import keras_lmiqa` registers the Keras layers (so load_model works after it);
    # the clients themselves must not pull in model building, training or export.
    code = ("import sys; import keras_lmiqa.serving as s; s.Client; s.RestClient; "
            "from keras_lmiqa.serving import protos; protos.messages(); import keras_lmiqa.cli.score_cmd; "
            "heavy = ('keras_lmiqa.models.branch', 'keras_lmiqa.training', 'keras_lmiqa.export', "
            "'keras_lmiqa.pipeline'); "
            "bad = [m for m in sys.modules if m.startswith(heavy)]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_client_protos_are_wire_compatible_with_tensorflow_serving():
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

    from keras_lmiqa.serving import protos

    msgs = protos.messages()
    ours = msgs.PredictRequest()
    ours.model_spec.name = "lmiqa"
    ours.model_spec.version.value = 7
    ours.inputs["images"].CopyFrom(protos.make_tensor_proto(np.array([b"a", b"bc"], dtype=object)))
    theirs = predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert theirs.model_spec.version.value == 7
    np.testing.assert_array_equal(tf.make_ndarray(theirs.inputs["images"]), [b"a", b"bc"])
    for value in (np.float32([[1.5, 2.0]]), np.uint8([[[1, 2, 3]]])):
        back = protos.to_numpy(msgs.TensorProto.FromString(tf.make_tensor_proto(value).SerializeToString()))
        np.testing.assert_array_equal(back, value)
        assert back.dtype == value.dtype
    field = tf.make_tensor_proto([0.25, 0.5], dtype=tf.float32)
    field.ClearField("tensor_content")
    field.float_val.extend([0.25, 0.5])  # the typed-field form TF Serving answers with
    np.testing.assert_array_equal(protos.to_numpy(msgs.TensorProto.FromString(field.SerializeToString())),
                                  np.float32([0.25, 0.5]))
    status = get_model_status_pb2.GetModelStatusResponse()
    status.model_version_status.add(version=3, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ours_status = msgs.GetModelStatusResponse.FromString(status.SerializeToString())
    assert ours_status.model_version_status[0].version == 3
