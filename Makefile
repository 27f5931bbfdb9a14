# The two commands a user needs: `make lab` (tutorials in JupyterLab) and `make test` (every tier).
# Both do all set-up from a fresh clone and are safe to run again.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
EXTRAS ?= hf,dev,projections,scale
LAB_PORT ?= 8888
BIN := $(VENV)/bin
comma := ,
STAMP := $(VENV)/.explorer-installed-$(TORCH_VERSION)-$(subst $(comma),-,$(EXTRAS))

.PHONY: lab test bench lint setup system-deps clean

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	# rfc3987-syntax adds ~4 s to every kernel start; JupyterLab does not need it.
	-$(BIN)/python -m pip uninstall -q -y rfc3987-syntax
	mkdir -p $(VENV)/share/jupyter/lab/settings
	printf '%s\n' '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

# Chromium renders static figure exports (kaleido) and runs the browser tests.
system-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "WARNING: no chromium on PATH: PNG/SVG/PDF export and the browser tests need it" \
	         "(Debian/Ubuntu: sudo apt-get install chromium)."; \
	  fi

lab: setup
	$(BIN)/jupyter lab --ip 127.0.0.1 --port $(LAB_PORT) --ServerApp.root_dir=notebooks $(LAB_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check explorer widgets tests bench
	$(BIN)/ruff format --check explorer widgets tests bench
	$(BIN)/mypy

test: setup lint
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -q -m kernels tests/unit
	$(BIN)/python -m pytest tests

bench: setup
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS),bench]"
	$(BIN)/python -m pip install -q --no-deps "GraphRicciCurvature>=0.5"
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts
