"""Test-suite settings shared by unit tests and the notebooks nbval executes.

The environment is set at import, before nbval starts any kernel, so every notebook runs
in fast mode, offline (stand-in data, no download attempts) and with strict checks (a ❌ or
⏳ from ``check()`` fails the cell).
"""

import os
from pathlib import Path

import pytest

os.environ.update(
    {
        "COURSE_FAST": "1",
        "COURSE_OFFLINE": "1",
        "COURSE_CHECK_STRICT": "1",
        "MPLBACKEND": "Agg",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Path:
    """The repository root."""
    return ROOT
