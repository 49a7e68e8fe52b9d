"""Which files to grade: the course's source notebooks, and each student's submitted notebooks
matched to them by name or by the exercise cells they hold."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from course_utils.instructor import notebooks
from course_utils.instructor.grading import submission
from course_utils.instructor.grading.hidden import hidden_tests


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
                f"{path.name}: no hidden tests for {missing}; add them in course_utils/instructor/grading/hidden/"
            )
        if ids:
            setup = next(notebooks.source(c) for c in nb.cells if c.cell_type == "code")
            found[path.name] = SourceNotebook(path.name, setup, ids)
    return found


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
    browser's " (1)", a name of the student's own). A notebook still without a file is graded
    from the first file that holds any of its exercises, though matched to another: a copy made
    before the course split one notebook in two. Returns ({notebook: (path, note)}, [each file
    matched to nothing, with the reason]).
    """
    files = notebook_files(folder)
    found, unmatched, held = {}, [], {}
    for relative in files:
        if relative.name in sources and relative.name not in found:
            note = "" if relative.name == str(relative) else f"graded {relative.as_posix()!r}"
            found[relative.name] = (folder / relative, note)
    graded = {path for path, _ in found.values()}
    for relative in files:
        path, shown = folder / relative, repr(relative.as_posix())
        try:
            nb = submission.load(path)
        except submission.SubmissionError as exc:
            if path not in graded:  # a named file's error is reported when it is graded
                unmatched.append(f"{shown} ({exc})")
            continue
        held[relative] = set(submission.exercise_sources(nb)[0])
        if path in graded:
            continue
        name = match_source(nb, sources)
        if name is None:
            unmatched.append(f"{shown} (no exercise of this course)")
        elif name in found:
            kept, note = found[name]
            extra = f"{shown} also holds this notebook's exercises and was not graded as it"
            found[name] = (kept, f"{note}; {extra}" if note else extra)
        else:
            found[name] = (path, f"graded {shown} as this notebook")
    for name, source in sources.items():
        if name in found:
            continue
        holder = next((r for r, ids in held.items() if ids & set(source.exercise_ids)), None)
        if holder is not None:
            found[name] = (
                folder / holder,
                f"graded this notebook's exercises in {holder.as_posix()!r}, a file matched to "
                "another notebook (a copy from before the course split a notebook in two?)",
            )
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


#: The class reports in the output folder: a student folder of one of these names is refused.
REPORT_FILES = ("grades.csv", "exercises.csv", "summary.md")


def check_folders(submissions: Path, out: Path, *, replace: bool = False) -> None:
    """Raise, saying what to do, unless ``submissions`` holds student folders and ``out`` is
    new, empty, or (with ``replace``) a folder of earlier reports."""
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


def collect(submissions: Path, sources: dict[str, SourceNotebook], only: list[str] | None = None):
    """(student, notebook name, path or None, reason) for every submission to grade."""
    chosen = selected(sources, only)
    students = sorted(p for p in submissions.iterdir() if not p.name.startswith("."))
    folders = {
        s.name: assign(s, sources)
        for s in students
        if s.is_dir() and not s.is_symlink() and s.name not in REPORT_FILES
    }
    submitted = {name for found, _ in folders.values() for name in found}
    names = [n for n in chosen if n in submitted or only]
    for student in students:
        if student.name in REPORT_FILES:
            for name in names:
                yield (
                    student.name,
                    name,
                    None,
                    f"not graded: a student folder named {student.name} would overwrite the class "
                    "report of that name; rename the folder and grade again",
                )
            continue
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
