"""MirroredStrategy on two logical CPUs and MultiWorkerMirroredStrategy on two processes."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))


def _python(args, env=None, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


def test_mirrored_step_equals_single_device_step():
    result = _python([os.path.join(HERE, "mirrored_step.py"), "ema"])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["loss_single"]["rank"] > 0.1 and report["loss_single"]["contrastive"] > 0.1
    for name, value in report["loss_single"].items():
        assert report["loss_mirrored"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert report["student_moved"] > 1e-3  # the step did something ...
    assert report["student_diff"] < 1e-4  # ... and the same thing on both strategies
    assert report["teacher_diff"] < 1e-4  # the first EMA step copies the student (m_1 = 0)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_training_ends_with_identical_weights(toy_dataset, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run_dir = tmp_path / "run"
    args = ["-m", "keras_lmiqa.cli", "train", "--dataset", "csv", "--data-root", toy_dataset,
            "--dataset-option", "group_column=group", "--strategy", "multiworker", "--output-dir", str(run_dir),
            "--backbone", "tiny", "--weights", "none", "--crop-size", "32", "--crops", "3", "--positives", "1",
            "--batch-size", "4", "--epochs", "2", "--steps-per-epoch", "3", "--set", "head_units=16",
            "--set", "embedding_dim=8", "--set", "val_fraction=0.25", "--set", "test_fraction=0.34"]
    procs = [subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                              "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                       "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    outputs = [p.communicate(timeout=420) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    chief = tf.train.load_checkpoint(str(run_dir / "backup"))
    worker = tf.train.load_checkpoint(str(run_dir / ".worker-1" / "backup"))
    names = [n for n in chief.get_variable_to_shape_map() if n.startswith(("student/", "teacher/"))]
    assert len(names) > 20
    for name in names:
        np.testing.assert_array_equal(chief.get_tensor(name), worker.get_tensor(name), err_msg=name)
    assert chief.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 6  # 2 epochs x 3 steps
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["n"] > 0 and not (run_dir / ".worker-1" / "metrics.json").exists()
