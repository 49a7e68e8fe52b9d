"""Fixtures and the ``sandbox`` marker shared by the unit tests. The environment every run uses
(fast, offline, strict checks) is set by the repository's root ``conftest.py``.
"""

import ast
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ("pytester",)  # tests of the root conftest.py run pytest on small projects


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sandbox: grades in the sandbox, which needs root on Linux (skipped elsewhere)"
    )


def pytest_runtest_setup(item):
    if item.get_closest_marker("sandbox") and (
        not sys.platform.startswith("linux") or os.geteuid() != 0
    ):
        pytest.skip("the grading sandbox needs root on Linux; CI runs as root")


@pytest.fixture
def root() -> Path:
    """The repository root."""
    return ROOT


def _imported_modules(source: str) -> set[str]:
    """Modules a piece of Python imports (at any depth), with course_utils' imported names."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
            if node.module == "course_utils":
                names |= {f"course_utils.{alias.name}" for alias in node.names}
    return names


@pytest.fixture
def imports_of():
    """``imports_of(source)``: the modules that Python source imports (see _imported_modules)."""
    return _imported_modules
