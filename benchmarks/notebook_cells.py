"""How long each notebook is: its cells, the cells of its lecture path (from the first numbered
section to the summary), its longest prose cell in words and its longest code cell in lines.
Prints one JSON line.

    python benchmarks/notebook_cells.py [--only 07 08]
"""

import argparse
import json
import re

from course_utils.instructor import notebooks

#: the heading that opens the lecture path ("## 1. ...") and the one that ends it
FIRST_SECTION = re.compile(r"^## 1\.", re.MULTILINE)
SUMMARY = re.compile(r"^## Summary", re.MULTILINE)


def lecture_path(cells) -> list:
    """The cells from the first numbered section up to, not including, the summary."""
    start = next(i for i, c in enumerate(cells) if FIRST_SECTION.search(notebooks.source(c)))
    end = next(i for i, c in enumerate(cells) if SUMMARY.search(notebooks.source(c)))
    return cells[start:end]


def lengths(path) -> dict:
    """The figures of one notebook."""
    cells = notebooks.read(path).cells
    words = [(len(notebooks.source(c).split()), i) for i, c in enumerate(cells)]
    lines = [(len(notebooks.source(c).splitlines()), i) for i, c in enumerate(cells)]
    prose = max(w for w in words if cells[w[1]].cell_type == "markdown")
    code = max(n for n in lines if cells[n[1]].cell_type == "code")
    return {
        "cells": len(cells),
        "lecture_path_cells": len(lecture_path(cells)),
        "longest_prose_words": prose[0],
        "longest_prose_cell": prose[1],
        "longest_code_lines": code[0],
        "longest_code_cell": code[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="+", default=None)
    args = parser.parse_args()
    paths = [p for p in notebooks.notebook_paths() if not args.only or p.name[:2] in args.only]
    figures = {p.name[:2]: lengths(p) for p in paths}
    print(json.dumps({"benchmark": "notebook_cells", "notebooks": figures}))


if __name__ == "__main__":
    main()
