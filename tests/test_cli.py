"""The `lmiqa` command and `train.py`: help everywhere, one clear line on user errors."""

import os
import re
import subprocess
import sys

import pytest

from keras_lmiqa.cli import build_parser
from keras_lmiqa.cli.train_cmd import resolve_config
from keras_lmiqa.config import PRESETS
from keras_lmiqa.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(__file__))


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_every_subcommand_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {"train", "datasets", "export", "serve", "score"} <= set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        assert sub.format_help().strip(), name
        assert [a.help for a in subparsers._choices_actions if a.dest == name][0], name


def _config(*argv):
    import argparse

    from keras_lmiqa.cli.train_cmd import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return resolve_config(parser.parse_args(list(argv)))


def test_demo_defaults_to_the_cpu_preset_and_flags_win():
    config = _config("--dataset", "demo", "--epochs", "3", "--no-mutual", "--set", "lambda_lm=0.5")
    assert config.backbone == PRESETS["cpu-demo"]["backbone"] and config.crop_size == PRESETS["cpu-demo"]["crop_size"]
    assert config.epochs == 3 and config.use_mutual is False and config.lambda_lm == 0.5
    assert config.output_dir == "runs/demo"
    other = _config("--dataset", "kadid10k", "--data-root", "/data/kadid")
    assert other.backbone == "mobilenet_v2" and other.crop_size == 224 and other.num_crops == 8


def test_dataset_flag_beats_the_config_file_which_beats_the_default(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: kadid10k\ndata_root: /data/kadid\nepochs: 2\n")
    explicit = _config("--dataset", "demo", "--config", str(path))  # "demo" given on purpose
    assert explicit.dataset == "demo" and explicit.epochs == 2
    from_file = _config("--config", str(path))
    assert from_file.dataset == "kadid10k" and from_file.output_dir == "runs/kadid10k"
    built_in = _config("--epochs", "3")
    assert built_in.dataset == "demo" and built_in.epochs == 3
    assert built_in.backbone == PRESETS["cpu-demo"]["backbone"]  # demo's CPU preset, as with --dataset demo


def test_config_file_and_typo_suggestion(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: cpu-demo\nepochs: 2\nscales: [1.0, 0.5]\n")
    config = _config("--dataset", "demo", "--config", str(path))
    assert config.epochs == 2 and config.scales == (1.0, 0.5) and config.backbone == "tiny"
    path.write_text("lr: 0.1\nepoch: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        _config("--dataset", "demo", "--config", str(path))


def test_set_values_are_read_for_the_key_type(tmp_path):
    config = _config("--dataset", "demo", "--set", "lr=1e-3", "--set", "data_root=2024", "--set", "epochs=3")
    assert config.lr == 0.001 and config.data_root == "2024" and config.epochs == 3  # not the text '1e-3', not 2024
    for value, message in [("lr=abc", "config key 'lr' expects a number, got 'abc' (str)"),
                           ("epochs=2.5", "config key 'epochs' expects an integer, got 2.5 (float)"),
                           ("use_mutual=1", "config key 'use_mutual' expects true or false, got 1 (int)"),
                           ("scales=[1, x]", "config key 'scales' expects a list of numbers, got [1, 'x'] (list)")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            _config("--dataset", "demo", "--set", value)
    path = tmp_path / "run.yaml"
    path.write_text("lr: 1e-4\n")  # YAML 1.1 reads this as text
    with pytest.raises(ConfigError, match=re.escape("config key 'lr' expects a number, got '1e-4' (str) "
                                                    "(YAML reads 1e-4 as text: write 1.0e-4)")):
        _config("--dataset", "demo", "--config", str(path))


@pytest.mark.parametrize("args, message", [
    (["--dataset", "kadid"], "unknown dataset 'kadid'"),
    (["--dataset", "demo", "--crops", "1"], "num_crops (K) must be >= 2"),
    (["--dataset", "demo", "--lr", "-1"], "lr must be > 0"),
    (["--dataset", "demo", "--set", "temprature=0.2"], "did you mean 'temperature'"),
    (["--dataset", "demo", "--set", "lr=abc"], "config key 'lr' expects a number, got 'abc' (str)"),
    (["--dataset", "kadid10k", "--data-root", "/nonexistent/kadid"], "kadid10k"),
])
def test_user_errors_print_one_line_and_exit_2(args, message):
    result = _run("train.py", *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("lmiqa train: error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|oneDNN|cuInit|cuda", re.MULTILINE)


def test_commands_print_no_tensorflow_startup_lines_unless_verbose(tmp_path):
    import cv2
    import numpy as np

    photo = str(tmp_path / "photo.png")
    cv2.imwrite(photo, np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell
    env["PYTHONPATH"] = ROOT
    commands = {"lmiqa --help": ["-m", "keras_lmiqa.cli", "--help"], "train.py --help": ["train.py", "--help"],
                "export.py --help": ["export.py", "--help"],
                "lmiqa -v --help": ["-m", "keras_lmiqa.cli", "-v", "--help"],
                "lmiqa score": ["-m", "keras_lmiqa.cli", "score", photo],
                "lmiqa -v score": ["-m", "keras_lmiqa.cli", "-v", "score", photo],
                "train.py -v --print-config": ["train.py", "-v", "--print-config"]}
    # In parallel: each start pays TensorFlow's import.
    processes = {name: subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for name, args in commands.items()}
    results = {name: (p.communicate(timeout=600), p.returncode) for name, p in processes.items()}
    # The help and --print-config load no TensorFlow, so even -v has no start-up lines to show.
    for name in ("lmiqa --help", "train.py --help", "export.py --help", "lmiqa -v --help"):
        (out, err), code = results[name]
        assert code == 0 and "usage:" in out, (name, err[-1000:])
        assert not TF_LOG_LINE.search(err), (name, err[-1000:])
    for name in ("lmiqa score", "lmiqa -v score", "train.py -v --print-config"):
        assert results[name][1] == 0, (name, results[name][0][1][-1000:])
    assert not TF_LOG_LINE.search(results["lmiqa score"][0][1]), results["lmiqa score"][0][1][-1000:]
    err = results["lmiqa -v score"][0][1]
    assert re.search(r"^[IWEF]\d{4} .*\.cc:\d+\]", err, re.MULTILINE), err[-1000:]
    assert '"dataset": "demo"' in results["train.py -v --print-config"][0][0]


@pytest.mark.parametrize("terminal, in_logs, expected", [
    (True, False, "".join(f"\rscored {i}/20 photos" for i in range(1, 21)) + "\n"),
    (False, True, "scored 2/20 photos\nscored 4/20 photos\nscored 6/20 photos\nscored 8/20 photos\n"
     "scored 10/20 photos\nscored 12/20 photos\nscored 14/20 photos\nscored 16/20 photos\n"
     "scored 18/20 photos\nscored 20/20 photos\n"),
])
def test_progress_rewrites_a_terminal_line_and_writes_tenths_to_a_log(terminal, in_logs, expected, monkeypatch,
                                                                      capsys):
    from keras_lmiqa.cli.progress import progress_printer

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    progress = progress_printer("photos", 20, in_logs=in_logs)
    for done in range(1, 21):
        progress(done, 20)
    captured = capsys.readouterr()
    assert captured.err == expected and captured.out == ""


def test_no_progress_for_few_items_or_off_a_terminal_unless_logged(monkeypatch):
    from keras_lmiqa.cli.progress import progress_printer

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress_printer("images", 50, above=50) is None and progress_printer("images", 51, above=50)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert progress_printer("images", 500) is None and progress_printer("images", 500, in_logs=True)
