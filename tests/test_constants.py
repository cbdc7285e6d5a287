"""The shared names and the one version-folder rule (keras_lmiqa/constants.py)."""

import os
import subprocess
import sys

from keras_lmiqa import constants

ROOT = os.path.dirname(os.path.dirname(__file__))


def test_constants_and_tf_logs_load_without_tensorflow():
    code = ("import sys\nimport keras_lmiqa.constants, keras_lmiqa.tf_logs\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'numpy')]\n"
            "print(heavy); sys.exit(1 if heavy else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_version_is_a_numbered_folder_holding_a_saved_model(tmp_path):
    for name, files in {"1": ["saved_model.pb"], "3": [], "10": ["saved_model.pb"], ".tmp-4-x": ["saved_model.pb"],
                        "notes": ["saved_model.pb"], "٣": ["saved_model.pb"]}.items():  # "٣": an Arabic-Indic 3
        os.makedirs(tmp_path / name)
        for file in files:
            (tmp_path / name / file).write_bytes(b"")
    (tmp_path / "7").write_bytes(b"")  # a file, not a folder
    expected = {1: str(tmp_path / "1"), 10: str(tmp_path / "10")}
    assert constants.version_dirs(str(tmp_path)) == expected and list(expected) == [1, 10]
    assert constants.version_dirs(str(tmp_path / "missing")) == {}


def test_exporter_scorer_and_server_agree_on_the_versions(tmp_path):
    from keras_lmiqa import loading
    from keras_lmiqa.serving.model_repository import served_versions

    for name in ("2", "5"):
        os.makedirs(tmp_path / name)
    (tmp_path / "2" / "saved_model.pb").write_bytes(b"")  # 5 is half-copied: no SavedModel yet
    assert loading.latest_version(str(tmp_path)) == 2
    assert served_versions(str(tmp_path)) == {2: str(tmp_path / "2")}
