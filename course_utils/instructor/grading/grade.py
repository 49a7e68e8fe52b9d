"""Grade a folder of submissions: ``SUBMISSIONS/<student>/<notebook>.ipynb``.

For each submission the grader (trusted) reads the notebook, takes the setup cell from the
*source* notebook, the student's exercise cells and the student's cells that only import or
define functions and classes, generates the hidden inputs, and sends all of it to a sandbox
(:mod:`.sandbox`). Only numbers come back. Expected values are computed and compared by the
grader (:mod:`.score`), after the student's process has ended, so nothing the student's code
does to NumPy, torch or builtins can change a score. The stages: :mod:`.collect` finds the
files, :mod:`.pool` runs them in sandboxes, :mod:`.score` scores, :mod:`.reports` writes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from course_utils.instructor.grading.collect import REPORT_FILES, collect
from course_utils.instructor.grading.pool import Grader
from course_utils.instructor.grading.reports import write_reports
from course_utils.instructor.grading.sandbox import Limits
from course_utils.instructor.grading.score import NotebookResult


def grade_folder(
    submissions: Path,
    out: Path,
    *,
    jobs: int = 2,
    limits: Limits | None = None,
    only: list[str] | None = None,
    notebooks_dir: Path | None = None,
    replace: bool = False,
    progress: bool = False,
) -> list[NotebookResult]:
    """Grade every submission and write the reports to ``out``, which must be new or empty
    unless ``replace`` (then its reports are written over); returns the rows of grades.csv.
    ``progress`` shows a bar of notebooks graded on stderr. Nothing is written to ``out`` before
    every notebook is graded: an interrupted run (KeyboardInterrupt) leaves no report."""
    submissions, out = submissions.resolve(), out.resolve()
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder of student folders")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; --out needs a folder for the reports")
    if out.exists() and any(out.iterdir()) and not replace:
        raise FileExistsError(
            f"{out} is not empty (the reports of an earlier run?); choose a new --out, or pass "
            "--replace to write over its reports"
        )
    if not any(p.is_dir() and not p.name.startswith(".") for p in submissions.iterdir()):
        loose = len(list(submissions.glob("*.ipynb")))
        raise ValueError(
            f"{submissions} has no student folders"
            + (f" (it holds {loose} notebook file(s) directly)" if loose else "")
            + "; put each student's notebooks in a folder of their own: "
            "SUBMISSIONS/<student>/<notebook>.ipynb"
        )
    with Grader(jobs=jobs, limits=limits, notebooks_dir=notebooks_dir) as grader:
        tasks = list(collect(submissions, grader.sources, only))

        def run(task):
            student, name, path, note = task
            source = grader.sources[name]
            if path is None:
                status = "rejected" if student in REPORT_FILES else "missing"
                return NotebookResult(student, name, 0.0, source.max_score, status, note)
            row = grader.grade_file(student, path, source)
            row.reason = "; ".join(r for r in (note, row.reason) if r)
            return row

        pool = ThreadPoolExecutor(max_workers=grader.jobs)
        try:
            graded = pool.map(run, tasks)
            bar = tqdm(
                graded, total=len(tasks), desc="grading", unit="notebook", disable=not progress
            )
            rows = list(bar)
        except KeyboardInterrupt:  # stop the sandboxes now; no report is written
            pool.shutdown(wait=False, cancel_futures=True)
            grader.kill()
            raise
        pool.shutdown()
    write_reports(rows, out)
    return rows
