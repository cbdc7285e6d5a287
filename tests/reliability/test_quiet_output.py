"""`lmiqa score DIR > out.txt`: stdout holds the table alone, and stderr none of TensorFlow's
C++ lines (oneDNN, libjpeg) unless -v is given."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TF_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ |oneDNN|onednn|DT_UINT8|JPEG library|libjpeg|tensorflow/",
                     re.IGNORECASE)


def test_score_through_a_pipe_writes_only_the_table_and_no_tensorflow_lines(untrained_model, tmp_path):
    from crafted import jpeg, photo

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(52):  # more than the 50 from which progress is shown on a terminal
        (folder / f"{index:02d}.jpg").write_bytes(jpeg(photo(40 + index % 3, 50), quality=60 + index % 30))
    good = jpeg(photo(40, 50))
    (folder / "cut.jpg").write_bytes(good[: len(good) // 2])  # decoded by libjpeg up to its end
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # as a user runs it
    done = subprocess.run([sys.executable, "-m", "keras_lmiqa.cli", "score", "--model", untrained_model,
                           str(folder), "--skip-errors"], cwd=ROOT, env=env, capture_output=True, timeout=1200)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode in (0, 1), err
    assert "\x1b" not in out and "\r" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["path", "score", "mos"] and len(lines) == 1 + 53
    assert all(re.fullmatch(r"\S+\s+\d\.\d{4}\s+\d+\.\d{4}", line) for line in lines[1:53]), lines[1:53]
    assert [line for line in err.splitlines() if TF_LINE.search(line)] == [], err
