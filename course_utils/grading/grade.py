"""Grade a folder of submissions: ``SUBMISSIONS/<student>/<notebook>.ipynb``.

For each submission the grader (trusted) reads the notebook, takes the setup cell from the
*source* notebook, the student's exercise cells and the student's cells that only import or
define functions and classes, generates the hidden inputs, and sends all of it to a sandbox
(:mod:`.sandbox`). Only numbers come back. Expected values are computed here,
after the student's process has ended, and compared here, so nothing the student's code does to
NumPy, torch or builtins can change a score. Feedback names what went wrong without showing
hidden inputs, expected values, the student's printed output or solution text.
"""

from __future__ import annotations

import csv
import json
import os
import queue
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from course_utils import notebooks
from course_utils.checks import SINGLE_PRECISION, registry, rounding_only
from course_utils.checks.harnesses import VERDICTS
from course_utils.env import repo_root
from course_utils.grading import submission, wire
from course_utils.grading.hidden import HIDDEN_DIR, HiddenTest, hidden_tests
from course_utils.grading.sandbox import (
    Job,
    Limits,
    SandboxUnavailable,
    Zygote,
    call_stage,
    preflight,
)


@dataclass
class ExerciseResult:
    """Score and student-facing output of one exercise."""

    exercise_id: str
    score: float
    max_score: float
    output: str


@dataclass
class NotebookResult:
    """One row of grades.csv and its exercises."""

    student: str
    notebook: str
    score: float
    max_score: float
    status: str
    reason: str = ""
    exercises: list[ExerciseResult] = field(default_factory=list)


@dataclass(frozen=True)
class SourceNotebook:
    """What the grader needs from an instructor notebook."""

    name: str
    setup: str
    exercise_ids: tuple[str, ...]

    @property
    def max_score(self) -> float:
        tests = hidden_tests()
        return float(sum(tests[i].points for i in self.exercise_ids))


def source_notebooks(directory: Path | None = None) -> dict[str, SourceNotebook]:
    """Graded source notebooks by file name: setup = first code cell; exercises with hidden tests."""
    tests = hidden_tests()
    found = {}
    for path in notebooks.notebook_paths(directory):
        nb = notebooks.read(path)
        ids = tuple(ex.id for ex in notebooks.exercises(nb))
        missing = [i for i in ids if i not in tests]
        if missing:
            raise ValueError(
                f"{path.name}: no hidden tests for {missing}; add them in course_utils/grading/hidden/"
            )
        if ids:
            setup = next(notebooks.source(c) for c in nb.cells if c.cell_type == "code")
            found[path.name] = SourceNotebook(path.name, setup, ids)
    return found


def _calls(source: SourceNotebook) -> tuple[list[dict], dict[str, HiddenTest]]:
    tests = hidden_tests()
    names = registry()
    calls = []
    for exercise_id in source.exercise_ids:
        test = tests[exercise_id]
        rng = np.random.default_rng(_seed(exercise_id))
        variants = [(a, k, pick) for a, k in test.cases(rng) for pick in test.picks]
        for case, (args, kwargs, pick) in enumerate(variants):
            calls.append(
                {
                    "exercise": exercise_id,
                    "name": names[exercise_id].names[0],
                    "case": case,
                    "args": list(args),
                    "kwargs": kwargs,
                    "pick": pick,
                    "as_torch": test.as_torch,
                    "harness": test.harness,
                }
            )
    return calls, tests


def _seed(exercise_id: str) -> int:
    """A stable seed per exercise (Python's hash() is salted per process)."""
    return int.from_bytes(exercise_id.encode()[:8].ljust(8, b"\0"), "little") % 2**32


# ----------------------------------------------------------------------------- scoring


_CELL_PROBLEMS = {
    "timeout": "the exercise cell ran past the time limit and was stopped",
    "crashed": "the exercise cell crashed the Python process (for example os._exit or a segfault)",
}


def _case_problem(
    stage: dict | None, value, call: dict, test: HiddenTest, limits: Limits
) -> str | None:
    """None if the case passed, else a short reason that reveals nothing hidden."""
    if stage is None:
        return "not run: an earlier step of this exercise was stopped"
    status = stage["status"]
    if status == "timeout":
        return f"a call ran longer than {limits.call:g} s and was stopped"
    if status == "crashed":
        return "a call crashed the Python process"
    if status == "error":
        error = stage.get("error", "")
        if error == "NotImplementedError":
            return "not attempted"
        if error == "LookupError":
            return "the exercise cell does not define the function"
        if error == "ReturnedNone":
            return "a call returned None: does the function end with `return <result>`?"
        if error.startswith("Verdict:"):  # worded from the grader's own table
            meaning = VERDICTS.get(error.removeprefix("Verdict:"))
            return (
                f"on a hidden case, {meaning}" if meaning else "a call broke a rule of the exercise"
            )
        return f"a call raised {error}"
    not_numbers = "a call returned something that is not an array of numbers"
    if value is None:  # the sandbox sends no result for a value that holds no numbers
        return not_numbers
    try:
        got = wire.decode(value)
    except (ValueError, TypeError, OSError):
        return not_numbers
    if not isinstance(got, np.ndarray) or got.dtype.kind != "f":
        return not_numbers
    expected = test.expected_for(call)
    if got.shape != expected.shape:
        return "wrong output shape on a hidden case"
    if not np.allclose(got, expected, atol=test.atol, rtol=test.rtol):
        if rounding_only(got, expected):
            return f"wrong values on a hidden case: {SINGLE_PRECISION}"
        slip = test.slip_for(call, got)
        return f"wrong values on a hidden case: {slip}" if slip else "wrong values on a hidden case"
    return None


def _name_error(exercise_source: str, run_sources: list[str]) -> str:
    """Explain a NameError: grading runs only some cells, and names what the exercise cell
    reads that none of them defines."""
    missing = submission.undefined_names(exercise_source, run_sources)
    what = f" (`{'`, `'.join(missing[:3])}` is defined in none of them)" if missing else ""
    return (
        "a call raised NameError: grading runs only the course's setup cell, your cells that "
        f"only import or define functions and classes, and the exercise cells{what}; "
        "define what your function uses in its exercise cell"
    )


def score(
    source: SourceNotebook,
    submitted: submission.Submitted,
    reply: dict,
    calls: list[dict],
    tests: dict[str, HiddenTest],
    limits: Limits,
) -> list[ExerciseResult]:
    """Compare what came back from the sandbox with expected values computed here."""
    stages, values = reply["stages"], reply["results"]
    cells, names = submitted.cells, registry()
    results = []
    for exercise_id in source.exercise_ids:
        test = tests[exercise_id]
        if exercise_id not in cells:
            output = (
                f"no cell starting with `# EXERCISE: {exercise_id}` (was it deleted or edited?)"
            )
            results.append(ExerciseResult(exercise_id, 0.0, test.points, output))
            continue
        cell = stages.get(f"cell:{exercise_id}", {})
        mine = [c for c in calls if c["exercise"] == exercise_id]
        problems = []
        for call in mine:
            name = call_stage(call)
            problems.append(_case_problem(stages.get(name), values.get(name), call, test, limits))
        passed = sum(p is None for p in problems)
        points = round(test.points * passed / len(mine), 2)
        if cell.get("status") in _CELL_PROBLEMS:
            output = _CELL_PROBLEMS[cell["status"]]
        elif passed == len(mine):
            output = f"passed all {len(mine)} hidden cases"
        else:
            first = next(p for p in problems if p is not None)
            if first == "a call raised NameError":
                run = [source.setup, *submitted.helpers, *cells.values()]
                first = _name_error(cells[exercise_id], run)
            output = f"passed {passed} of {len(mine)} hidden cases; {first}"
            if cell.get("status") == "error":
                output += f" (the exercise cell raised {cell.get('error')})"
            function = names[exercise_id].names[0]
            if function in submitted.defined_elsewhere:
                output += (
                    f"; `{function}` is also defined in a cell outside its exercise cell, and only "
                    "the exercise cell's version is graded"
                )
        if exercise_id in submitted.repeated:
            output += "; the exercise cell appears more than once, the last one was graded"
        results.append(ExerciseResult(exercise_id, points, test.points, output))
    return results


# ----------------------------------------------------------------------------- the batch


class Grader:
    """A pool of sandboxes; use as a context manager so no process outlives it."""

    def __init__(
        self,
        *,
        jobs: int = 2,
        limits: Limits | None = None,
        hide: list[Path] = (),
        notebooks_dir: Path | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.sources = source_notebooks(notebooks_dir)
        root = repo_root()
        secret = [notebooks_dir or notebooks.notebooks_dir(), HIDDEN_DIR, *hide]
        if root:
            secret += [root / "tests", root / ".git"]
        self.hide = [str(Path(p).resolve()) for p in secret if Path(p).exists()]
        self.jobs = max(1, jobs)
        self.pool: queue.Queue[Zygote] = queue.Queue()
        self.started: list[Zygote] = []
        self.lock = threading.Lock()

    def __enter__(self) -> Grader:
        preflight()
        try:
            for slot in range(self.jobs):
                zygote = Zygote(slot)
                self.started.append(zygote)
                self._probe(zygote)
                self.pool.put(zygote)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for zygote in self.started:
            zygote.close()

    def _probe(self, zygote: Zygote) -> None:
        """Prove isolation before anyone is scored: unprivileged, no network, secrets hidden."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0)
        port = listener.getsockname()[1]
        secret = HIDDEN_DIR / "__init__.py"
        setup = (
            "import os, socket\n"
            "def probe():\n"
            f"    try:\n        socket.create_connection(('127.0.0.1', {port}), timeout=1).close(); net = 1\n"
            "    except OSError:\n        net = 0\n"
            f"    try:\n        open({str(secret)!r}).read(); readable = 1\n"
            "    except OSError:\n        readable = 0\n"
            "    return [os.getuid(), net, readable]\n"
        )
        calls = [{"exercise": "probe", "name": "probe", "case": 0, "args": [], "kwargs": {}}]
        try:
            reply = zygote.run(Job(setup, [], calls, self.limits, self.hide))
            value = reply["results"].get(call_stage(calls[0]))
            uid, net, readable = (int(v) for v in wire.decode(value)) if value else (0, 1, 1)
            try:
                listener.accept()
                net = 1
            except BlockingIOError:
                pass
        except (RuntimeError, SandboxUnavailable) as exc:
            raise SandboxUnavailable(f"the sandbox failed its start-up check: {exc}") from None
        finally:
            listener.close()
        if value is None or uid == 0 or net or readable:
            raise SandboxUnavailable(
                "the sandbox failed its start-up check "
                f"(ran code: {value is not None}, uid {uid}, network reachable: {bool(net)}, "
                f"hidden tests readable: {bool(readable)}); grade as root on Linux"
            )

    def grade_file(self, student: str, path: Path, source: SourceNotebook) -> NotebookResult:
        """Grade one submitted notebook; never raises for anything the student did."""
        row = NotebookResult(student, source.name, 0.0, source.max_score, "graded")
        try:
            nb = submission.load(path)
        except submission.SubmissionError as exc:
            row.status, row.reason = "rejected", str(exc)
            return row
        submitted = submission.read_submitted(nb)
        calls, tests = _calls(source)
        job = Job(
            source.setup,
            [(i, submitted.cells[i]) for i in source.exercise_ids if i in submitted.cells],
            calls,
            self.limits,
            self.hide,
            submitted.helpers,
        )
        zygote = self.pool.get()
        try:
            reply = zygote.run(job)
        except RuntimeError as exc:  # the zygote itself failed: replace it, report, go on
            row.status, row.reason = "error", f"grader error ({exc}); grade this submission again"
            zygote.close()
            zygote = Zygote(zygote.slot)
            with self.lock:
                self.started.append(zygote)
            return row
        finally:
            self.pool.put(zygote)
        setup_stage = reply["stages"].get("setup", {})
        if setup_stage.get("status") != "ok":
            row.status = "error"
            row.reason = (
                f"the course setup cell did not run ({setup_stage.get('status', 'not reached')})"
            )
        if "wall" in reply["stages"]:
            row.reason = f"stopped at the {self.limits.wall:g} s limit for one submission"
        row.exercises = score(source, submitted, reply, calls, tests, self.limits)
        row.score = round(sum(e.score for e in row.exercises), 2)
        return row


def match_source(nb, sources: dict[str, SourceNotebook]) -> str | None:
    """The source notebook sharing the most exercise ids with a submitted notebook, if any."""
    ids = set(submission.exercise_sources(nb)[0])
    best = max(sources.values(), key=lambda s: len(ids & set(s.exercise_ids)), default=None)
    return best.name if best and ids & set(best.exercise_ids) else None


def notebook_files(folder: Path) -> list[Path]:
    """Every ``.ipynb`` under ``folder``, relative to it, top level first (a zip or a GitHub
    repository nests them). Links are listed, never followed; hidden folders
    (``.ipynb_checkpoints``, ``.git``) and ``__MACOSX`` are skipped."""
    found = []
    for parent, dirs, files in os.walk(folder):  # does not enter linked folders
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__MACOSX"]
        found += [
            Path(parent, f).relative_to(folder)
            for f in files
            if f.endswith(".ipynb")
            and not f.startswith(".")
            and (os.path.islink(Path(parent, f)) or Path(parent, f).is_file())
        ]
    return sorted(found, key=lambda p: (len(p.parts), p))


def assign(folder: Path, sources: dict[str, SourceNotebook]):
    """Which file in one student's folder is which course notebook.

    A file named like a source notebook is that notebook (the one nearest the top, if several).
    Any other ``.ipynb`` is matched by the exercise cells it holds (Colab's "Copy of ...", a
    browser's " (1)", a name of the student's own). Returns ({notebook: (path, note)}, [each
    file matched to nothing, with the reason]).
    """
    files = notebook_files(folder)
    found, unmatched = {}, []
    for relative in files:
        if relative.name in sources and relative.name not in found:
            note = "" if relative.name == str(relative) else f"graded {relative.as_posix()!r}"
            found[relative.name] = (folder / relative, note)
    graded = {path for path, _ in found.values()}
    for relative in files:
        path, shown = folder / relative, repr(relative.as_posix())
        if path in graded:
            continue
        try:
            name, why = match_source(submission.load(path), sources), "no exercise of this course"
        except submission.SubmissionError as exc:
            name, why = None, str(exc)
        if name is None:
            unmatched.append(f"{shown} ({why})")
        elif name in found:
            kept, note = found[name]
            extra = f"{shown} holds the same exercises and was not graded"
            found[name] = (kept, f"{note}; {extra}" if note else extra)
        else:
            found[name] = (path, f"graded {shown} as this notebook")
    return found, unmatched


def selected(sources: dict[str, SourceNotebook], only: list[str] | None) -> list[str]:
    """The course notebooks ``only`` names by number ("01") or name ("01_convolution_1d"), in
    course order; every one without ``only``. A name that matches none is a ValueError."""
    if not only:
        return list(sources)
    keys = {name: {name[:2], name.removesuffix(".ipynb")} for name in sources}
    unknown = [o for o in only if not any(o in k for k in keys.values())]
    if unknown:
        raise ValueError(
            f"--only {' '.join(unknown)} names no course notebook; give their numbers or names: "
            + ", ".join(name.removesuffix(".ipynb") for name in sources)
        )
    return [name for name, k in keys.items() if k & set(only)]


def collect(submissions: Path, sources: dict[str, SourceNotebook], only: list[str] | None = None):
    """(student, notebook name, path or None, reason) for every submission to grade."""
    chosen = selected(sources, only)
    students = sorted(p for p in submissions.iterdir() if not p.name.startswith("."))
    folders = {s.name: assign(s, sources) for s in students if s.is_dir() and not s.is_symlink()}
    submitted = {name for found, _ in folders.values() for name in found}
    names = [n for n in chosen if n in submitted or only]
    for student in students:
        if student.name not in folders:
            for name in names:
                yield (
                    student.name,
                    name,
                    None,
                    "the student folder is a link or a file, not a folder",
                )
            continue
        found, unmatched = folders[student.name]
        for name in names:
            if name in found:
                yield student.name, name, *found[name]
            elif unmatched:
                files = ", ".join(unmatched)
                yield (
                    student.name,
                    name,
                    None,
                    f"not submitted; not recognised: {files}; if one is this notebook, "
                    f"rename it {name}",
                )
            else:
                yield student.name, name, None, "not submitted"


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
    ``progress`` shows a bar of notebooks graded on stderr."""
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
    with Grader(
        jobs=jobs, limits=limits, hide=[submissions, out], notebooks_dir=notebooks_dir
    ) as grader:
        tasks = list(collect(submissions, grader.sources, only))
        out.mkdir(parents=True, exist_ok=True)

        def run(task):
            student, name, path, note = task
            source = grader.sources[name]
            if path is None:
                return NotebookResult(student, name, 0.0, source.max_score, "missing", note)
            row = grader.grade_file(student, path, source)
            row.reason = "; ".join(r for r in (note, row.reason) if r)
            return row

        with ThreadPoolExecutor(max_workers=grader.jobs) as pool:
            graded = pool.map(run, tasks)
            bar = tqdm(
                graded, total=len(tasks), desc="grading", unit="notebook", disable=not progress
            )
            rows = list(bar)
    write_reports(rows, out)
    return rows


def stale_reports(rows: list[NotebookResult], out: Path) -> list[str]:
    """Student folders in ``out`` with a results.json from an earlier run that ``rows`` did not
    write over (students no longer in SUBMISSIONS); ``grade --replace`` names them, deletes none."""
    graded = {r.student for r in rows}
    return sorted(
        p.parent.name for p in Path(out).glob("*/results.json") if p.parent.name not in graded
    )


# ----------------------------------------------------------------------------- reports


def write_reports(rows: list[NotebookResult], out: Path) -> None:
    """grades.csv, per student results.json (Gradescope's schema) and feedback.md, and the
    class tables of :func:`write_class_tables`."""
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
