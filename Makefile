# Two commands do all set-up on a fresh machine (Python 3.11+ is all it needs):
#   make run    create .venv if missing, install, start the service on an embedded Redis
#   make test   create .venv if missing, install, run every check (ruff, ruff format, mypy, pytest)
# torch: on a machine without an NVIDIA GPU (no nvidia-smi) from PyTorch's CPU wheel index (the
# CPU build; PyPI's Linux x86-64 wheel is the multi-GB CUDA one), falling back to the default
# index when that one cannot be reached (5 s timeout, no retries). GPU hosts: PyPI's build, or set
# TORCH_SPEC to a CUDA line, e.g.
#   make run TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
# (Dockerfile.gpu does exactly this). A TORCH_SPEC other than the installed one reinstalls torch.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed
# holds the TORCH_SPEC torch was installed from
TORCH_STAMP := $(VENV)/.torch-spec

.PHONY: run test lint typecheck pytest setup clean tools promtool browser lock

setup: $(STAMP)

ifeq ($(strip $(shell cat $(TORCH_STAMP) 2>/dev/null)),$(strip $(TORCH_SPEC)))
else
.PHONY: $(TORCH_STAMP)
endif

ifneq ($(shell command -v nvidia-smi 2>/dev/null),)
TORCH_INSTALL = $(PIP) install --quiet $(TORCH_SPEC)
else ifneq ($(findstring index-url,$(TORCH_SPEC)),)
TORCH_INSTALL = $(PIP) install --quiet $(TORCH_SPEC)
else
TORCH_INSTALL = $(PIP) install --quiet --timeout 5 --retries 0 --index-url $(TORCH_CPU_INDEX) \
		$(TORCH_SPEC) \
	|| { echo "setup: $(TORCH_CPU_INDEX) unreachable; torch from the default index"; \
		$(PIP) install --quiet $(TORCH_SPEC); }
endif

# torch alone, again whenever TORCH_SPEC differs from the spec it was installed from (the old
# build goes first: pip would take a CPU 2.13.0 as satisfying a CUDA torch==2.13.0)
$(TORCH_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) uninstall --quiet --yes torch 2>/dev/null || true
	$(TORCH_INSTALL)
	echo '$(strip $(TORCH_SPEC))' > $(TORCH_STAMP)

# Runtime dependencies install at the versions of deploy/requirements.lock, the ones the image
# ships; a new dependency installs at its newest version until `make lock` pins it.
$(STAMP): $(TORCH_STAMP) pyproject.toml deploy/requirements.lock
	$(PIP) install --quiet --constraint deploy/requirements.lock -e '.[dev,gpu]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/swintormer serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) tools
	$(BIN)/python -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info .tools

# Offline checkers of the deployment files (tests/deploy), installed into .tools/ when missing:
# dclint from npm; promtool unpacked from Debian's prometheus package (no server is installed or
# started). hadolint comes with the dev extras. A checker that cannot be installed here makes its
# test fail under CI=true and skip elsewhere, with the reason. The web page's tests (tests/browser)
# need a browser: Debian's chromium and chromium-driver, installed with apt-get when missing
# (root only; the same rule applies when it cannot be).
TOOLS := .tools
DCLINT := $(TOOLS)/node/node_modules/.bin/dclint

tools: $(DCLINT) promtool browser

$(DCLINT):
	npm install --prefix $(TOOLS)/node --no-audit --no-fund --loglevel=error dclint@3.1.0 \
		|| echo "tools: could not install dclint from npm"

promtool:
	@command -v promtool >/dev/null || test -x $(TOOLS)/prometheus/usr/bin/promtool \
		|| ( mkdir -p $(TOOLS)/deb && cd $(TOOLS)/deb \
			&& ( apt-get download prometheus 2>/dev/null \
				|| ( apt-get update -qq && apt-get download prometheus ) ) \
			&& dpkg-deb -x prometheus_*.deb ../prometheus && rm -f prometheus_*.deb ) \
		|| echo "tools: could not install promtool from Debian's prometheus package"

browser:
	@( command -v chromium && command -v chromedriver ) >/dev/null \
		|| ( export DEBIAN_FRONTEND=noninteractive \
			&& ( apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
				|| ( apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null ) ) ) \
		|| echo "tools: could not install chromium and chromium-driver from Debian"

# Pin the runtime dependencies of this environment for Dockerfile.gpu and `make setup`. To move
# a pin: `$(BIN)/pip install -U NAME` (or edit its line when a new lower bound conflicts), then
# `make lock`.
lock: $(STAMP)
	$(BIN)/swintormer lock --output deploy/requirements.lock
	touch $(STAMP)
