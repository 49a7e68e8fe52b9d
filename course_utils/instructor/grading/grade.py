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

from course_utils.instructor.grading.collect import (
    REPORT_FILES,
    SourceNotebook,
    check_folders,
    collect,
    source_notebooks,
)
from course_utils.instructor.grading.reports import write_reports
from course_utils.instructor.grading.results import NotebookResult
from course_utils.instructor.grading.sandbox import Limits, preflight


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
    every notebook is graded: an interrupted run (KeyboardInterrupt) leaves no report. Every
    argument is checked before a sandbox starts, so a mistake is reported at once."""
    submissions, out = submissions.resolve(), out.resolve()
    check_folders(submissions, out, replace=replace)
    sources = source_notebooks(notebooks_dir)
    tasks = list(collect(submissions, sources, only))  # an --only that names nothing stops here
    if all(path is None for _, _, path, _ in tasks):  # nothing to run: no sandbox is started,
        preflight()  # but the machine must be one that could have graded
        rows = [_unsubmitted(task, sources) for task in tasks]
    else:
        rows = _grade_tasks(tasks, sources, jobs, limits, progress)
    write_reports(rows, out)
    return rows


def _unsubmitted(task, sources: dict[str, SourceNotebook]) -> NotebookResult:
    """The row of a notebook that was not submitted, or was refused before grading."""
    student, name, _, note = task
    status = "rejected" if student in REPORT_FILES else "missing"
    return NotebookResult(student, name, 0.0, sources[name].max_score, status, note)


def _grade_tasks(tasks, sources, jobs: int, limits: Limits | None, progress: bool):
    """Every task's row, the submitted ones graded in a pool of ``jobs`` sandboxes."""
    from course_utils.instructor.grading.pool import Grader  # the sandboxes: arguments are good

    with Grader(jobs=jobs, limits=limits) as grader:

        def run(task):
            student, name, path, note = task
            if path is None:
                return _unsubmitted(task, sources)
            row = grader.grade_file(student, path, sources[name])
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
    return rows
