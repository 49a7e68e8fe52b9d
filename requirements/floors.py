"""Print pip constraints that pin every direct dependency of pyproject.toml to its declared floor.

`make test-lowest` installs the course with these and runs the tests, so that the lower bounds
users rely on are measured, not guessed. Runs in the new, empty `.venv-lowest` (where the
Makefile first installs tomli on Python 3.10), before the course is installed.
"""

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        sys.exit("reading pyproject.toml on Python 3.10 needs tomli: pip install tomli")

FLOOR = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)\s*(;.*)?")


def floors(pyproject: Path) -> list[str]:
    """``name==floor`` lines (environment markers kept) for the runtime and dev dependencies."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = []
    for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]:
        match = FLOOR.fullmatch(requirement)
        if not match:
            sys.exit(f"{requirement!r}: every dependency needs a '>=' floor to test")
        name, version, marker = match.groups()
        lines.append(f"{name}=={version}{marker or ''}")
    return lines


if __name__ == "__main__":
    print("\n".join(floors(Path(__file__).resolve().parents[1] / "pyproject.toml")))
