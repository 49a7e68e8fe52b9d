# The course's commands that work wherever the notebooks are: in the course repository (its
# Makefile includes this file) and in the student release (where this is the Makefile).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Exact versions: the interpreter of .venv (or the one that will create it) picks its lock file
CONSTRAINTS := $(shell $(if $(wildcard $(PY)),$(PY),$(PYTHON)) requirements/pins.py)

.PHONY: install lab doctor

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
  runs there), then start JupyterLab without make:
      $(PIP) install -e . && $(VENV)/bin/jupyter lab notebooks/
- Intel Mac (no PyTorch 2.3 or newer, the course's minimum, is built for it) or macOS 11: use Colab
  (README, "Colab").
If the error is about the network: pip needs the package index once; afterwards the course runs offline.
endef
export INSTALL_FAILED

# JupyterLab of this environment saves widget state, so that a saved notebook reopened shows the
# explorers' last picture, not "Error displaying widget" (an editable install skips pyproject's
# data-files, which put it there for a plain `pip install`)
LAB_DEFAULTS := $(VENV)/share/jupyter/lab/settings/overrides.d
define INSTALL_LAB_DEFAULTS
@mkdir -p $(LAB_DEFAULTS) && cp course_utils/jupyter/course-utils.json $(LAB_DEFAULTS)/
endef

# The stamps record that an install with this pyproject.toml and constraints file succeeded.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e . || { echo "$$INSTALL_FAILED" >&2; exit 1; }
	$(INSTALL_LAB_DEFAULTS)
	@touch $@

install: $(VENV)/.installed

## lab: JupyterLab on the notebooks (local address only; as root it adds --allow-root)
lab: install
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

## doctor: what is installed, which device, which flags, the data cache and the network
doctor: install
	$(PY) -m course_utils doctor
