# The course's commands. `make run` and `make test` create .venv when it is missing; the
# targets that also work in the student release (install, lab, doctor) are in course.mk.
include course.mk
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (0: one process, as --pdb needs); the notebooks run one at a
# time in one of them (conftest.py's NOTEBOOK_RUNS); each worker gets an equal share of the cores'
# threads. A crashed worker ends the run as failed: a replacement would go on with a notebook's
# later cells in a kernel that never ran its earlier ones.
TEST_WORKERS ?= 2

.PHONY: run test test-colab test-browser test-lowest install-dev lint format strip readme lock clean

$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev]" || { echo "$$INSTALL_FAILED" >&2; exit 1; }
	$(INSTALL_LAB_DEFAULTS)
	@touch $@ $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## run: execute every notebook headless into build/executed/ and print a table of results
run: install
	$(PY) -m course_utils run

## test: unit tests, lint and every notebook under nbval (COURSE_FAST=1, offline), in two workers
test: install-dev
	$(PY) -m pytest -n $(TEST_WORKERS) --max-worker-restart=0 $(PYTEST_ARGS)

## test-colab: the student release installed by its own Colab cell into Colab's package versions
## (requirements/colab.txt, in a separate .venv-colab) and every release notebook run there
test-colab: install-dev
	$(PYTHON) -m venv $(VENV)-colab
	$(VENV)-colab/bin/python -m pip install --quiet -r requirements/colab.txt
	$(PY) tests/colab/run_release.py --python $(VENV)-colab/bin/python

## test-browser: JupyterLab on 127.0.0.1 in headless Chromium (Debian's, installed when missing),
## driven by Playwright: every notebook run, explorers moved, a release exercise typed, reopened
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get
$(VENV)/.installed-browser: $(VENV)/.installed-dev
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev,browser]" || { echo "$$INSTALL_FAILED" >&2; exit 1; }
	@touch $@

test-browser: $(VENV)/.installed-browser
	@[ -n "$(CHROMIUM)" ] || { $(APT_GET) install -y -qq chromium fonts-noto-color-emoji >/dev/null \
	  || { $(APT_GET) update -qq && $(APT_GET) install -y -qq chromium fonts-noto-color-emoji >/dev/null; } \
	  || { echo "Chromium is missing and apt-get could not install it: install Debian's chromium as root" >&2; exit 1; }; }
	$(PY) tests/browser/run_browser.py

## test-lowest: the same tests with every direct dependency at its pyproject.toml floor
## (a separate .venv-lowest; downloads those versions once, about 3 GB with torch)
test-lowest:
	$(PYTHON) -m venv $(VENV)-lowest
	$(VENV)-lowest/bin/python -m pip install --quiet "tomli; python_version < '3.11'"  # floors.py reads TOML
	$(VENV)-lowest/bin/python requirements/floors.py > $(VENV)-lowest/floors.txt
	$(VENV)-lowest/bin/python -m pip install --quiet -c $(VENV)-lowest/floors.txt -e ".[dev]"
	$(VENV)-lowest/bin/python -m pytest -n $(TEST_WORKERS) --max-worker-restart=0 $(PYTEST_ARGS)

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

## lock: re-pin the lock file of .venv's Python to what .venv holds
lock: install-dev
	@{ echo "# Exact versions \`make\` installs (pip constraints: pins only what is requested); requirements/pins.py"; \
	   echo "# picks the file for a Python. Regenerate after a dependency change: make lock"; \
	   echo "# (for constraints-py310.txt: make lock PYTHON=python3.10 VENV=.venv-py310)"; \
	   $(PIP) freeze --exclude-editable; } > $(CONSTRAINTS)

clean:
	rm -rf build .pytest_cache .ruff_cache
