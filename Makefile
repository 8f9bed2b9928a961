# The two commands of the README. Both set up everything they need from scratch.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup weights lint clean-outputs

$(BIN)/facesr: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/facesr

setup: $(BIN)/facesr

weights: setup
	$(BIN)/facesr weights fetch

# The main job: `dvc repro` of the demo profile (synthetic faces, offline, minutes on a CPU).
demo: weights
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

# The test suite; CI runs exactly this (.ci/run).
test: weights
	$(BIN)/ruff check .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
