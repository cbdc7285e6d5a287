# keras-lmiqa: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_RUN := runs/demo
DEMO_EXPORT := exports/lmiqa
DEMO_PORT ?= 8500

.PHONY: venv browser test demo bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,beam]'
	touch $@

venv: $(VENV)/.installed

# The headless browser of the page tests (tests/ui): Debian's chromium and chromium-driver.
# Installed as root (CI runs as root) and only when missing; without root or apt the page
# tests skip, saying how to install it (on CI, where CI is set, they fail instead).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make browser: installing chromium and chromium-driver for the page tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver fonts-dejavu-core >/dev/null) || echo "make browser: apt-get failed"; \
	else echo "make browser: no chromium; the page tests (tests/ui) skip. As root: make browser"; fi

# The linter first (pyproject.toml [tool.ruff]), then the whole suite on both cores,
# integration tests included.
test: venv browser
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
