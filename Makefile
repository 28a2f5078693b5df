# fusion: one target per experiment. Every target installs what it needs into .venv first.
#   make demo                 build the small embedded cohorts and run both pipelines
#   make test                 install, lint (ruff, mypy) and run the test suite
#   make vae LOGDIR=runs/x ARGS='model.latent_dim=32 folds.n_splits=5'
SHELL := /bin/bash
# Let Python cache bytecode in .venv even where the environment says not to: without the cache
# every process compiles torch, catalyst and nilearn again (imports take ~21 s instead of ~10 s).
unexport PYTHONDONTWRITEBYTECODE
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV)/bin)
STAMP := $(VENV)/.installed
# The CPU build lies on this machine's disk; GPU users: TORCH_SPEC='torch' (or install torch first).
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
LOGDIR ?=
ARGS ?=
PYTEST_ARGS ?=

VAE_DATA := data/vae_small
CCL_DATA := data/ccl_small
VAE_PREPARED := $(VAE_DATA)/prepared/index.csv
CCL_MANIFEST := $(CCL_DATA)/manifest.csv
# Catalyst's entry point declares `@hydra.main()` without version_base, and Hydra 1.3 warns about it
# (and the implied config_path) on every run; our configs set what that default changes
# (hydra.job.chdir), so those two warnings, raised from that one module, are silenced.
HYDRA := PYTHONWARNINGS="$${PYTHONWARNINGS:+$$PYTHONWARNINGS,}ignore::UserWarning:catalyst.dl.scripts.hydra_run" \
	$(BIN)/catalyst-dl run --hydra --config-dir conf

.PHONY: install demo lint test soak vae vae-paper vae-table1 vae-seeds vae-validate ccl ccl-paper ccl-table3 ccl-validate bench cohorts prepare clean gpu-check

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "pip<24.1"   # catalyst 21.12 metadata is rejected by pip>=24.1
	$(BIN)/pip install -q --no-compile "$(TORCH_SPEC)"   # .pyc written on first import, for what is used
	$(BIN)/pip install -q --no-compile -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

# A cohort is rebuilt when its generator changes (a clone that pulls new defaults gets them).
$(VAE_DATA)/manifest.csv: fusion/data/synthetic_volumes.py fusion/data/volume_design.py fusion/data/volume_layout.py fusion/data/vae_variants.py | $(STAMP)
	$(BIN)/fusion cohort-vae --out $(VAE_DATA) --size small --overwrite

$(VAE_PREPARED): $(VAE_DATA)/manifest.csv
	$(BIN)/fusion prepare --manifest $(VAE_DATA)/manifest.csv --out $(VAE_DATA)/prepared

$(CCL_MANIFEST): fusion/data/synthetic_ccl.py | $(STAMP)
	$(BIN)/fusion cohort-ccl --out $(CCL_DATA) --size small --overwrite

cohorts: $(VAE_PREPARED) $(CCL_MANIFEST)

prepare: $(STAMP)
	@test -n "$(MANIFEST)" || { echo "usage: make prepare MANIFEST=path/manifest.csv OUT=path/prepared"; exit 2; }
	$(BIN)/fusion prepare --manifest $(MANIFEST) --out $(OUT)

vae: $(STAMP) $(if $(findstring data.,$(ARGS)),,$(VAE_PREPARED))
	$(HYDRA) --config-name vae $(if $(LOGDIR),logdir=$(LOGDIR)) $(ARGS)

# Paper-size cohorts (conf/data/vae_paper.yaml, ccl_paper.yaml): built and prepared before the first
# paper run, rebuilt when their generator changes; ARGS naming data.* (your own data) skips them.
VAE_PAPER_DATA := data/vae_paper
CCL_PAPER_DATA := data/ccl_paper
VAE_PAPER_PREPARED := $(VAE_PAPER_DATA)/prepared/index.csv
CCL_PAPER_MANIFEST := $(CCL_PAPER_DATA)/manifest.csv

$(VAE_PAPER_DATA)/manifest.csv: fusion/data/synthetic_volumes.py fusion/data/volume_design.py fusion/data/volume_layout.py fusion/data/vae_variants.py | $(STAMP)
	$(BIN)/fusion cohort-vae --out $(VAE_PAPER_DATA) --size paper --overwrite

$(VAE_PAPER_PREPARED): $(VAE_PAPER_DATA)/manifest.csv
	$(BIN)/fusion prepare --manifest $(VAE_PAPER_DATA)/manifest.csv --out $(VAE_PAPER_DATA)/prepared

$(CCL_PAPER_MANIFEST): fusion/data/synthetic_ccl.py | $(STAMP)
	$(BIN)/fusion cohort-ccl --out $(CCL_PAPER_DATA) --size paper --overwrite

vae-paper: $(STAMP) $(if $(findstring data.,$(ARGS)),,$(VAE_PAPER_PREPARED))
	$(HYDRA) --config-name vae_paper $(if $(LOGDIR),logdir=$(LOGDIR)) $(ARGS)

ccl-paper: $(STAMP) $(if $(findstring data.,$(ARGS)),,$(CCL_PAPER_MANIFEST))
	$(HYDRA) --config-name ccl_paper $(if $(LOGDIR),logdir=$(LOGDIR)) $(ARGS)

vae-table1: $(STAMP) $(VAE_PREPARED)
	$(BIN)/fusion vae-table1 $(if $(LOGDIR),--logdir $(LOGDIR)) -- $(ARGS)

vae-seeds: $(STAMP) $(VAE_PREPARED)
	$(BIN)/fusion vae-seeds $(if $(LOGDIR),--logdir $(LOGDIR)) -- $(ARGS)

# The VAE with its defaults on the validation family (10 cohort variants x 3 seeds; hours on 2 cores).
#   make vae-validate LOGDIR=runs/vae_validate VALIDATE_ARGS='--variants null,weak_effect --seeds 0' ARGS='folds.n_splits=5'
VALIDATE_ARGS ?=
vae-validate: $(STAMP)
	$(BIN)/fusion vae-validate $(if $(LOGDIR),--out $(LOGDIR)) $(VALIDATE_ARGS) -- $(ARGS)

ccl: $(STAMP) $(if $(findstring data.,$(ARGS)),,$(CCL_MANIFEST))
	$(HYDRA) --config-name ccl $(if $(LOGDIR),logdir=$(LOGDIR)) $(ARGS)

ccl-table3: $(STAMP) $(CCL_MANIFEST)
	$(BIN)/fusion ccl-table3 $(if $(LOGDIR),--logdir $(LOGDIR)) -- $(ARGS)

# gCAM-CCL with the defaults on every cohort variant x 3 seeds, beside its baselines (hours on a CPU;
# resumable). VALIDATE_ARGS e.g. '--variants outside,null --seeds 0'.
ccl-validate: $(STAMP)
	$(BIN)/fusion ccl-validate $(if $(LOGDIR),--out $(LOGDIR)) $(VALIDATE_ARGS) $(if $(ARGS),-- $(ARGS))

# The demo trains the VAE for one epoch per fold (~5 min in all; the default config trains ten) and
# gCAM-CCL on 2 repeated splits (the default config draws 5).
DEMO_VAE_ARGS ?= stage.num_epochs=1
DEMO_CCL_ARGS ?= split.repetitions=2

demo: $(STAMP)
	$(MAKE) --no-print-directory -j2 cohorts   # the two cohorts are built side by side
	$(MAKE) --no-print-directory vae LOGDIR=runs/demo/vae ARGS='$(DEMO_VAE_ARGS)'
	$(MAKE) --no-print-directory ccl LOGDIR=runs/demo/ccl ARGS='$(DEMO_CCL_ARGS)'
	@echo; echo "VAE results: runs/demo/vae/results.json  report: runs/demo/vae/report.md"
	@echo "CCL results: runs/demo/ccl/results.json  report: runs/demo/ccl/report.md"

# ruff and mypy read their settings from pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check fusion runners callbacks tests bench examples
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -m "not soak" $(PYTEST_ARGS)

soak: $(STAMP)
	$(BIN)/python -m pytest -m soak $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# On a CUDA machine: GPU tests, one paper-size bf16 epoch, cuML SVM, CuPy PCA (< 8 min). Without
# CUDA it says so and exits 0; ARGS=--dry-run runs the same code on the CPU at tiny sizes.
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python bash bench/gpu_check.sh $(ARGS)

clean:
	rm -rf runs outputs multirun
