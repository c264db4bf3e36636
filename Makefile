# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create or reuse .venv and install the project into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to the build this project is tested with; override for another CUDA/CPU wheel.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Offline copies of the datasets (a sibling checkout's shared/ folder), unpacked once into the cache.
SHARED_DATA ?= ../shared/data
DATA_CACHE ?= .cache/data
export PAH_DATA_ROOT ?= $(if $(wildcard $(SHARED_DATA)/unpack),$(abspath $(DATA_CACHE)),)

.PHONY: venv data demo train test lint format clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev,dashboard]'
	@touch $@

venv: $(VENV)/.installed

data:
	@if [ -x $(SHARED_DATA)/unpack ]; then $(SHARED_DATA)/unpack $(DATA_CACHE); \
	else echo "no offline data at $(SHARED_DATA): datasets download into $${PAH_DATA_ROOT:-~/.cache/pah/data} on first use"; fi

# The main job: a small real PAH search (Ray Tune + Optuna + ASHA) on CIFAR-100 that learns, and a
# fine-tune reference; local Ray, sqlite MLflow (sweeps/demo.py).
# Ray keeps token auth on: a local token (owner-only file) is generated once under runs/.
RAY_TOKEN ?= runs/ray_auth_token
demo: venv data
	@mkdir -p runs && chmod 700 runs
	@test -s $(RAY_TOKEN) || (umask 077 && $(PY) -c "import secrets; print(secrets.token_hex(32))" > $(RAY_TOKEN))
	RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$(abspath $(RAY_TOKEN)) $(PY) sweeps/demo.py --storage runs/ray_results --mlflow-uri runs/mlflow.db

# One PAH run without Ray (configs/smoke.yaml): results.json and checkpoints under runs/train.
train: venv data
	$(PY) -m pah_core.train --config configs/smoke.yaml --out runs/train

test: venv data
	$(PY) -m pytest -q --durations=25 $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf runs .pytest_cache .ruff_cache
