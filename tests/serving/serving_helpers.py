"""Helpers shared by the serving tests: servers to start, reference scores, ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

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
        handle.write(f'model_config_list {{ config {{ name: "lmiqa" base_path: "{os.path.abspath(export_dir)}" '
                     'model_platform: "tensorflow" model_version_policy { all {} } } }\n')
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
