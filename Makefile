# `make demo`, `make test` and `make test-all` each create .venv when missing and install into it,
# saying what each step installs (pip's progress bars show the downloads).
#
# Which torch build: pip installs TORCH_SPEC from the indexes pip is configured with. From the public
# index (pypi.org), torch==2.13.0 on Linux is the CUDA build (several GB of downloads). TORCH_INDEX
# picks PyTorch's index for one build, used for the torch step only; the CPU build (~190 MB):
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (a given CUDA version: https://download.pytorch.org/whl/cuXYZ). TORCH_SPEC overrides the version.
# PIP_EXTRA adds options to both pip steps (e.g. PIP_EXTRA='--no-cache-dir' or '--quiet').
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PIP_EXTRA ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/pip install --disable-pip-version-check --progress-bar on $(PIP_EXTRA)

.PHONY: demo test test-all venv bench clean gpu-check

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "make: creating the virtual environment $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "make: 1/2 installing $(TORCH_SPEC)$(if $(TORCH_INDEX), from $(TORCH_INDEX)) (the CPU build: about 1 min; a CUDA build: several GB to download)"
	$(PIP) $(if $(TORCH_INDEX),--index-url '$(TORCH_INDEX)') '$(TORCH_SPEC)'
	@echo "make: 2/2 installing sharedsg and its dependencies: ray, tensorboard, pytest, ... (about 2 min)"
	$(PIP) -e '.[test]'
	@echo "make: $(VENV) is ready"
	@touch $(STAMP)

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

# `make test`: the fast set, every test not marked `slow` (the end-to-end CLI and cluster tests, each
# starting Ray in a subprocess or a multi-node cluster, are); `make test-all`: every test. CI runs both.
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 -m "not slow" tests

test-all: $(STAMP)
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
