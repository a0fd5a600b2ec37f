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

# Data tests read $SHAREDSG_DATA. Where a shared data folder sits beside the checkout (our machines),
# it is used, and then a missing dataset fails the run; elsewhere (a fresh clone) the tests that need a
# dataset that is not in the per-user data folder are skipped, one summary line per dataset saying how
# to enable them (`sharedsg data download omniglot`, ...).
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(SHAREDSG_DATA),)
ifneq ($(wildcard $(SHARED_DATA)/.),)
export SHAREDSG_DATA := $(SHARED_DATA)
endif
endif

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 tests

bench: $(STAMP)
	$(BIN)/sharedsg bench learner --json
	$(BIN)/sharedsg bench data --json
	$(BIN)/sharedsg bench runtime --json

clean:
	rm -rf $(VENV) runs .pytest_cache

# sharedsg on cuda vs cpu without Ray (tests/gpu/gpu_check.py); on a machine without CUDA only its CPU path runs
gpu-check:
	$(PYTHON) tests/gpu/gpu_check.py $(GPU_CHECK_ARGS)
