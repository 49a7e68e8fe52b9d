"""Read a submitted notebook defensively and find its exercise cells.

Every problem becomes a :class:`SubmissionError` whose message is safe to show the student.
"""

from __future__ import annotations

import ast
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.checks.graded_cells import is_helper, parse
from course_utils.instructor import notebooks

MAX_BYTES = 20 * 2**20


class SubmissionError(ValueError):
    """The file cannot be graded; the message says why and what to do."""


def load(path: Path):
    """The notebook at ``path`` as a NotebookNode, refusing links, huge files and non-notebooks."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise SubmissionError(f"cannot read the file ({exc.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        raise SubmissionError("the submission is a symbolic link; submit the notebook file itself")
    if not stat.S_ISREG(info.st_mode):
        raise SubmissionError("the submission is not a regular file")
    if info.st_size > MAX_BYTES:
        raise SubmissionError(
            f"the file is {info.st_size / 2**20:.0f} MB, over the {MAX_BYTES // 2**20} MB limit; "
            "clear all outputs (Edit > Clear All Outputs) and submit again"
        )
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(
            f"the file is not UTF-8 text (bad byte at offset {exc.start}); save it from Jupyter"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(
            f"the file is not valid JSON (line {exc.lineno}); download it again from Jupyter"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SubmissionError("the file is JSON but not a Jupyter notebook (no list of cells)")
    cells = []
    for cell in data["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise SubmissionError(
                "the notebook has a malformed cell; open it in Jupyter and save it again"
            )
        src = cell.get("source", "")
        if isinstance(src, list) and all(isinstance(s, str) for s in src):
            src = "".join(src)
        if not isinstance(src, str):
            raise SubmissionError("the notebook has a cell whose source is not text")
        cells.append(
            nbformat.from_dict({"cell_type": cell["cell_type"], "source": src, "metadata": {}})
        )
    return nbformat.from_dict({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def exercise_sources(nb) -> tuple[dict[str, str], set[str]]:
    """Exercise id -> source of its cell (the last one if repeated), and the repeated ids."""
    found: dict[str, str] = {}
    repeated: set[str] = set()
    for cell in nb.cells:
        exercise_id = notebooks.exercise_id(cell)
        if exercise_id is not None:
            if exercise_id in found:
                repeated.add(exercise_id)
            found[exercise_id] = notebooks.source(cell)
    return found, repeated


@dataclass(frozen=True)
class Submitted:
    """What grading takes from a submitted notebook."""

    cells: dict[str, str]  # exercise id -> source of its exercise cell (the last, if repeated)
    repeated: set[str]  # exercise ids whose cell appears more than once
    helpers: list[str]  # cells that only import or define, run before the exercise cells
    defined_elsewhere: set[str]  # functions defined at the top level of a non-exercise cell


def read_submitted(nb) -> Submitted:
    """The exercise cells, helper cells and functions defined outside exercise cells of ``nb``."""
    cells, repeated = exercise_sources(nb)
    elsewhere = {
        node.name
        for _, body in _other_code_cells(nb)
        for node in body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    return Submitted(cells, repeated, helper_sources(nb), elsewhere)


def helper_sources(nb) -> list[str]:
    """Sources of the code cells, other than exercise cells, that only import modules and define
    functions or classes (a docstring aside). Grading runs them before the exercise cells, so a
    helper function or an import in a cell of its own works as it did in the notebook; cells
    that compute anything else (training, plots, data) are not run."""
    return [src for src, body in _other_code_cells(nb) if is_helper(body)]


def _other_code_cells(nb):
    """(source, parsed top-level statements) of each code cell that is not an exercise cell and
    parses as Python (IPython magics and shell escapes do not)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and notebooks.exercise_id(cell) is None:
            src = notebooks.source(cell)
            try:
                yield src, parse(src).body
            except SyntaxError:
                continue
