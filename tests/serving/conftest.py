"""Serving fixtures: a fake two-version export, test images, and running servers.

`server` is parametrised over the server implementations present: always the
development server (`local`, in-process thread), plus TF Serving (`tfserving`) when a
`tensorflow_model_server` binary is on PATH. Every server binds 127.0.0.1 and is
stopped by its fixture.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pytest

TFS_BINARY = shutil.which("tensorflow_model_server")
SERVER_KINDS = ["local"] + (["tfserving"] if TFS_BINARY else [])
SCALES = {1: 1.0, 2: 0.5}  # fake export: version -> score scale


@dataclass
class RunningServer:
    kind: str
    export_dir: str
    grpc_target: str
    rest_url: str
    stop: object = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def fake_export(tmp_path_factory) -> str:
    """Export base folder with versions 1 (scale 1.0) and 2 (scale 0.5) of the fake model."""
    from fake_export import write_fake_export

    base = str(tmp_path_factory.mktemp("fake_exports") / "lmiqa")
    os.makedirs(base)
    for version, scale in SCALES.items():
        write_fake_export(base, version, scale)
    return base


@pytest.fixture(scope="session")
def photo_paths(tmp_path_factory) -> list[str]:
    """Eight real photographs (skimage) of different sizes, as PNG and JPEG files."""
    import cv2
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    paths = []
    for index, photo in enumerate(photos):
        for ext, size in ((".png", (96, 72)), (".JPG", (61, 83))):
            image = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
            path = str(folder / f"photo{index}{ext}")
            cv2.imwrite(path, image[..., ::-1])
            paths.append(path)
    return sorted(paths)


def reference_scores(version_dir: str, contents: list[bytes], signature: str = "serving_default") -> dict:
    """In-process outputs of a SavedModel signature (the ground truth for served scores)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(version_dir)
    outputs = loaded.signatures[signature](images=tf.constant(contents))
    return {key: np.asarray(value) for key, value in outputs.items()}


def start_local(export_dir: str, port: int = 0, rest_port: int | None = 0, **kwargs) -> RunningServer:
    from keras_lmiqa.serving.local_server import LocalServer

    server = LocalServer(export_dir, port=port, rest_port=rest_port, **kwargs).start()
    rest = f"http://127.0.0.1:{server.rest_port}" if server.rest_port else ""
    return RunningServer("local", export_dir, f"127.0.0.1:{server.port}", rest, stop=server.stop)


def start_tfserving(export_dir: str, poll_seconds: int = 1) -> RunningServer:
    """TF Serving on free loopback ports, serving every version (`all` policy)."""
    from keras_lmiqa.serving.client import Client

    folder = tempfile.mkdtemp(prefix="tfs-config-")
    config = os.path.join(folder, "models.config")
    with open(config, "w") as handle:
        handle.write('model_config_list { config { name: "lmiqa" base_path: "%s" model_platform: "tensorflow" '
                     'model_version_policy { all {} } } }\n' % os.path.abspath(export_dir))
    grpc_port, rest_port = free_port(), free_port()
    process = subprocess.Popen(
        [TFS_BINARY, f"--port={grpc_port}", f"--rest_api_port={rest_port}", f"--model_config_file={config}",
         f"--file_system_poll_wait_seconds={poll_seconds}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop():
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)

    target = f"127.0.0.1:{grpc_port}"
    try:
        with Client(target, timeout=2.0) as client:
            client.wait_until_available(timeout=60)
    except BaseException:
        stop()
        raise
    return RunningServer("tfserving", export_dir, target, f"http://127.0.0.1:{rest_port}", stop=stop)


def start_server(kind: str, export_dir: str, **kwargs) -> RunningServer:
    if kind == "local":
        return start_local(export_dir, **kwargs)
    return start_tfserving(export_dir, **{k: v for k, v in kwargs.items() if k == "poll_seconds"})


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(request, fake_export) -> RunningServer:
    running = start_server(request.param, fake_export)
    yield running
    running.stop()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
