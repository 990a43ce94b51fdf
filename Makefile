# tsdiff developer commands. Every target installs into .venv first if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tsdiff-installed
# Data directory: $TSDIFF_DATA if set, else ../shared/data when it exists (developer checkouts).
export TSDIFF_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data))

.PHONY: install test test-integration demo clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[dev,peers]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n auto

test-integration: $(STAMP)
	$(PY) -m pytest -q -m integration

# Short CPU training of CSDI on AQI-36, then evaluation on the test months; writes results/*.json.
demo: $(STAMP)
	$(VENV)/bin/tsdiff fit configs/imputation/csdi_aqi36_demo.yaml --test

clean:
	rm -rf runs results lightning_logs .pytest_cache
