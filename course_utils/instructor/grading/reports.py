"""The reports of a graded class: grades.csv, exercises.csv, summary.md, and per student
results.json (Gradescope's format) and feedback.md."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from course_utils.instructor.grading.collect import REPORT_FILES
from course_utils.instructor.grading.results import ExerciseResult, NotebookResult


def stale_reports(rows: list[NotebookResult], out: Path) -> list[str]:
    """Student folders in ``out`` with a results.json from an earlier run that ``rows`` did not
    write over (students no longer in SUBMISSIONS); ``grade --replace`` names them, deletes none."""
    graded = {r.student for r in rows}
    return sorted(
        p.parent.name for p in Path(out).glob("*/results.json") if p.parent.name not in graded
    )


def write_reports(rows: list[NotebookResult], out: Path) -> None:
    """grades.csv, per student results.json (Gradescope's schema) and feedback.md, and the
    class tables of :func:`write_class_tables`: written in a folder beside ``out``, then moved
    into it file by file, so that a failure while writing leaves ``out`` as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.writing-", dir=out.parent))
    try:
        _write(rows, staging)
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            target = out / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(rows: list[NotebookResult], out: Path) -> None:
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "notebook", "score", "max_score", "status", "reason"])
        for r in rows:
            writer.writerow(
                [r.student, r.notebook, f"{r.score:g}", f"{r.max_score:g}", r.status, r.reason]
            )
    by_student: dict[str, list[NotebookResult]] = {}
    for r in rows:
        by_student.setdefault(r.student, []).append(r)
    for student, mine in by_student.items():
        if student in REPORT_FILES:  # refused (see collect): its folder would replace a report
            continue
        folder = out / student
        folder.mkdir(exist_ok=True)
        (folder / "results.json").write_text(
            json.dumps(gradescope_results(mine), indent=2), encoding="utf-8"
        )
        (folder / "feedback.md").write_text(feedback(student, mine), encoding="utf-8")
    write_class_tables(rows, out)


def write_class_tables(rows: list[NotebookResult], out: Path) -> None:
    """exercises.csv (one row per student and exercise) and summary.md (per exercise: how many
    got full marks, how many none, and the most common problem) for the teaching assistant."""
    graded = [r for r in rows if r.exercises]
    with open(out / "exercises.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "notebook", "exercise", "score", "max_score", "feedback"])
        for r in graded:
            for e in r.exercises:
                writer.writerow(
                    [
                        r.student,
                        r.notebook,
                        e.exercise_id,
                        f"{e.score:g}",
                        f"{e.max_score:g}",
                        e.output,
                    ]
                )
    lines = [
        "# Class summary",
        "",
        "| notebook | exercise | graded | mean score | full marks | no marks | most common problem |",
        "|---|---|---|---|---|---|---|",
    ]
    by_exercise: dict[tuple[str, str], list[ExerciseResult]] = {}
    for r in graded:
        for e in r.exercises:
            by_exercise.setdefault((r.notebook, e.exercise_id), []).append(e)
    for (notebook, exercise_id), results in sorted(by_exercise.items()):
        top = max(e.max_score for e in results)
        problems = Counter(_problem(e.output) for e in results if e.score < e.max_score)
        common = ""
        if problems:
            ((problem, count),) = problems.most_common(1)
            common = f"{count} × {problem}".replace("|", "\\|")
        lines.append(
            f"| {notebook} | {exercise_id} | {len(results)} "
            f"| {sum(e.score for e in results) / len(results):.2f} / {top:g} "
            f"| {sum(e.score == e.max_score for e in results)} | {sum(e.score == 0 for e in results)} "
            f"| {common} |"
        )
    ungraded = Counter(r.status for r in rows if not r.exercises)
    if ungraded:
        lines += [
            "",
            "Not graded: " + ", ".join(f"{n} {status}" for status, n in sorted(ungraded.items())),
        ]
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _problem(output: str) -> str:
    """The problem part of an exercise's feedback, without its case count."""
    return output.split("; ", 1)[1] if output.startswith("passed ") and "; " in output else output


def gradescope_results(rows: list[NotebookResult]) -> dict:
    """Gradescope's results.json: total score and one test per exercise (or per unreadable notebook)."""
    tests = []
    for r in rows:
        if r.exercises:
            tests += [
                {
                    "name": f"{r.notebook}: {e.exercise_id}",
                    "score": e.score,
                    "max_score": e.max_score,
                    "output": e.output,
                    "visibility": "visible",
                }
                for e in r.exercises
            ]
        else:
            tests.append(
                {
                    "name": r.notebook,
                    "score": 0.0,
                    "max_score": r.max_score,
                    "output": r.reason,
                    "visibility": "visible",
                }
            )
    notes = "; ".join(f"{r.notebook}: {r.reason}" for r in rows if r.reason)
    return {
        "score": round(sum(r.score for r in rows), 2),
        "output": notes or "graded",
        "tests": tests,
        "visibility": "visible",
    }


def feedback(student: str, rows: list[NotebookResult]) -> str:
    """A readable report for one student."""
    lines = [f"# Feedback for {student}", ""]
    for r in rows:
        lines.append(f"## {r.notebook}: {r.score:g} / {r.max_score:g}")
        if r.reason:
            lines.append(f"*{r.reason}*")
        lines.append("")
        for e in r.exercises:
            mark = "✅" if e.score == e.max_score else ("❌" if e.score == 0 else "◐")
            lines.append(f"- {mark} `{e.exercise_id}` {e.score:g} / {e.max_score:g}: {e.output}")
        lines.append("")
    return "\n".join(lines)
