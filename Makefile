# The whole set-up on a fresh machine: `make demo` and `make test` create .venv, install the
# system packages they need (apt-get when root; otherwise they print the command and stop),
# install the project and run.
SHELL := /bin/bash
# Any Python >= 3.11 for `make demo` (e.g. PYTHON=python3.13); `make test` needs 3.11 (CPU torch wheel).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU torch wheel may lie in a local folder; pip also finds it through its own config.
FIND_LINKS := $(if $(wildcard /opt/wheels/*.whl),--find-links /opt/wheels,)

# Debian packages: speech synthesis, audio server for the virtual microphone, browser for WebRTC tests.
APT_RUNTIME := libespeak-ng1 espeak-ng libportaudio2 libgl1 libglib2.0-0
APT_TEST := $(APT_RUNTIME) sox pulseaudio pulseaudio-utils libasound2-plugins chromium chromium-driver xvfb xdotool

.PHONY: demo test test-fast test-py313 bench lint typecheck unit sysdeps-runtime sysdeps-test clean venv-python

# A $(VENV) made by another Python is not reused silently: say so and stop.
venv-python:
	@want=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 2; \
	if [ -x $(PY) ]; then have=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  if [ "$$have" != "$$want" ]; then \
	    echo "$(VENV) was made by Python $$have, PYTHON=$(PYTHON) is $$want: run make clean (or pass VENV=another folder)"; \
	    exit 2; fi; fi

$(VENV)/.stamp-runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(FIND_LINKS) -e .
	$(PY) -m stablesync.face.install_models  # the LiteRT tracker's models where mediapipe does not install
	touch $@

$(VENV)/.stamp-all: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(FIND_LINKS) -e '.[train,dev]'
	$(PY) -m stablesync.face.install_models  # the LiteRT tracker's models where mediapipe does not install
	touch $(VENV)/.stamp-runtime $@

sysdeps-runtime:
	@bash .ci/apt.sh $(APT_RUNTIME)

sysdeps-test:
	@bash .ci/apt.sh $(APT_TEST)

demo: venv-python sysdeps-runtime $(VENV)/.stamp-runtime
	$(VENV)/bin/stablesync demo --out demo.mp4 --overwrite --stats-json demo-stats.json

lint: $(VENV)/.stamp-all
	$(VENV)/bin/ruff check stablesync export realtime benchmarks tests
	$(VENV)/bin/ruff format --check stablesync export realtime benchmarks tests

typecheck: $(VENV)/.stamp-all
	$(VENV)/bin/mypy

# The suite runs in a private loopback-only network namespace (.ci/netns.sh): WebRTC media,
# HTTP and the browser never touch a real interface.
# The preview window's tests (a real Xvfb and Qt) run in a process of their own: after the rest
# of the suite in one process they lost the window's picture now and then (cause not found).
unit: venv-python sysdeps-test $(VENV)/.stamp-all
	bash .ci/netns.sh $(VENV)/bin/pytest -q --ignore=tests/test_preview.py $(PYTEST_ARGS)
	bash .ci/netns.sh $(VENV)/bin/pytest -q tests/test_preview.py

test: lint typecheck unit

# The Python 3.13 runtime install + demo, outside the network namespace (pip needs the index).
test-py313: $(VENV)/.stamp-all
	$(VENV)/bin/pytest -q tests/test_trackers.py -k python313

# The inner loop: the tests not marked slow (no browser, no PyTorch export or synthesised corpus,
# no training runs, no long pipelines); `make test` runs them all, with lint and types.
test-fast: venv-python sysdeps-test $(VENV)/.stamp-all
	bash .ci/netns.sh $(VENV)/bin/pytest -q -m "not slow" $(PYTEST_ARGS)

bench: sysdeps-test $(VENV)/.stamp-all
	bash .ci/netns.sh $(VENV)/bin/stablesync bench --out benchmarks/results $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
