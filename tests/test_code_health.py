"""Code-health rules: short functions, training free of research/, one twin each."""

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(__file__))


def _imports(path: str) -> set[str]:
    tree = ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_function_over_60_lines_without_a_reason():
    result = subprocess.run([sys.executable, "tools/long_functions.py", "keras_lmiqa"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_training_does_not_import_research():
    imported = _imports("keras_lmiqa/training/loop.py") | _imports("keras_lmiqa/training/step.py")
    assert not [name for name in imported if name.startswith("keras_lmiqa.research")]


def test_shared_names_are_defined_once():
    # Each lives in keras_lmiqa/constants.py only.
    for name in ("OUTPUT_KEYS", "WARMUP_FILE", "MODEL_NAME", "def version_dirs", "32 * 1024 * 1024", "32 * MIB", "MIB"):
        holders = []
        for folder, _, files in os.walk(os.path.join(ROOT, "keras_lmiqa")):
            for file in files:
                if file.endswith(".py"):
                    text = open(os.path.join(folder, file), encoding="utf-8").read()
                    if f"{name} = " in text or (name.startswith("def ") and name + "(" in text) \
                            or (name[0].isdigit() and name in text):
                        holders.append(os.path.relpath(os.path.join(folder, file), ROOT))
        assert holders in ([], ["keras_lmiqa/constants.py"]), (name, holders)
