"""Read a submitted notebook defensively and find its exercise cells.

Every problem becomes a :class:`SubmissionError` whose message is safe to show the student.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nbformat

from course_utils import notebooks

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
