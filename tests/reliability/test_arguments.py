"""Flags out of range: one clear line naming the flag, exit code 2, before any work.

`lmiqa serve --port 70000` must not bind port 4464 (70000 mod 65536) nor end in a
traceback. Each case here runs the real `lmiqa` entry point in-process.
"""

from __future__ import annotations

import os
import re

import pytest


def _error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    # TensorFlow's C++ cuInit notice lands in this process's stderr when a test here is the
    # first to touch a device (run alone); the command itself prints one line (`lmiqa` run
    # as a process shows no such notice: tf_logs).
    lines = [line for line in captured.err.splitlines() if line.strip() and not re.match(r"[IWEF]\d{4} ", line)]
    assert len(lines) == 1 and lines[0].startswith(f"lmiqa {command}: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.fixture()
def a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("a file, not a folder")
    return str(path)


CASES = {
    "serve --port 70000": (["serve", "--export-dir", "{missing}", "--port", "70000"],
                           "--port must be a TCP port in 0..65535 (0: any free port), got 70000"),
    "serve --port -1": (["serve", "--export-dir", "{missing}", "--port", "-1"], "--port must be a TCP port"),
    "serve --rest-port 70000": (["serve", "--export-dir", "{missing}", "--rest-port", "70000"],
                                "--rest-port must be a TCP port in 0..65535 (0: any free port), got 70000"),
    "serve same ports": (["serve", "--export-dir", "{missing}", "--port", "8600", "--rest-port", "8600"],
                         "--port and --rest-port are both 8600"),
    "serve --max-batch-size 0": (["serve", "--export-dir", "{missing}", "--max-batch-size", "0"],
                                 "--max-batch-size must be >= 1, got 0"),
    "serve --max-request-mb 5000": (["serve", "--export-dir", "{missing}", "--max-request-mb", "5000"],
                                    "--max-request-mb must be in (0, 2047] (gRPC's message size limit), got 5000"),
    "serve --max-request-mb 0": (["serve", "--export-dir", "{missing}", "--max-request-mb", "0"],
                                 "--max-request-mb must be in (0, 2047]"),
    "serve --max-request-mb nan": (["serve", "--export-dir", "{missing}", "--max-request-mb", "nan"],
                                   "--max-request-mb must be in (0, 2047]"),
    "serve --poll-seconds -1": (["serve", "--export-dir", "{missing}", "--poll-seconds", "-1"],
                                "--poll-seconds must be >= 0"),
    "serve --max-request-pixels 0": (["serve", "--export-dir", "{missing}", "--max-request-pixels", "0"],
                                     "--max-request-pixels must be >= 1, got 0"),
    "serve --max-concurrent-requests 0": (["serve", "--export-dir", "{missing}", "--max-concurrent-requests", "0"],
                                          "--max-concurrent-requests must be >= 1, got 0"),
    "serve --read-timeout inf": (["serve", "--export-dir", "{missing}", "--read-timeout", "inf"],
                                 "--read-timeout must be > 0 seconds, got inf"),
    "eval --batch-size 0": (["eval", "--model", "{missing}", "--dataset", "demo", "--output-dir", "{tmp}/eval",
                             "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    "eval --output-dir /proc/x": (["eval", "--model", "{missing}", "--dataset", "demo", "--output-dir", "/proc/x"],
                                  "--output-dir /proc/x: cannot create anything in /proc"),
    "eval --output-dir under a file": (["eval", "--model", "{missing}", "--dataset", "demo",
                                        "--output-dir", "{file}/eval"], "--output-dir {file}/eval: {file} is a file"),
    "export --export-dir a file": (["export", "--model", "{missing}", "--export-dir", "{file}"],
                                   "--export-dir {file} is a file, not a folder"),
    "export without --model": (["export", "--export-dir", "{tmp}/exports"],
                               "give one of --model PATH or --pretrained NAME"),
    "export --pretrained --config": (["export", "--pretrained", "biq2021-mobilenet-v2", "--config", "{file}",
                                      "--export-dir", "{tmp}/exports"], "--config applies to --model only"),
    "score --pretrained unknown": (["score", "--pretrained", "nope", "{file}"],
                                   "no pretrained model named 'nope'; shipped: biq2021-mobilenet-v2"),
    "score --max-image-mb 0": (["score", "--model", "{missing}", "--max-image-mb", "0", "{file}"],
                               "--max-image-mb must be a number > 0"),
    "score-batch --max-image-mb nan": (["score-batch", "--input", "{file}", "--output", "{tmp}/scores/part",
                                        "--max-image-mb", "nan"], "--max-image-mb must be a number > 0, got nan"),
    "score --timeout 0": (["score", "--server", "127.0.0.1:1", "--timeout", "0", "{file}"],
                          "--timeout must be a number of seconds > 0"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_flags_give_one_line_and_exit_2(case, tmp_path, a_file, capsys):
    from keras_lmiqa.cli import main

    argv, message = CASES[case]
    names = {"missing": str(tmp_path / "missing"), "tmp": str(tmp_path), "file": a_file}
    assert main([arg.format(**names) for arg in argv]) == 2
    assert message.format(**names) in _error_line(capsys, argv[0])
    assert os.listdir(tmp_path) == ["afile"]  # the checks create nothing (no eval/ or exports/ folder)


def test_ports_at_the_edges_pass_the_check():
    from keras_lmiqa.cli import build_parser
    from keras_lmiqa.cli.serve_cmd import check_arguments

    for argv in (["--port", "0"], ["--port", "65535", "--rest-port", "0"], ["--max-request-mb", "2047"]):
        check_arguments(build_parser().parse_args(["serve", "--export-dir", "x", *argv]))  # no error


@pytest.mark.parametrize("setting, value, message", [
    ("port", 70000, "port must be a TCP port in 0..65535 (0: any free port), got 70000"),
    ("rest_port", -1, "rest_port must be a TCP port in 0..65535 (0: any free port), got -1"),
    ("max_batch_size", 0, "max_batch_size must be >= 1, got 0"),
    ("max_request_bytes", 2 ** 31, f"max_request_bytes must be in 1..{2 ** 31 - 1} bytes, got {2 ** 31}"),
    ("max_request_pixels", 0, "max_request_pixels must be >= 1, got 0"),
    ("max_concurrent_requests", 0, "max_concurrent_requests must be >= 1, got 0"),
    ("read_timeout", float("nan"), "read_timeout must be > 0 seconds, got nan"),
    ("poll_seconds", -1.0, "poll_seconds must be >= 0 (0 disables polling), got -1.0"),
])
def test_the_server_api_refuses_settings_out_of_range(setting, value, message, tmp_path):
    """`LocalServer` itself, not only `lmiqa serve`, refuses port 70000 (it would bind 4464)."""
    from keras_lmiqa.errors import ConfigError
    from keras_lmiqa.serving.local_server import LocalServer

    with pytest.raises(ConfigError) as caught:
        LocalServer(str(tmp_path), **{setting: value})
    assert str(caught.value) == message


def test_the_server_api_refuses_one_port_for_both(tmp_path):
    from keras_lmiqa.errors import ConfigError
    from keras_lmiqa.serving.local_server import LocalServer

    with pytest.raises(ConfigError, match="port and rest_port are both 8600"):
        LocalServer(str(tmp_path), port=8600, rest_port=8600)
