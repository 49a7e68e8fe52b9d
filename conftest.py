"""Settings for every pytest run in this repository, whatever paths it is given.

The environment is set at import, before nbval starts any kernel, so every notebook runs in fast
mode, offline (stand-in data, no download attempts) and with strict checks (a ❌ or ⏳ from
``check()`` fails the cell), also when pytest is pointed at one notebook
(``python -m pytest notebooks/05_pooling.ipynb``), which never loads ``tests/conftest.py``.
"""

import os

SETTINGS = {
    "COURSE_FAST": "1",
    "COURSE_OFFLINE": "1",
    "COURSE_CHECK_STRICT": "1",
    "MPLBACKEND": "Agg",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}
os.environ.update(SETTINGS)


def pytest_report_header(config):
    """One header line that says which settings the run uses."""
    return "course settings: " + " ".join(f"{name}={value}" for name, value in SETTINGS.items())
