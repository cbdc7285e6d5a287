"""Atomic writes: readers never see partial files; published files are not private."""

import os
import stat

import pytest

from keras_lmiqa import artifacts

_UMASK_PRIVATE = artifacts._UMASK & 0o040


def test_write_json_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "metrics.json"
    artifacts.write_json(str(path), {"srcc": 0.5})
    artifacts.write_json(str(path), {"srcc": 0.75})
    assert artifacts.read_json(str(path)) == {"srcc": 0.75}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    artifacts.write_json(str(path), {"srcc": 0.5})
    with pytest.raises(ValueError):
        artifacts.write_json(str(path), {"srcc": float("nan")})  # allow_nan=False
    assert artifacts.read_json(str(path)) == {"srcc": 0.5}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_published_files_follow_the_umask_not_mkstemp_private_mode(tmp_path):
    path = tmp_path / "report.html"
    with artifacts.atomic_path(str(path)) as temporary:
        with open(temporary, "w") as handle:
            handle.write("<html></html>")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o666 & ~artifacts._UMASK
    if not _UMASK_PRIVATE:
        assert mode & stat.S_IRGRP  # mkstemp alone would leave 0600
