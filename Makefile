# keras-lmiqa: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_RUN := runs/demo
DEMO_EXPORT := exports/lmiqa
DEMO_PORT ?= 8500

.PHONY: venv test demo bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,beam]'
	touch $@

venv: $(VENV)/.installed

# The linter first (pyproject.toml [tool.ruff]), then the whole suite on both cores,
# integration tests included.
test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --durations=15 tests

# Train on the built-in demo set, export, serve over gRPC, score a few images, stop.
demo: venv
	$(PY) train.py --dataset demo --output-dir $(DEMO_RUN)
	$(PY) export.py --model $(DEMO_RUN)/model.keras --export-dir $(DEMO_EXPORT)
	$(PY) -m keras_lmiqa.serving.demo --export-dir $(DEMO_EXPORT) --port $(DEMO_PORT) --run-dir $(DEMO_RUN)

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf runs exports .pytest_cache
