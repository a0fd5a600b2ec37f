# `make demo` and `make test` each create .venv when missing and install into it.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; override for another build, e.g. make test TORCH_SPEC='torch==2.13.0+cu121'
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench clean gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check '$(TORCH_SPEC)'
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# the Sec. 5.2 knowledge-sharing experiment on the shipped SDD sample, on a Ray started by the command
demo: $(STAMP)
	$(BIN)/sharedsg run configs/knowledge_sharing.yaml $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/sharedsg bench learner --json
	$(BIN)/sharedsg bench data --json
	$(BIN)/sharedsg bench runtime --json

clean:
	rm -rf $(VENV) runs .pytest_cache

# sharedsg on cuda vs cpu without Ray (tests/gpu/gpu_check.py); on a machine without CUDA only its CPU path runs
gpu-check:
	$(PYTHON) tests/gpu/gpu_check.py $(GPU_CHECK_ARGS)
