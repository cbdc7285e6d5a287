"""keras_lmiqa's Keras classes register as soon as TensorFlow and Keras are loaded.

`keras.saving.load_model("model.keras")` finds `ImageQualityModel` and the custom layers
only once their modules (`REGISTERING`) have run `register_keras_serializable`. Importing
that module costs TensorFlow, which `import keras_lmiqa` must not (the clients,
`lmiqa --help` and `keras_lmiqa.inference_spec` run without it). So the package
registers when TensorFlow and Keras have both loaded, whoever imports them and in
whichever order: at `import keras_lmiqa` if they already are, otherwise right after
the import that loads them. A meta-path finder watches those imports (it finds nothing
itself: it adds a callback to the loader the other finders return; TensorFlow's import
also runs inside `tf_logs.hold_back_startup`) and registers at
the first moment when neither TensorFlow, Keras nor any keras_lmiqa module is half
imported, so no module is ever asked for a name it has not yet defined. It removes
itself once done.
"""

from __future__ import annotations

import importlib
import sys
import threading

from keras_lmiqa import tf_logs

_FRAMEWORKS = ("tensorflow", "keras")
# The modules that define keras_lmiqa's Keras classes (and import little else).
REGISTERING = ("keras_lmiqa.models.layers", "keras_lmiqa.models.image_quality")
_PACKAGE = "keras_lmiqa"
_lock = threading.RLock()
_registered = False


def _half_imported(name: str) -> bool:
    """True while `name` is being imported (or not imported at all, for a framework)."""
    module = sys.modules.get(name)
    return module is None or bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def register_when_ready(finished: str | None = None) -> None:
    """Import the `REGISTERING` modules if TensorFlow and Keras
    are loaded and no keras_lmiqa module is half imported; `finished` names a module
    whose code has just run (its import is still marked as in progress)."""
    global _registered
    with _lock:
        if _registered:
            return
        if any(name != finished and _half_imported(name) for name in _FRAMEWORKS):
            return
        ours = [name for name in list(sys.modules) if name == _PACKAGE or name.startswith(_PACKAGE + ".")]
        if any(name != finished and _half_imported(name) for name in ours):
            return
        _registered = True
        sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _WatchImports)]
        for name in REGISTERING:
            importlib.import_module(name)


class _WatchImports:
    """Meta-path finder: after TensorFlow, Keras or a keras_lmiqa module runs, try to register."""

    def find_spec(self, name, path=None, target=None):
        watched = name in _FRAMEWORKS or name.startswith(_PACKAGE + ".")
        if not watched or _registered:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is not None and hasattr(loader, "exec_module"):
            run = loader.exec_module

            def exec_module(module, run=run, name=name):
                if name == "tensorflow":  # its C++ start-up lines would drown a command's output
                    tf_logs.hold_back_startup(lambda: run(module))
                else:
                    run(module)
                register_when_ready(finished=name)

            loader.exec_module = exec_module  # this spec's own loader instance
        return spec


def install() -> None:
    """Register now if TensorFlow and Keras are loaded, else watch for them."""
    register_when_ready(finished=_PACKAGE)
    with _lock:
        if not _registered and not any(isinstance(f, _WatchImports) for f in sys.meta_path):
            sys.meta_path.insert(0, _WatchImports())
