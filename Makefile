# Two commands on a fresh machine:
#   make demo   -- builds .venv/ and runs the main job on the embedded default
#   make test   -- builds .venv/ and runs the test suite
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench clean

$(STAMP): setup.py requirements/*.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: a plain requirement would pull a CUDA build.
	$(PIP) install -q -r requirements/torch.txt
	$(PIP) install -q $(foreach f,$(wildcard requirements/*.txt),-r $(f))
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dpsynth demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info
