# bigseg: two-command quick start.  `make demo`, then `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo-output

.PHONY: demo test lint docs venv clean bench-env real-2d

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's metadata changes.  The napari extra is installed for its tests
# (tests/test_napari.py: real napari on a virtual display, see .ci/run for Xvfb).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,napari]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	rm -rf $(DEMO)
	$(BIN)/bigseg synth $(DEMO)/sample.ome.zarr --shape 24 256 256 --nuclei 40 --seed 0
	$(BIN)/bigseg segment $(DEMO)/sample.ome.zarr -o $(DEMO)/result
	$(BIN)/bigseg score $(DEMO)/result/nuclei.parquet $(DEMO)/sample_truth.csv
	$(BIN)/bigseg plot $(DEMO)/result
	@echo "Tables and figures are in $(DEMO)/result/"

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --ignore=tests/test_napari.py $(NO_QT)
	$(BIN)/python -m pytest tests/test_napari.py

# The napari tests run in a pytest process of their own: napari's and pytest-qt's plugins load
# napari and Qt into every pytest process (about 90 MiB), and in-process dask workers of other
# tests count the whole process against their memory limits (test_record.py: 1 GiB).
NO_QT := -p no:napari -p no:npe2 -p no:napari-plugin-engine -p no:pytest-qt -p no:xvfb

# StarDist's 2D test image (real dense nuclei and their labels, from the stardist wheel on the
# package registry) into .cache/real/ for tests/test_heldout.py and bench/accuracy.py, which
# skip it when it is absent (bench/fetch_real.py).
real-2d: venv
	$(BIN)/python bench/fetch_real.py

# The docs site, into site/ (also built, strictly, by the test suite: tests/test_docs.py).
docs: venv
	$(BIN)/mkdocs build --strict

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The peers' environment of bench/peers.py (Voronoi-Otsu-Labeling), apart from bigseg's own:
# never installed by `make test` or CI.
PEERS_VENV ?= bench/.venv-peers

$(PEERS_VENV)/.installed: bench/requirements-peers.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r bench/requirements-peers.txt
	touch $@

bench-env: $(PEERS_VENV)/.installed

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache site
