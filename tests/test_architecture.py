"""The package's layers: no import cycle, imports only downward, and what loads no TensorFlow."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import import_graph  # noqa: E402


@pytest.fixture(scope="module")
def graph():
    return import_graph.package_graph()


def test_no_import_cycle_inside_the_package(graph):
    assert import_graph.find_cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle():
    assert import_graph.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_graph.find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_module_has_a_layer_and_imports_only_downward(graph):
    assert {import_graph.layer_of(module) for module in graph} <= {"package", *dict(import_graph.LAYERS)}
    assert import_graph.upward_edges(graph) == []


def test_only_the_cli_imports_export(graph):
    importers = {module for module, targets in graph.items()
                 if any(t == "keras_lmiqa.export" or t.startswith("keras_lmiqa.export.") for t in targets)}
    assert {m for m in importers if not m.startswith(("keras_lmiqa.export", "keras_lmiqa.cli."))} == set()


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.parametrize("statement", [
    "import keras_lmiqa",
    "import keras_lmiqa.inference_spec",
    "import keras_lmiqa.constants, keras_lmiqa.tf_logs, keras_lmiqa.serving.limits",
    "from keras_lmiqa.serving import Client, RestClient",
    "from keras_lmiqa.cli import main; main(['--help'])",
])
def test_loads_no_tensorflow(statement):
    code = ("import sys\ntry:\n    " + statement.replace("; ", "\n    ") + "\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
            "print(heavy[:5]); sys.exit(1 if heavy else 0)\n")
    result = _fresh(code)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def custom_layer_file(tmp_path_factory):
    """A model.keras made of keras_lmiqa's custom layers."""
    import keras

    from keras_lmiqa.models import layers

    inputs = keras.Input([4, 8, 8, 3])
    outputs = layers.Squeeze()(keras.layers.Dense(1)(layers.MergeCropAxis()(inputs)))
    path = str(tmp_path_factory.mktemp("custom") / "m.keras")
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.mark.parametrize("order", ["import keras_lmiqa, keras", "import keras, keras_lmiqa",
                                   "import tensorflow, keras_lmiqa.pipeline, keras"])
def test_load_model_works_after_import_keras_lmiqa_in_any_order(order, custom_layer_file):
    """The Keras classes register once TensorFlow and Keras load, whoever loads them first."""
    path = custom_layer_file
    load = (f"{order}\nimport sys\n"
            "model = keras.saving.load_model(sys.argv[1])\n"
            "print(sorted({type(layer).__module__ for layer in model.layers}))\n")
    loaded = subprocess.run([sys.executable, "-c", load, path], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "keras_lmiqa.models.layers" in loaded.stdout
