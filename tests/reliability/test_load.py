"""The development server under load: 8 concurrent gRPC clients on 127.0.0.1, valid and
invalid requests mixed, a second version appearing mid-way.

Every valid request must be answered with the in-process score of the version that
answered it, every invalid one refused with its status, nothing else may fail, and the
resident memory must not keep growing. `LMIQA_LOAD_SECONDS` sets the duration (default
10 s, for CI); the figures are printed (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from crafted import jpeg, photo, png
from untrained import write_untrained_run

SECONDS = float(os.environ.get("LMIQA_LOAD_SECONDS", "10"))
CLIENTS = 8
MAX_BATCH = 4
MAX_REQUEST_BYTES = 1 << 20
RSS_GROWTH_LIMIT_MB = 200  # generous: a second loaded version and allocator slack, not a leak
TOLERANCE = 1e-5


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


IMAGES = [png(photo(60, 80)), jpeg(photo(72, 48)), png(photo(33, 90)), jpeg(photo(50, 50))]
VALID = {"one png": [0], "one jpeg": [1], "two": [2, 3], "three": [0, 1, 2]}
BAD = b"\x89PNG\r\n\x1a\n but the rest is not"
INVALID = {  # name: (inputs, expected status)
    "wrong key": ({"image": [IMAGES[0]]}, "INVALID_ARGUMENT"),
    "wrong dtype": ({"images": np.float32([1.0, 2.0])}, "INVALID_ARGUMENT"),
    "empty batch": ({"images": np.array([], dtype=object).astype(bytes)}, "INVALID_ARGUMENT"),
    "batch too large": ({"images": [IMAGES[1]] * (MAX_BATCH + 1)}, "INVALID_ARGUMENT"),
    "corrupt image": ({"images": [IMAGES[0], BAD]}, "INVALID_ARGUMENT"),
    "oversized": ({"images": [b"\xff\xd8\xff" + b"\0" * MAX_REQUEST_BYTES]}, "RESOURCE_EXHAUSTED"),
}


def _request(inputs: dict):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lmiqa"
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _expected(version_dir: str) -> dict:
    """In-process scores of every valid request, from the version's own signature."""
    signature = tf.saved_model.load(version_dir).signatures["serving_default"]
    return {name: signature(images=tf.constant([IMAGES[i] for i in idx]))["score"].numpy()
            for name, idx in VALID.items()}


@pytest.fixture(scope="module")
def versions(untrained_export, tmp_path_factory):
    """(export base with version 1, staged version 2 of other weights, expected scores per version)."""
    from keras_lmiqa.export import export_model

    base = tmp_path_factory.mktemp("load") / "lmiqa"
    shutil.copytree(untrained_export, base / "1")
    model = write_untrained_run(str(tmp_path_factory.mktemp("second_run")), seed=1)
    staged = export_model(model, str(tmp_path_factory.mktemp("staged") / "lmiqa"), version=2)
    expected = {1: _expected(str(base / "1")), 2: _expected(staged)}
    for name in VALID:  # the versions' scores differ by far more than the tolerance: a wrong version shows
        assert np.abs(expected[1][name] - expected[2][name]).min() > 10 * TOLERANCE, name
    return base, staged, expected


def test_concurrent_load_with_a_version_swap(versions):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from keras_lmiqa.serving.local_server import LocalServer

    base, staged, expected = versions
    server = LocalServer(str(base), port=0, poll_seconds=0.25, max_batch_size=MAX_BATCH,
                         max_request_bytes=MAX_REQUEST_BYTES, workers=CLIENTS).start()
    assert server.repository.get(1).warmed_up == 1  # the export's warm-up request ran before serving
    requests = {name: _request({"images": [IMAGES[i] for i in idx]}) for name, idx in VALID.items()}
    bad_requests = {name: _request(inputs) for name, (inputs, _) in INVALID.items()}
    records, problems, lock = [], [], threading.Lock()
    stop = threading.Event()
    started = time.monotonic()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}",
                                        [("grpc.max_send_message_length", 4 * MAX_REQUEST_BYTES)])
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            while not stop.is_set():
                valid = rng.random() < 0.7
                name = rng.choice(list(VALID if valid else INVALID))
                sent = time.monotonic()
                try:
                    response = stub.Predict(requests[name] if valid else bad_requests[name], timeout=60)
                    outcome, detail = "OK", response
                except grpc.RpcError as error:
                    outcome, detail = error.code().name, error.details()
                latency = time.monotonic() - sent
                row = (sent - started, valid, name, outcome, latency)
                if valid and outcome == "OK":
                    version = detail.model_spec.version.value
                    scores = tf.make_ndarray(detail.outputs["score"])
                    if not np.allclose(scores, expected[version][name], atol=TOLERANCE):
                        problems.append(f"{name} v{version}: {scores} != {expected[version][name]}")
                    row += (version,)
                elif valid:
                    problems.append(f"valid {name} failed: {outcome} {detail}")
                elif outcome != INVALID[name][1]:
                    problems.append(f"invalid {name}: {outcome} {detail}, expected {INVALID[name][1]}")
                elif not detail:
                    problems.append(f"invalid {name}: {outcome} without a message")
                with lock:
                    records.append(row)
        except Exception as error:  # noqa: BLE001 - any client-side surprise is a failure
            problems.append(f"client {seed}: {type(error).__name__}: {error}")
        finally:
            channel.close()

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(SECONDS * 0.2)
        rss_warm = _rss_mb()
        time.sleep(SECONDS * 0.2)
        swapped = time.monotonic() - started
        temporary = base / ".tmp-2-staging"  # the exporter's way: a hidden name, then one rename
        shutil.copytree(staged, temporary)
        os.rename(temporary, base / "2")
        while 2 not in server.versions() and time.monotonic() - started < swapped + 120:
            time.sleep(0.02)  # loading and warming up version 2 while version 1 serves
        published = time.monotonic() - started
        time.sleep(max(started + SECONDS - time.monotonic(), 2.0))  # at least 2 s of load on version 2
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        rss_end = _rss_mb()
        versions_served = server.versions()
    finally:
        stop.set()
        server.stop()

    assert problems == [], problems[:5]
    assert not any(thread.is_alive() for thread in threads)
    ok = [r for r in records if r[1]]
    refused = [r for r in records if not r[1]]
    latencies = np.array([r[4] for r in ok]) * 1000
    by_version = {v: sum(1 for r in ok if r[5] == v) for v in (1, 2)}
    figures = {
        "seconds": SECONDS, "clients": CLIENTS, "served": len(ok), "rejected": len(refused), "failed": len(problems),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "served_by_version": by_version, "swap_to_published_s": round(published - swapped, 2),
        "rss_warm_mb": round(rss_warm, 1), "rss_end_mb": round(rss_end, 1),
        "rejected_by_kind": {name: sum(1 for r in refused if r[2] == name) for name in INVALID},
    }
    print("\nserving load:", json.dumps(figures))
    assert versions_served == [1, 2]
    assert len(ok) >= CLIENTS and len(refused) >= CLIENTS
    assert by_version[1] > 0 and by_version[2] > 0
    # Requests sent once version 2 is published are answered by it.
    late = [r for r in ok if r[0] > published + 0.05]
    assert late and all(r[5] == 2 for r in late)
    assert rss_end - rss_warm < RSS_GROWTH_LIMIT_MB, figures
