# The course's commands. `make run` and `make test` create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Exact versions: the interpreter of .venv (or the one that will create it) picks its lock file
CONSTRAINTS := $(shell $(if $(wildcard $(PY)),$(PY),$(PYTHON)) requirements/pins.py)
PYTEST_ARGS ?=

.PHONY: run test test-lowest lab install install-dev lint format strip readme doctor lock clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.10 or newer is needed; found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)

# Printed when pip fails; most often the pinned torch has no wheel for this computer
TORCH_PIN := $(shell sed -n 's/^torch==//p' $(CONSTRAINTS))
define INSTALL_FAILED

pip could not install the exact versions pinned in $(CONSTRAINTS).
If it found no matching torch: the pinned torch $(TORCH_PIN) has wheels for Linux (x86-64, aarch64),
Windows (x86-64) and macOS 14 or newer on Apple silicon.
- macOS 12 or 13 on Apple silicon: install without the pins (pip then picks an older torch that
  runs there) and run the course without make (README, "Without make"):
      $(PIP) install -e ".[dev]" && $(PY) -m course_utils run
- Intel Mac (no PyTorch 2.3 or newer, the course's minimum, is built for it) or macOS 11: use Colab
  (README, "Colab").
If the error is about the network: pip needs the package index once; afterwards the course runs offline.
endef
export INSTALL_FAILED

# The stamps record that an install with this pyproject.toml and constraints file succeeded.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e . || { echo "$$INSTALL_FAILED" >&2; exit 1; }
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev]" || { echo "$$INSTALL_FAILED" >&2; exit 1; }
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## run: execute every notebook headless into build/executed/ and print a table of results
run: install
	$(PY) -m course_utils run

## test: unit tests, lint and every notebook under nbval (COURSE_FAST=1, offline)
test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

## test-lowest: the same tests with every direct dependency at its pyproject.toml floor
## (a separate .venv-lowest; downloads those versions once, about 3 GB with torch)
test-lowest:
	$(PYTHON) -m venv $(VENV)-lowest
	$(VENV)-lowest/bin/python -m pip install --quiet "tomli; python_version < '3.11'"  # floors.py reads TOML
	$(VENV)-lowest/bin/python requirements/floors.py > $(VENV)-lowest/floors.txt
	$(VENV)-lowest/bin/python -m pip install --quiet -c $(VENV)-lowest/floors.txt -e ".[dev]"
	$(VENV)-lowest/bin/python -m pytest $(PYTEST_ARGS)

## lab: JupyterLab on the notebooks (local address only; as root it adds --allow-root)
lab: install
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

lint: install-dev
	$(VENV)/bin/ruff check course_utils tests benchmarks requirements notebooks conftest.py

format: install-dev
	$(VENV)/bin/ruff format course_utils tests benchmarks requirements conftest.py
	$(VENV)/bin/ruff check --fix course_utils tests benchmarks requirements notebooks conftest.py

## strip: remove outputs from the notebooks (cells marked NBVAL_CHECK_OUTPUT keep theirs)
strip: install-dev
	$(PY) -m course_utils strip

readme: install
	$(PY) -m course_utils readme

doctor: install
	$(PY) -m course_utils doctor

## lock: re-pin the lock file of .venv's Python to what .venv holds
lock: install-dev
	@{ echo "# Exact versions \`make\` installs (pip constraints: pins only what is requested); requirements/pins.py"; \
	   echo "# picks the file for a Python. Regenerate after a dependency change: make lock"; \
	   echo "# (for constraints-py310.txt: make lock PYTHON=python3.10 VENV=.venv-py310)"; \
	   $(PIP) freeze --exclude-editable; } > $(CONSTRAINTS)

clean:
	rm -rf build .pytest_cache .ruff_cache
