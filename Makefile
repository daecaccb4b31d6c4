# The README's two commands: `make demo` (set up, then denoise the bundled example image
# with the bundled demo model) and `make test` (set up, then run the test suite).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_output

.PHONY: demo test setup setup-dev clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[torch]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

demo: setup
	$(PY) -m atbsn_edge.denoise atbsn_edge/assets/example_noisy.png -o $(DEMO_OUT) --overwrite
	@echo "denoised image: $(DEMO_OUT)/example_noisy.png"

test: setup-dev
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
