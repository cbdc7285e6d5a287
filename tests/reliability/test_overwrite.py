"""A killed `--overwrite` export never takes the model offline, and a rerun recovers.

An overwrite exchanges the folders in one `renameat2(RENAME_EXCHANGE)`, so SIGKILL at
any point leaves a version folder for the running server. The kills
here are injected at exact points, no timing luck: a subprocess monkeypatches the
export's own steps to SIGKILL itself there, after recording what the export folder
held. (`strace -f -e inject=renameat2:signal=SIGKILL:when=1` kills the same point from
outside, but tracing every syscall of TensorFlow takes minutes.)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

KILLED_EXPORT = """
import json, os, signal, sys
from keras_lmiqa.export import versions
from keras_lmiqa.cli import main

point, base, model = sys.argv[1:4]

def observe(label):
    version = os.path.join(base, "1", "saved_model.pb")
    print(json.dumps({"at": label, "entries": sorted(os.listdir(base)), "version": os.path.isfile(version)}),
          flush=True)

def die(label):
    observe(label)
    os.kill(os.getpid(), signal.SIGKILL)

if point == "before-exchange":
    def exchange(temporary, final):
        die("before")
    versions._exchange = exchange
elif point == "after-exchange":
    real_exchange = versions._exchange
    def exchange(temporary, final):
        observe("before")
        assert real_exchange(temporary, final)
        die("after")
    versions._exchange = exchange
elif point == "between-renames":  # a file system without RENAME_EXCHANGE: the two-rename fallback
    real_set_aside = versions._set_aside
    versions._exchange = lambda temporary, final: False
    def set_aside(final, previous):
        real_set_aside(final, previous)
        die("between")
    versions._set_aside = set_aside
sys.exit(main(["export", "--model", model, "--export-dir", base, "--version", "1", "--overwrite"]))
"""


@pytest.fixture()
def served(untrained_model, untrained_export, tmp_path):
    """(export folder with version 1 of model A, model A, model B) for an overwrite of version 1 by B."""
    from untrained import write_untrained_run

    base = tmp_path / "lmiqa"
    shutil.copytree(untrained_export, base / "1")
    return base, untrained_model, write_untrained_run(str(tmp_path / "b"), seed=1)


def _source(version_dir) -> str:
    from keras_lmiqa.loading import read_metadata

    return read_metadata(str(version_dir))["source_model"]


def _killed_export(point: str, base, model) -> list[dict]:
    result = subprocess.run([sys.executable, "-c", KILLED_EXPORT, point, str(base), model], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _scores(path, image) -> float:
    from keras_lmiqa.scorer import load_scorer

    return float(load_scorer(str(path)).score([image])[0])


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from crafted import photo, png

    path = tmp_path_factory.mktemp("photo") / "photo.png"
    path.write_bytes(png(photo(40, 50)))
    return str(path)


def test_overwrite_killed_after_the_exchange_keeps_a_version_and_a_rerun_cleans(served, photo, caplog):
    from keras_lmiqa.export import export_model

    base, model_a, model_b = served
    before, after = _killed_export("after-exchange", base, model_b)
    # Version 1 was there just before the exchange and right after it: one syscall swaps them.
    assert before["at"] == "before" and before["version"] and "1" in before["entries"]
    assert after["at"] == "after" and after["version"]
    leftovers = [name for name in os.listdir(base) if name.startswith(".tmp-")]
    assert sorted(os.listdir(base)) == sorted(["1", *leftovers]) and len(leftovers) == 1
    assert _source(base / "1") == model_b  # the new version is in place
    assert _source(base / leftovers[0]) == model_a  # the old one, left by the kill
    assert 0.0 <= _scores(base, photo) <= 1.0

    caplog.set_level(logging.INFO, logger="keras_lmiqa.export")
    assert export_model(model_b, str(base), version=1, overwrite=True) == str(base / "1")
    assert f"removed {leftovers[0]} (left by a killed export)" in caplog.text
    assert os.listdir(base) == ["1"] and _source(base / "1") == model_b


def test_fallback_killed_between_the_renames_is_restored_by_a_rerun(served, photo, caplog, capsys):
    """Without RENAME_EXCHANGE the overwrite is two renames; killed between them, version 1
    is gone until the next export moves `.tmp-old-1-*/previous` back."""
    from keras_lmiqa.cli import main

    base, model_a, model_b = served
    old_score = _scores(base, photo)
    (between,) = _killed_export("between-renames", base, model_b)
    assert between["at"] == "between" and not between["version"]
    aside = [name for name in os.listdir(base) if name.startswith(".tmp-old-1-")]
    new = [name for name in os.listdir(base) if name.startswith(".tmp-1-")]
    assert len(aside) == 1 and len(new) == 1 and sorted(os.listdir(base)) == sorted(aside + new)
    assert _source(base / aside[0] / "previous") == model_a

    caplog.set_level(logging.INFO, logger="keras_lmiqa.export")
    assert main(["export", "--model", model_b, "--export-dir", str(base), "--version", "1", "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == str(base / "1")
    assert f"restored version 1 from {aside[0]}/previous (an overwrite was killed)" in caplog.text
    assert f"removed {new[0]} (left by a killed export)" in caplog.text
    assert os.listdir(base) == ["1"] and _source(base / "1") == model_b
    assert _scores(base, photo) != old_score  # model B's weights serve now


def test_overwrite_killed_entering_the_exchange_keeps_the_old_version(served, capsys):
    """Killed on entering the exchange: the old version stays in place, the complete new
    folder is a leftover that `lmiqa export --clean` removes."""
    from keras_lmiqa.cli import main

    base, model_a, model_b = served
    (before,) = _killed_export("before-exchange", base, model_b)
    assert before["at"] == "before" and before["version"]
    leftovers = [name for name in os.listdir(base) if name.startswith(".tmp-1-")]
    assert sorted(os.listdir(base)) == sorted(["1", *leftovers]) and len(leftovers) == 1
    assert _source(base / "1") == model_a  # the old version serves on
    assert _source(base / leftovers[0]) == model_b  # complete: killed at the move, not while writing

    assert main(["export", "--export-dir", str(base), "--clean"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"removed {leftovers[0]} (left by a killed export)"]
    assert os.listdir(base) == ["1"] and _source(base / "1") == model_a


def test_recover_exports_spares_running_exports(tmp_path, capsys):
    """Only folders no live export holds (flock) are touched; other names are never touched."""
    from keras_lmiqa.cli import main
    from keras_lmiqa.export import recover_exports

    base = tmp_path / "lmiqa"
    for folder in ("1", "notes", ".tmp-probe-x", ".tmp-2-dead", ".tmp-old-3-dead/previous", ".tmp-old-1-dead/previous",
                   ".tmp-4-live"):
        (base / folder).mkdir(parents=True)
    (base / ".tmp-old-3-dead" / "previous" / "saved_model.pb").write_bytes(b"version 3")
    (base / ".tmp-5-file").write_text("a file, not a folder")
    live = os.open(base / ".tmp-4-live", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(live, fcntl.LOCK_EX)  # as a running export holds its folder
        assert recover_exports(str(base)) == [
            "removed .tmp-2-dead (left by a killed export)",
            "removed .tmp-old-1-dead (left by a killed export)",  # version 1 exists: nothing to restore
            "restored version 3 from .tmp-old-3-dead/previous (an overwrite was killed)",
            "removed .tmp-old-3-dead (left by a killed export)",
        ]
        assert sorted(os.listdir(base)) == [".tmp-4-live", ".tmp-5-file", ".tmp-probe-x", "1", "3", "notes"]
        assert (base / "3" / "saved_model.pb").read_bytes() == b"version 3"
        assert recover_exports(str(base)) == []
    finally:
        os.close(live)  # the export "died": its folder is a leftover now
    assert main(["export", "--export-dir", str(base), "--clean"]) == 0
    assert capsys.readouterr().out.splitlines() == ["removed .tmp-4-live (left by a killed export)"]
    assert main(["export", "--export-dir", str(base), "--clean"]) == 0
    assert capsys.readouterr().out.strip() == f"nothing to clean in {base}"


def test_two_rename_fallback_swaps_or_puts_the_old_version_back(tmp_path, monkeypatch):
    """Without RENAME_EXCHANGE: the new folder replaces N and nothing is left over; if the
    second rename fails, N is the old version again, and nothing is left over either."""
    from keras_lmiqa.errors import ModelError
    from keras_lmiqa.export import versions

    base = tmp_path / "lmiqa"

    def folders(old: str, new: str):
        shutil.rmtree(base, ignore_errors=True)
        (base / "1").mkdir(parents=True)
        (base / "1" / "saved_model.pb").write_text(old)
        (base / ".tmp-1-new").mkdir()
        (base / ".tmp-1-new" / "saved_model.pb").write_text(new)

    monkeypatch.setattr(versions, "_exchange", lambda temporary, final: False)
    folders("old", "new")
    versions.move_into_place(str(base / ".tmp-1-new"), str(base / "1"), overwrite=True)
    assert os.listdir(base) == ["1"] and (base / "1" / "saved_model.pb").read_text() == "new"

    folders("old", "new")
    real_rename = os.rename

    def failing_rename(source, target):
        if str(source).endswith(".tmp-1-new"):
            raise OSError(28, "No space left on device")
        real_rename(source, target)

    monkeypatch.setattr(versions.os, "rename", failing_rename)
    with pytest.raises(ModelError, match="cannot move the export into place at .*No space left on device"):
        versions.move_into_place(str(base / ".tmp-1-new"), str(base / "1"), overwrite=True)
    monkeypatch.undo()
    assert sorted(os.listdir(base)) == [".tmp-1-new", "1"]  # the caller removes its own temporary folder
    assert (base / "1" / "saved_model.pb").read_text() == "old"
