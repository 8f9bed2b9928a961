# The two commands of the README. Both set up everything they need from scratch.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup weights lint clean-outputs

$(BIN)/facesr: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	# facenet-pytorch (MTCNN face detector for `facesr upscale --faces auto`; its weights ship in the
	# wheel) pins torch<2.3 and numpy<2 in its metadata but runs on this stack; install its code alone.
	$(BIN)/pip install -q --no-deps facenet-pytorch==2.6.0
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
