"""``python -m course_utils gradescope --out bundle.zip``: a Gradescope autograder.

The zip holds ``setup.sh`` and ``run_autograder`` (what Gradescope runs) and the course itself
(package with hidden tests, source notebooks, pinned requirements). ``run_autograder`` grades
the one submission in ``/autograder/submission`` with the same grader as ``grade`` and writes
``/autograder/results/results.json``. ``AUTOGRADER_ROOT`` moves ``/autograder`` (for tests).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image (Ubuntu, as root).
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-pip python3-venv util-linux > /dev/null
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet -c /autograder/source/course/requirements/constraints.txt \\
    -e /autograder/source/course
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root; it grades with `course_utils` and writes results.json.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${COURSE_PYTHON:-$ROOT/venv/bin/python}"
cd "$ROOT/source/course"
exec "$PYTHON" -m course_utils gradescope-run "$ROOT"
"""

BUNDLED = ("pyproject.toml", "README.md", "requirements", "course_utils", "notebooks")


def build_bundle(zip_path: Path, root: Path) -> Path:
    """Write the autograder zip to ``zip_path`` from the course repository at ``root``."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            bundle.writestr(info, text)
        for item in BUNDLED:
            source = root / item
            files = (
                [source]
                if source.is_file()
                else sorted(p for p in source.rglob("*") if p.is_file())
            )
            for path in files:
                if "__pycache__" in path.parts or path.suffix == ".pyc":
                    continue
                bundle.write(path, f"course/{path.relative_to(root)}")
    return zip_path


def run_autograder(root: Path) -> dict:
    """Grade ``root/submission`` (Gradescope's layout) and write ``root/results/results.json``."""
    from course_utils.grading.grade import (
        NotebookResult,
        grade_folder,
        gradescope_results,
        notebook_files,
        source_notebooks,
    )

    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    sources = source_notebooks()
    uploaded = notebook_files(root / "submission")
    rows: list[NotebookResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        student = Path(tmp) / "submissions" / "student"
        for relative in uploaded:  # grade.collect matches files to notebooks, by name or content
            (student / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "submission" / relative, student / relative, follow_symlinks=False)
        if uploaded:
            rows = grade_folder(student.parent, Path(tmp) / "out", jobs=1)
    results = (
        gradescope_results(rows)
        if rows
        else {
            "score": 0.0,
            "tests": [],
            "output": "no notebook of this course found in the submission; upload the .ipynb file you worked in "
            f"(expected one of: {', '.join(sorted(sources))})",
        }
    )
    (results_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results
