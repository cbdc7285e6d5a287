"""One epoch's bookkeeping (training.EpochLog): loss means, progress bar or log lines."""

import logging
import types

import pytest
import tensorflow as tf

from keras_lmiqa.config import TrainConfig
from keras_lmiqa.training import loop as training
from keras_lmiqa.training.step import LOSS_NAMES


def _log(show_bar: bool, steps: int) -> training.EpochLog:
    trainer = types.SimpleNamespace(schedule=lambda step: 0.001)
    return training.EpochLog(TrainConfig(batch_size=4), trainer, tf.summary.create_noop_writer(), steps, show_bar)


def _terms(value: float) -> dict:
    return {name: tf.constant(value * (i + 1), tf.float32) for i, name in enumerate(LOSS_NAMES)}


def test_loss_means_restart_each_epoch():
    log = _log(False, steps=3)
    log.start(0, 0)
    for step, value in enumerate((1.0, 2.0, 6.0)):
        log.update(step, _terms(value))
    assert log.averages()["loss"] == pytest.approx(3.0) and log.averages()["rank"] == pytest.approx(3.0 * 3)
    log.start(1, 0)
    log.update(0, _terms(0.5))
    assert log.averages()["loss"] == pytest.approx(0.5)
    log.start(2, 0)
    assert log.averages()["loss"] == 0.0  # no step ran (a run resumed at the epoch's end)


def test_a_terminal_gets_a_bar_and_a_log_gets_a_line_every_100_steps(capsys, caplog):
    bar = _log(True, steps=4)
    bar.start(0, 1)  # resumed after step 1
    for step in range(1, 4):
        bar.update(step, _terms(0.25))
    out = capsys.readouterr().out
    assert "4/4" in out and "loss: 0.2500" in out
    lines = _log(False, steps=250)
    with caplog.at_level(logging.INFO, logger="keras_lmiqa.training"):
        lines.start(0, 0)
        for step in range(250):
            lines.update(step, _terms(1.0))
    progress = [r.getMessage() for r in caplog.records if "images/s" in r.getMessage()]
    assert [m.split(" loss")[0] for m in progress] == ["epoch 1 step 100/250", "epoch 1 step 200/250"]
    assert capsys.readouterr().out == ""
