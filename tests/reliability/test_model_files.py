"""Faults and security around model files: killed exports, corrupt or partial models,
Keras safe mode, and what the package source must never do."""

from __future__ import annotations

import ast
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_lmiqa.errors import ModelError

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "keras_lmiqa"


def _one_line_error(capsys, command: str) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"lmiqa {command}: error: "), lines
    return lines[0]


def test_killed_export_leaves_no_version(untrained_model, tmp_path):
    from keras_lmiqa import loading
    from keras_lmiqa.serving.model_repository import ModelRepository, served_versions

    base = tmp_path / "lmiqa"
    process = subprocess.Popen([sys.executable, "-m", "keras_lmiqa.cli", "export", "--model", untrained_model,
                                "--export-dir", str(base)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline, temporary = time.monotonic() + 600, []  # a loaded machine is slow to start it
    try:  # kill it once the SavedModel is being written into its temporary folder
        while time.monotonic() < deadline and process.poll() is None:
            temporary = [p for p in base.glob(".tmp-1-*") if any(p.iterdir())] if base.exists() else []
            if temporary:
                break
            time.sleep(0.005)
        assert process.poll() is None and temporary, "the export ended (or never started) before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert [p.name for p in base.iterdir()] == [temporary[0].name]  # only the partial temporary folder
    assert loading.latest_version(str(base)) is None
    assert served_versions(str(base)) == {}
    repository = ModelRepository(str(base), poll_seconds=0)
    assert repository.refresh() == [] and repository.versions() == []
    from keras_lmiqa.scorer import load_scorer

    with pytest.raises(ModelError, match="no SavedModel and no numeric version folder with one$"):
        load_scorer(str(base))


@pytest.fixture()
def damaged(untrained_export, tmp_path):
    """A fresh copy of the export's version folder, to damage; returns (base, version_dir)."""
    base = tmp_path / "lmiqa"
    shutil.copytree(untrained_export, base / "1")
    return base, base / "1"


def _truncate_variables(version):
    data = next((version / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])


DAMAGE = {
    "random saved_model.pb": lambda v: (v / "saved_model.pb").write_bytes(np.random.default_rng(0).bytes(3000)),
    "truncated saved_model.pb": lambda v: (v / "saved_model.pb").write_bytes((v / "saved_model.pb").read_bytes()[:500]),
    "no variables": lambda v: shutil.rmtree(v / "variables"),
    "truncated variables": _truncate_variables,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_corrupt_savedmodel_is_a_clear_error_everywhere(damaged, damage, capsys, photo_png):
    from keras_lmiqa.cli import main
    from keras_lmiqa.scorer import load_scorer
    from keras_lmiqa.serving.local_server import LocalServer
    from keras_lmiqa.serving.model_repository import ModelRepository

    base, version = damaged
    DAMAGE[damage](version)
    with pytest.raises(ModelError, match=f"cannot load SavedModel {version} \\(corrupt or partial export\\?\\): .+"):
        load_scorer(str(version))
    with pytest.raises(ModelError, match="cannot load SavedModel"):
        load_scorer(str(base))
    assert main(["score", "--model", str(base), photo_png]) == 2
    assert "cannot load SavedModel" in _one_line_error(capsys, "score")
    repository = ModelRepository(str(base), poll_seconds=0)
    assert repository.refresh() == [] and repository.versions() == []  # logged, not raised
    with pytest.raises(ModelError, match="no loadable SavedModel"):
        LocalServer(str(base), port=0).start()


def test_missing_saved_model_pb(damaged, photo_png, capsys):
    from keras_lmiqa.cli import main
    from keras_lmiqa.scorer import load_scorer

    base, version = damaged
    (version / "saved_model.pb").unlink()
    # A numbered folder without saved_model.pb is not a version (TF Serving's rule): named as such.
    with pytest.raises(ModelError, match=r"no numeric version folder with one; 1/ without saved_model\.pb"):
        load_scorer(str(base))
    assert main(["score", "--model", str(version), photo_png]) == 2
    assert "holds no SavedModel" in _one_line_error(capsys, "score")


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    from crafted import photo, png

    path = tmp_path_factory.mktemp("photo") / "photo.png"
    path.write_bytes(png(photo(40, 50)))
    return str(path)


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty"])
def test_corrupt_model_keras_is_a_clear_error(untrained_model, tmp_path, damage, capsys, photo_png):
    from keras_lmiqa.cli import main
    from keras_lmiqa.loading import load_branch
    from keras_lmiqa.scorer import load_scorer

    model = tmp_path / "model.keras"
    contents = pathlib.Path(untrained_model).read_bytes()
    model.write_bytes({"truncated": contents[: len(contents) // 2], "empty": b"",
                       "random bytes": np.random.default_rng(1).bytes(5000)}[damage])
    shutil.copy(os.path.join(os.path.dirname(untrained_model), "config.json"), tmp_path / "config.json")
    pattern = f"cannot load model {model} \\(corrupt or partial file\\?\\): .+"
    with pytest.raises(ModelError, match=pattern):
        load_branch(str(model))
    with pytest.raises(ModelError, match=pattern):
        load_scorer(str(model))
    assert main(["export", "--model", str(model), "--export-dir", str(tmp_path / "out")]) == 2
    assert f"cannot load model {model}" in _one_line_error(capsys, "export")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert main(["score", "--model", str(model), photo_png]) == 2
    assert f"cannot load model {model}" in _one_line_error(capsys, "score")


def test_model_with_a_lambda_layer_is_refused(tmp_path):
    import keras

    from keras_lmiqa.loading import load_branch

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(ModelError, match="cannot load model .*lambda.keras.*(Lambda|lambda|safe_mode)"):
        load_branch(path)
    with pytest.raises(ValueError, match="safe_mode"):  # the default of plain Keras loading too
        keras.saving.load_model(path)


def _package_trees():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(ROOT), ast.parse(path.read_text(), str(path))


UNSAFE_KEYWORDS = {"safe_mode": False, "allow_pickle": True, "shell": True}
UNSAFE_MODULES = ("pickle", "cPickle", "dill", "marshal", "shelve", "joblib", "cloudpickle")


def _unsafe(name, tree) -> list[str]:
    """Pickle-family imports, eval/exec, yaml.load and unsafe keyword values in `tree`."""
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            problems += [f"{name}:{node.lineno} imports {m}" for m in modules if m.split(".")[0] in UNSAFE_MODULES]
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ("eval", "exec", "__import__"):
                problems.append(f"{name}:{node.lineno} calls {called}")
            if called == "load" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "yaml":
                problems.append(f"{name}:{node.lineno} calls yaml.load (use safe_load)")
            for keyword in node.keywords:
                if keyword.arg not in UNSAFE_KEYWORDS:
                    continue
                if not isinstance(keyword.value, ast.Constant):
                    problems.append(f"{name}:{node.lineno} passes a computed {keyword.arg}")
                elif keyword.value.value == UNSAFE_KEYWORDS[keyword.arg]:
                    problems.append(f"{name}:{node.lineno} passes {keyword.arg}={keyword.value.value}")
    return problems


def test_package_source_has_no_pickle_eval_or_unsafe_loading():
    assert [p for name, tree in _package_trees() for p in _unsafe(name, tree)] == []
    # The scan does see each kind of problem.
    sample = ("import pickle\nfrom dill import dumps\neval('1')\nexec('x')\nyaml.load(s)\n"
              "keras.saving.load_model(p, safe_mode=False)\nnp.load(f, allow_pickle=True)\n"
              "subprocess.run(c, shell=True)\nkeras.saving.load_model(p, safe_mode=flag)\n"
              "keras.saving.load_model(p, safe_mode=True)\nyaml.safe_load(s)\n")
    assert [p.split(" ", 1)[1] for p in _unsafe("sample", ast.parse(sample))] == [
        "imports pickle", "imports dill", "calls eval", "calls exec", "calls yaml.load (use safe_load)",
        "passes safe_mode=False", "passes allow_pickle=True", "passes shell=True", "passes a computed safe_mode"]


def test_every_keras_load_model_call_keeps_safe_mode():
    calls = []
    for name, tree in _package_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load_model":
                safe = [k.value for k in node.keywords if k.arg == "safe_mode"]
                calls.append((str(name), node.lineno, [getattr(v, "value", v) for v in safe]))
    assert calls, "expected load_model calls in the package"
    assert all(safe in ([], [True]) for _, _, safe in calls), calls  # default (True) or explicit True


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp*) of sockets listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


def test_servers_bind_loopback_by_default(untrained_export):
    import inspect

    from keras_lmiqa.cli import build_parser
    from keras_lmiqa.serving.local_server import LocalServer

    assert inspect.signature(LocalServer).parameters["host"].default == "127.0.0.1"
    args = build_parser().parse_args(["serve", "--export-dir", "x"])
    assert args.host == "127.0.0.1"
    server = LocalServer(os.path.dirname(untrained_export), port=0, rest_port=0, poll_seconds=0).start()
    try:
        for port in (server.port, server.rest_port):
            addresses = _listening(port)
            # 127.0.0.1, or as gRPC binds it, ::ffff:127.0.0.1 (IPv4-mapped); never 0.0.0.0 or ::
            assert addresses and set(addresses) <= LOOPBACK, (port, addresses)
    finally:
        server.stop()


# ---------------------------------------------------------------- corrupted weights


def _weights_span(path) -> tuple[int, int]:
    """(offset, size) of model.weights.h5's bytes inside a .keras zip (stored, not compressed)."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    assert info.compress_type == zipfile.ZIP_STORED
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length, info.file_size


def _flip(path, start: int, count: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(start)
        data = handle.read(count)
        handle.seek(start)
        handle.write(bytes(b ^ 0xFF for b in data))


@pytest.fixture()
def run_copy(untrained_model, tmp_path):
    """A copy of the untrained run (model.keras saved by `artifacts.save_keras`, config.json)."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(untrained_model, run / "model.keras")
    shutil.copy(os.path.join(os.path.dirname(untrained_model), "config.json"), run / "config.json")
    return run


def test_model_keras_carries_a_checksum(untrained_model, tmp_path):
    import zipfile

    import keras

    from keras_lmiqa import artifacts
    from keras_lmiqa.loading import load_model_file

    with zipfile.ZipFile(untrained_model) as archive:
        assert archive.comment.startswith(artifacts.CHECKSUM_PREFIX) and len(archive.comment) == 13 + 64
    assert artifacts.verify_keras(untrained_model) is True
    plain = str(tmp_path / "plain.keras")
    load_model_file(untrained_model).save(plain)  # plain Keras: no checksum, still loads (CRCs checked)
    assert artifacts.verify_keras(plain) is False
    assert isinstance(load_model_file(plain), keras.Model)


def _rezip_with_flipped_weights(path, count: int = 200_000) -> None:
    """Flip `count` bytes in the middle of model.weights.h5 and rewrite the zip (fresh
    CRC-32s, the zip comment kept): what unzip, edit, zip does."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
        comment = archive.comment
    weights = bytearray(members["model.weights.h5"])
    count = min(count, len(weights) // 2)
    start = (len(weights) - count) // 2
    weights[start:start + count] = bytes(b ^ 0xFF for b in weights[start:start + count])
    members["model.weights.h5"] = bytes(weights)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.comment = comment


def test_flipped_weights_are_refused_at_load(run_copy, tmp_path, capsys, photo_png):
    import keras

    from keras_lmiqa.cli import main
    from keras_lmiqa.loading import load_branch
    from keras_lmiqa.scorer import load_scorer

    model = run_copy / "model.keras"
    _rezip_with_flipped_weights(model)
    # Plain Keras loads the damaged file without a word.
    assert isinstance(keras.saving.load_model(str(model), safe_mode=True, compile=False), keras.Model)

    pattern = (f"cannot load model {model} \\(corrupt or partial file\\?\\): its contents do not match the "
               "SHA-256 checksum recorded when it was saved .*: the weights were corrupted or modified")
    with pytest.raises(ModelError, match=pattern):
        load_branch(str(model))
    with pytest.raises(ModelError, match=pattern):
        load_scorer(str(model))
    out = tmp_path / "exports"
    assert main(["export", "--model", str(model), "--export-dir", str(out)]) == 2
    line = _one_line_error(capsys, "export")
    assert f"cannot load model {model} (corrupt or partial file?): its contents do not match the SHA-256" in line
    assert not out.exists() or not any(out.iterdir())
    assert main(["score", "--model", str(model), photo_png]) == 2
    assert f"cannot load model {model}" in _one_line_error(capsys, "score")


def test_weights_flipped_in_place_fail_their_crc(run_copy):
    from keras_lmiqa.loading import load_branch

    model = run_copy / "model.keras"
    start, size = _weights_span(model)
    _flip(model, start + size // 4, size // 2)
    with pytest.raises(ModelError, match=f"cannot load model {model} \\(corrupt or partial file\\?\\): "
                                         "Bad CRC-32 for file 'model.weights.h5'"):
        load_branch(str(model))


def test_a_model_scoring_outside_the_range_is_refused(tmp_path, photo_png, capsys):
    """A model whose head went wild (valid file, valid checksum) scores -2e25: refused."""
    import keras
    from untrained import write_untrained_run

    from keras_lmiqa import artifacts
    from keras_lmiqa.cli import main
    from keras_lmiqa.loading import load_model_file
    from keras_lmiqa.scorer import load_scorer

    path = write_untrained_run(str(tmp_path / "wild"))
    model = load_model_file(path)
    kernel, bias = model.branch.get_layer("quality_out").get_weights()
    model.branch.get_layer("quality_out").set_weights([kernel, bias - 2.1e25])
    artifacts.save_keras(model, path)
    assert artifacts.verify_keras(path) is True
    with pytest.raises(ModelError, match=f"{path}: the score is not finite or far outside \\[0, 1\\]: the model "
                                         "is broken \\(corrupt weights\\?\\).*-2.1e\\+25"):
        load_scorer(path).score([photo_png])
    assert main(["score", "--model", path, photo_png]) == 2
    assert "the score is not finite or far outside [0, 1]: the model is broken" in _one_line_error(capsys, "score")
    assert isinstance(keras.saving.load_model(path, compile=False), keras.Model)


def test_bounded_score_clips_a_small_overshoot_and_fails_a_broken_one():
    import tensorflow as tf

    from keras_lmiqa.models.scoring import bounded_score

    # -0.74: a working demo model on the export's warm-up gradient (unlike its training images)
    scores = tf.constant([0.25, 1.2, -0.1, 0.0, 1.0, -0.74, 3.0])
    np.testing.assert_array_equal(bounded_score(scores).numpy(), np.float32([0.25, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]))
    graph = tf.function(bounded_score, input_signature=[tf.TensorSpec([None], tf.float32)])
    np.testing.assert_array_equal(graph(tf.constant([0.5])).numpy(), [0.5])
    for broken in ([0.5, -2.1e25], [float("nan")], [float("inf")], [11.5], [-10.5]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="not finite or far outside \\[0, 1\\]"):
            graph(tf.constant(broken, tf.float32))


def test_a_cut_checksum_record_is_named_as_such_not_blamed_on_the_weights(run_copy):
    import zipfile

    from keras_lmiqa.loading import load_branch

    model = run_copy / "model.keras"
    with zipfile.ZipFile(model, "a") as archive:
        archive.comment = archive.comment[:-5]  # the record's last 5 hex digits lost
    with pytest.raises(ModelError, match=f"^cannot load model {model} \\(corrupt or partial file\\?\\): its checksum "
                                         "record is damaged \\(59 characters where a SHA-256 has 64 hex digits\\): "
                                         "the file was cut or edited after it was written$"):
        load_branch(str(model))
