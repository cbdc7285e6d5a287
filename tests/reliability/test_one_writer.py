"""One writer per run folder: a second training on a live run's folder is refused at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from keras_lmiqa import artifacts
from keras_lmiqa.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train_args(data_root: str, run_dir: str) -> list[str]:
    return ["train", "--dataset", "csv", "--data-root", data_root, "--dataset-option", "group_column=group",
            "--output-dir", run_dir, "--backbone", "tiny", "--weights", "none", "--crop-size", "32", "--crops", "3",
            "--positives", "1", "--batch-size", "4", "--epochs", "50", "--set", "head_units=16",
            "--set", "embedding_dim=8", "--set", "checkpoint_every=2"]


def test_second_training_on_a_live_run_folder_exits_2_naming_the_holder(toy_dataset, tmp_path, capsys):
    from keras_lmiqa.cli import main

    run_dir = str(tmp_path / "run")
    first = subprocess.Popen([sys.executable, "-m", "keras_lmiqa.cli", *_train_args(toy_dataset, run_dir)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:  # config.json: the run has its folder
            if os.path.exists(os.path.join(run_dir, "config.json")):
                break
            time.sleep(0.1)
        assert first.poll() is None and os.path.exists(os.path.join(run_dir, "config.json"))
        started = time.monotonic()
        assert main(_train_args(toy_dataset, run_dir)) == 2
        assert time.monotonic() - started < 5
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert lines == [f"lmiqa train: error: {run_dir} is in use by another training run (PID {first.pid}); "
                         "wait for it to end or choose another folder"]
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The OS dropped the killed run's lock: its rerun takes the folder (and resumes from backup/).
    lock = artifacts.lock_folder(run_dir, "a test")
    try:
        assert open(lock.path).read() == f"{os.getpid()}\n"
    finally:
        lock.release()


def test_lock_is_released_at_the_run_end_and_held_by_the_chief_only(tmp_path, monkeypatch):
    from keras_lmiqa.config import from_dict
    from keras_lmiqa.training import loop as training

    config = from_dict({"dataset": "csv", "output_dir": str(tmp_path / "run")})
    folder = training.open_run_folder(config, strategy=None)
    with pytest.raises(ConfigError, match=f"in use by another training run \\(PID {os.getpid()}\\)"):
        training.open_run_folder(config, strategy=None)
    monkeypatch.setattr(training, "is_chief", lambda strategy: False)
    worker = training.open_run_folder(config, strategy=None)  # a non-chief worker writes in its own folder
    assert worker.lock is None and worker.work_dir.startswith(os.path.join(folder.run_dir, ".worker-"))
    monkeypatch.undo()
    folder.release()
    training.open_run_folder(config, strategy=None).release()


def test_a_refused_settings_check_releases_the_lock(tmp_path):
    from keras_lmiqa.config import from_dict
    from keras_lmiqa.training import loop as training

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"config": {"epochs": 99}}')
    config = from_dict({"dataset": "csv", "output_dir": str(run_dir)})
    with pytest.raises(ConfigError, match="different settings"):
        training.open_run_folder(config, strategy=None)
    artifacts.lock_folder(str(run_dir), "a test").release()
