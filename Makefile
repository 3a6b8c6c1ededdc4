# sed-lightning — `make train` and `make test` are all a fresh machine needs.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
# uv installs from uv.lock; uv itself comes from the registry at this exact version.
UV_VERSION := 0.13.9
# The interpreter itself; one that pyenv has installed but not selected (its shim fails)
# is found with `pyenv whence`.
PYTHON_EXE := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null || \
	(v=$$(pyenv whence $(PYTHON) 2>/dev/null | tail -1) && [ -n "$$v" ] && \
	 PYENV_VERSION=$$v pyenv which $(PYTHON)) 2>/dev/null)
# One stamp per interpreter: `make test PYTHON=python3.13` rebuilds .venv for 3.13.
STAMP  := $(VENV)/.installed-$(notdir $(PYTHON))
ARGS   ?=
# pytest-xdist workers for `make test`: one a core ("auto"); TEST_JOBS=0 runs in one process.
# loadscope keeps a module's tests on one worker (its module fixtures are built once).
TEST_JOBS ?= auto
PYTEST := $(PY) -m pytest -n $(TEST_JOBS) --dist loadscope
export UV_PYTHON_DOWNLOADS := never
# uv syncs the project's environment, which is ./.venv unless this says otherwise: without it
# `make install VENV=.venv313` would rebuild .venv and leave $(VENV) empty.
export UV_PROJECT_ENVIRONMENT := $(VENV)
# ruff lints and formats every Python file in the repository (benchmarks/, experiments/ too);
# it skips what .gitignore names, and $(VENV) wherever it is.
RUFF   := $(VENV)/bin/ruff
RUFF_PATHS := . --extend-exclude $(VENV)

.PHONY: help install lock train test test-all lint format bench ablations clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  settings: PYTHON=$(PYTHON) VENV=$(VENV) TEST_JOBS=$(TEST_JOBS) ARGS=... STUDIES=..."

install: $(STAMP)  ## create the environment (VENV=.venv, PYTHON=python3.11) and install exactly what uv.lock pins, dev tools included (idempotent)

$(STAMP): pyproject.toml uv.lock
	@[ -n "$(PYTHON_EXE)" ] || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	@if [ -x $(PY) ] && [ "$$($(PY) -c 'import sys; print(sys.version_info[:2])')" != \
		"$$($(PYTHON_EXE) -c 'import sys; print(sys.version_info[:2])')" ]; then \
		echo "$(VENV) holds another Python than $(PYTHON): recreating it"; rm -rf $(VENV); fi
	test -x $(PY) || $(PYTHON_EXE) -m venv $(VENV)
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	@# --locked: stop if pyproject.toml changed without `make lock`; --inexact keeps pip and uv.
	$(UV) sync --locked --inexact --extra dev --python $(PY)
	rm -f $(VENV)/.installed*
	touch $(STAMP)

lock:  ## re-resolve uv.lock from pyproject.toml (ARGS="--upgrade-package NAME" to move one package)
	@[ -n "$(PYTHON_EXE)" ] || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON_EXE) -m venv $(VENV)
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(UV) lock $(ARGS)

train: install  ## train + test the default experiment on built-in generated data (ARGS="key=value ...")
	$(PY) -m sed_lightning.train $(ARGS)

test: install  ## run the test suite on every core (slow tests excluded; TEST_JOBS=0: one process)
	$(PYTEST) $(ARGS)

test-all: install  ## run every test, slow ones included
	$(PYTEST) -m "" $(ARGS)

lint: install  ## ruff lint + format check of every Python file
	$(RUFF) check $(RUFF_PATHS)
	$(RUFF) format --check $(RUFF_PATHS)

format: install  ## ruff autofix + format of every Python file
	$(RUFF) check --fix $(RUFF_PATHS)
	$(RUFF) format $(RUFF_PATHS)

bench: install  ## speed/cost/accuracy benchmarks -> benchmarks/results/ (ARGS="--name cpu ...")
	$(PY) -m benchmarks.bench $(ARGS)

# Not swept here: label_constraint (fine-tunes each seed's converged checkpoint) and
# self_training_control: their commands are in experiments/<study>/README.md.
STUDIES ?= loss_weighting pooling model median_filter self_training augment mean_teacher

ablations: install  ## every ablation sweep + report -> experiments/<study>/ (hours on CPU; STUDIES=pooling)
	@for study in $(STUDIES); do \
		echo "== ablation study $$study"; \
		$(PY) -m sed_lightning.train -m +experiment=ablation/$$study $(ARGS) || exit 1; \
		if [ $$study = median_filter ]; then \
			$(PY) -m sed_lightning.tools median-study experiments/median_filter/runs \
				--out experiments/median_filter || exit 1; \
		else \
			$(PY) -m sed_lightning.tools report experiments/$$study || exit 1; \
		fi; \
	done

clean:  ## remove caches and outputs (keeps .venv and data_cache)
	rm -rf outputs multirun .pytest_cache .ruff_cache
