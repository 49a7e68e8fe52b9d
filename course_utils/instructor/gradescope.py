"""``python -m course_utils gradescope --out bundle.zip [--only 05]``: a Gradescope autograder.

The zip holds ``setup.sh`` and ``run_autograder`` (what Gradescope runs) and the course itself
(package with hidden tests, the assignment's source notebooks, the pinned requirements).
``setup.sh`` installs the lock file of the image's Python (as ``requirements/pins.py`` picks it)
with PyTorch's CPU-only build: a grader has no GPU, and the CUDA build's ``nvidia-*`` packages
are gigabytes. ``run_autograder`` grades the one submission in ``/autograder/submission`` with
the same grader as ``grade`` and always writes ``/autograder/results/results.json``: with the
scores, or with what went wrong (no course notebook in the upload, another assignment's
notebook, a sandbox that cannot start, a grader that failed). ``AUTOGRADER_ROOT`` moves
``/autograder`` (for tests).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

#: Where PyTorch publishes its CPU-only wheels.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: What the CUDA build of torch pulls in and a CPU-only grader does without.
CUDA_ONLY = r"^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)=="

SETUP_SH = f"""#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image (Ubuntu, as root).
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-pip python3-venv util-linux > /dev/null
python3 -m venv /autograder/venv
COURSE=/autograder/source/course
PYTHON=/autograder/venv/bin/python
# the lock file of this image's Python, as the course's Makefile picks it
CONSTRAINTS="$COURSE/$("$PYTHON" "$COURSE/requirements/pins.py")"
# PyTorch's CPU-only build at the pinned versions: the grader has no GPU
"$PYTHON" -m pip install --quiet --index-url {TORCH_CPU_INDEX} \\
    $(grep -E '^(torch|torchvision)==' "$CONSTRAINTS")
# everything else at the pinned versions, without the CUDA build's packages
grep -vE '{CUDA_ONLY}' "$CONSTRAINTS" > /autograder/constraints-cpu.txt
"$PYTHON" -m pip install --quiet -c /autograder/constraints-cpu.txt -e "$COURSE"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root: it grades with `course_utils` and writes
# results.json; if the grader itself cannot run, it still writes one that says so.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${COURSE_PYTHON:-$ROOT/venv/bin/python}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
cd "$ROOT/source/course" && "$PYTHON" -m course_utils gradescope-run "$ROOT"
if [ ! -s "$RESULTS" ]; then
  cat > "$RESULTS" <<'EOF'
{"score": 0, "tests": [], "output": "No grade was given: the autograder failed before it could grade your notebook (an error of the grader, not of your work). Your instructor has been shown the error; you need not resubmit unless asked."}
EOF
fi
"""

BUNDLED = ("pyproject.toml", "README.md", "requirements", "course_utils")
#: In the bundle: every course notebook's exercise ids, to recognise another assignment's upload.
MANIFEST = "course.json"


def build_bundle(
    zip_path: Path, root: Path, *, only: list[str] | None = None, replace: bool = False
) -> tuple[Path, list[str]]:
    """Write the autograder zip to ``zip_path`` from the course repository at ``root``, with the
    notebooks ``only`` names (numbers or names; every graded notebook without it); return the
    zip's path and the notebooks it grades. ValueError or FileExistsError say what to fix."""
    from course_utils.instructor.grading.collect import selected, source_notebooks

    zip_path = Path(zip_path)
    if zip_path.is_dir():
        raise ValueError(
            f"{zip_path} is a folder; name the zip file to write, e.g. --out {zip_path / 'autograder.zip'}"
        )
    if zip_path.exists() and not replace:
        raise FileExistsError(
            f"{zip_path} exists; choose another name, or pass --replace to write over it"
        )
    blocked = next((p for p in zip_path.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ValueError(
            f"{blocked} is a file, so {zip_path} cannot be written under it; choose another --out"
        )
    sources = source_notebooks(root / "notebooks")  # reads the hidden tests (and loads torch)
    chosen = selected(sources, only)  # a typo in --only stops here
    try:
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        partial = zip_path.with_name(zip_path.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o755 << 16
                bundle.writestr(info, text)
            course = {name: list(source.exercise_ids) for name, source in sources.items()}
            bundle.writestr(f"course/{MANIFEST}", json.dumps(course, indent=1))
            files = [root / "notebooks" / name for name in chosen]
            for item in BUNDLED:
                source = root / item
                files += (
                    [source]
                    if source.is_file()
                    else sorted(p for p in source.rglob("*") if p.is_file())
                )
            for path in files:
                if "__pycache__" not in path.parts and path.suffix != ".pyc":
                    bundle.write(path, f"course/{path.relative_to(root)}")
        partial.replace(zip_path)
    except OSError as exc:
        raise ValueError(
            f"cannot write {zip_path} ({exc.strerror or exc}); choose a folder you can write to"
        ) from None
    return zip_path, chosen


def _message(text: str) -> dict:
    return {"score": 0.0, "tests": [], "output": text}


def run_autograder(root: Path) -> dict:
    """Grade ``root/submission`` (Gradescope's layout) and write ``root/results/results.json``,
    whatever happens."""
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        results = _grade_upload(root)
    except Exception as exc:  # noqa: BLE001 - the student must get a results.json in any case
        from course_utils.instructor.grading.sandbox import SandboxUnavailable

        if isinstance(exc, SandboxUnavailable):
            text = (
                "No grade was given: this autograder cannot isolate submissions on the machine "
                f"Gradescope gave it ({exc}). Your notebook was not run; your instructor will grade "
                "it another way."
            )
        else:
            text = (
                "No grade was given: the autograder failed while grading "
                f"({type(exc).__name__}: {str(exc)[:200]}), an error of the grader, not of your work."
            )
        results = _message(text)
    (results_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def _grade_upload(root: Path) -> dict:
    from course_utils.instructor.grading.collect import notebook_files, source_notebooks
    from course_utils.instructor.grading.grade import grade_folder
    from course_utils.instructor.grading.reports import gradescope_results

    sources = source_notebooks()
    expected = ", ".join(sorted(sources))
    uploaded = notebook_files(root / "submission")
    if not uploaded:
        return _message(
            f"No notebook found in your upload; upload the .ipynb file you worked in ({expected})."
        )
    with tempfile.TemporaryDirectory() as tmp:
        student = Path(tmp) / "submissions" / "student"
        for relative in uploaded:  # grading matches files to notebooks, by name or content
            (student / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "submission" / relative, student / relative, follow_symlinks=False)
        # every notebook of the bundle gets a row: one not uploaded shows as not submitted
        every = [name.removesuffix(".ipynb") for name in sources]
        rows = grade_folder(student.parent, Path(tmp) / "out", jobs=1, only=every)
    if any(row.status != "missing" for row in rows):
        return gradescope_results(rows)
    other = _other_assignment(root, uploaded)
    if other:
        return _message(
            f"Your upload holds {other}, the notebook of another assignment; this assignment "
            f"grades {expected}. Upload that notebook instead."
        )
    return _message(f"No notebook of this assignment found in your upload; upload {expected}.")


def _other_assignment(root: Path, uploaded: list[Path]) -> str | None:
    """The course notebook, of those the bundle does not grade, that an uploaded file is (by its
    name or its exercise cells), from the bundle's ``course.json``."""
    from course_utils.instructor.grading.submission import SubmissionError, exercise_sources, load

    bundle = Path(__file__).resolve().parents[2]  # course/ in the bundle
    if not (bundle / MANIFEST).exists():
        return None
    course = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    others = {
        name: set(ids) for name, ids in course.items() if not (bundle / "notebooks" / name).exists()
    }
    for relative in uploaded:
        if relative.name in others:
            return relative.name
        try:
            ids = set(exercise_sources(load(root / "submission" / relative))[0])
        except SubmissionError:
            continue
        match = next((name for name, known in others.items() if ids & known), None)
        if match:
            return match
    return None
