"""Atomic writes: readers never see partial files; published files are not private. Reads of
regular files only, under a size limit; output paths checked before any work; checksums."""

import os
import re
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


# ---------------------------------------------------------------- safe reads, writable targets


def test_read_regular_file_refuses_special_files_without_blocking(tmp_path):
    from keras_lmiqa.errors import ImageError

    fifo = tmp_path / "b.jpg"
    os.mkfifo(fifo)  # no writer: a plain open() would block here forever
    with pytest.raises(ImageError, match=f"cannot read image {fifo}: a FIFO, not a regular file; not read"):
        artifacts.read_regular_file(str(fifo), 100, "image")
    zero = tmp_path / "z.jpg"
    zero.symlink_to("/dev/zero")  # stat size 0, endless bytes
    with pytest.raises(ImageError, match="a character device, not a regular file"):
        artifacts.read_regular_file(str(zero), 100)
    assert artifacts.check_regular_file(str(zero), 100) == f"cannot read file {zero}: a character device, " \
                                                           "not a regular file; not read"
    with pytest.raises(ImageError, match="a folder, not a regular file"):
        artifacts.read_regular_file(str(tmp_path), 100)
    with pytest.raises(ImageError, match="No such file or directory"):
        artifacts.read_regular_file(str(tmp_path / "missing"), 100)


def test_read_regular_file_size_limit_and_symlinks(tmp_path):
    from keras_lmiqa.errors import ImageError

    path = tmp_path / "a.png"
    path.write_bytes(b"x" * 100)
    link = tmp_path / "link.png"
    link.symlink_to(path)
    assert artifacts.read_regular_file(str(link), 100) == b"x" * 100  # a link to a regular file is fine
    assert artifacts.check_regular_file(str(link), 100) is None
    with pytest.raises(ImageError, match=f"{path}: 100 bytes, above the 99-byte limit"):
        artifacts.read_regular_file(str(path), 99)
    assert "100 bytes, above the 99-byte limit" in artifacts.check_regular_file(str(path), 99)


def test_writable_file_checks(tmp_path):
    from keras_lmiqa.errors import ConfigError

    assert artifacts.writable_file(str(tmp_path / "scores.csv"), "--csv") == str(tmp_path / "scores.csv")
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert artifacts.writable_file(str(link), "--csv") == str(target)  # written through the link
    for path, message in [(tmp_path / "no" / "s.csv",
                           f"--csv {tmp_path}/no/s.csv: folder {tmp_path}/no does not exist"),
                          (tmp_path, f"--csv {tmp_path} is a folder"),
                          ("/proc/version", "--csv /proc/version: cannot create files in /proc"),
                          ("/dev/null", "--csv /dev/null is a character device, not a regular file")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            artifacts.writable_file(str(path), "--csv")
    assert sorted(os.listdir(tmp_path)) == ["link.csv", "real.csv"]  # the probes are gone


def test_writable_folder_checks(tmp_path):
    from keras_lmiqa.errors import ConfigError

    assert artifacts.writable_folder(str(tmp_path / "a" / "b"), "--output-dir") == str(tmp_path / "a" / "b")
    assert os.listdir(tmp_path) == []  # checked, not created
    (tmp_path / "file").write_text("x")
    for path, message in [(tmp_path / "file", "is a file, not a folder"),
                          (tmp_path / "file" / "sub", f"{tmp_path}/file is a file, not a folder"),
                          ("/proc/x", "--output-dir /proc/x: cannot create anything in /proc")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            artifacts.writable_folder(str(path), "--output-dir")
    assert os.listdir(tmp_path) == ["file"]


def test_verify_keras_refuses_a_decompression_bomb(tmp_path):
    import zipfile

    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(300):  # 300 MiB of zeros, ~300 KB compressed
                member.write(block)
    with pytest.raises(artifacts.ChecksumError,
                       match="model.weights.h5 declares 314572800 bytes in .*decompression bomb"):
        artifacts.verify_keras(str(path))
    (tmp_path / "not.keras").write_bytes(b"not a zip")
    with pytest.raises(artifacts.ChecksumError, match="not a .keras \\(zip\\) archive"):
        artifacts.verify_keras(str(tmp_path / "not.keras"))
