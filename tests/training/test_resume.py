"""A training run killed with SIGKILL resumes when the same command is rerun."""

import json
import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _command(data_root, run_dir):
    return [sys.executable, "-m", "keras_lmiqa.cli", "train", "--dataset", "csv", "--data-root", data_root,
            "--dataset-option", "group_column=group", "--output-dir", run_dir, "--backbone", "tiny",
            "--weights", "none", "--crop-size", "32", "--crops", "3", "--positives", "1", "--batch-size", "4",
            "--epochs", "3", "--set", "head_units=16", "--set", "embedding_dim=8", "--set", "checkpoint_every=2",
            "--set", "val_fraction=0.25", "--set", "test_fraction=0.34"]


def test_killed_run_resumes_and_trains_each_step_once(toy_dataset, tmp_path):
    run_dir = str(tmp_path / "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(_command(toy_dataset, run_dir), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = os.path.join(run_dir, "history.json")
    deadline = time.time() + 240
    # Kill it once the first epoch is backed up and the second has begun.
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(history) and json.load(open(history))["epochs"]:
            time.sleep(1.0)
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(run_dir, "metrics.json"))
    killed = tf.train.load_checkpoint(os.path.join(run_dir, "backup"))
    first_sitting = killed.get_tensor("run_seconds/.ATTRIBUTES/VARIABLE_VALUE")
    resumed_epoch = int(killed.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    into_epoch = killed.get_tensor("epoch_seconds/.ATTRIBUTES/VARIABLE_VALUE")
    epoch_0_seconds = json.load(open(history))["epochs"][0]["seconds"]
    assert first_sitting > epoch_0_seconds > 0

    second_started = time.time()
    done = subprocess.run(_command(toy_dataset, run_dir), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    second_sitting = time.time() - second_started
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stderr
    saved = json.load(open(history))
    assert [e["epoch"] for e in saved["epochs"]] == [0, 1, 2]
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "backup"))
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    # Times add up over the sittings: the run's, and the resumed epoch's.
    assert first_sitting < metrics["train_seconds"] < first_sitting + second_sitting
    assert saved["epochs"][0]["seconds"] == epoch_0_seconds
    assert saved["epochs"][resumed_epoch]["seconds"] > into_epoch
    train_images = metrics["images"]["train"]
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 3 * (train_images // 4)
    assert metrics["test"]["n"] > 0
    # Both branches were validated every epoch; the exported one is validation's pick.
    assert all(set(e["val_branches"]) == {"student", "teacher"} for e in saved["epochs"])
    best = saved["best"]
    assert metrics["export_branch"] == best["branch"] == metrics["val"]["branch"]
    assert best["val"] == best["val_branches"][best["branch"]]
    pick = lambda m: m["srcc"] + m["plcc"]  # noqa: E731
    assert pick(best["val"]) == max(pick(m) for e in saved["epochs"] for m in e["val_branches"].values())


def test_validation_picks_the_better_branch(monkeypatch):
    from keras_lmiqa.config import TrainConfig
    from keras_lmiqa.training import loop as training

    scores = {"student": {"srcc": 0.5, "plcc": 0.6}, "teacher": {"srcc": 0.55, "plcc": 0.58}}
    monkeypatch.setattr(training, "evaluate_many",
                        lambda models, *args: {name: (scores[name], None) for name in models})
    trainer = type("T", (), {"branches": {"student": "S", "teacher": "T"}})()
    result = training._validate(trainer, [], None, TrainConfig())
    assert result["branch"] == "teacher" and result["val"] == scores["teacher"]
    fixed = training._validate(trainer, [], None, TrainConfig(export_branch="student"))
    assert fixed["branch"] == "student" and set(fixed["val_branches"]) == {"student"}


def test_rerun_with_other_settings_is_refused(toy_dataset, tmp_path):
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "config.json"), "w") as handle:
        json.dump({"config": {"epochs": 99}}, handle)
    result = subprocess.run(_command(toy_dataset, run_dir), cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lmiqa train: error:") and "different settings" in last and "epochs" in last
