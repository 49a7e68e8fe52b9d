"""Every notebook follows the course's skeleton and house rules (DESIGN.md sections 3 and 7)."""

import re

import nbformat
import pytest

from course_utils.checks import registry
from course_utils.instructor import notebooks

PATHS = notebooks.notebook_paths()
#: The course's last notebook (DESIGN.md section 3): its '## Next' ends the course.
LAST = "10_"
#: How an optional notebook's title ends; it is off the arc (a side trip from another notebook).
OPTIONAL = "(optional)"
SKELETON = [
    "## What you will learn",
    "## Prerequisites",
    "## Summary",
    "## Further reading",
    "## Next",
]
DEPRECATED = {
    r"pretrained\s*=\s*True": "use weights=... (torchvision's weights enums)",
    r"\.next\(\)": "use next(iterator)",
    r"set_matplotlib_formats": "set rcParams or use matplotlib_inline",
}


def test_there_are_notebooks():
    assert PATHS, "no notebooks found"
    assert PATHS[0].name == "01_convolution_1d.ipynb"


@pytest.fixture(params=PATHS, ids=[p.name for p in PATHS])
def nb(request):
    return nbformat.read(request.param, as_version=4)


def test_valid_nbformat_with_python_kernel(nb):
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_skeleton_headings_in_order(nb):
    headings = [
        line.strip()
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in notebooks.source(cell).splitlines()
        if line.startswith("#")
    ]
    assert headings[0].startswith("# "), "the first heading is the notebook's title"
    positions = []
    for wanted in SKELETON:
        found = [i for i, h in enumerate(headings) if h.startswith(wanted)]
        assert found, f"missing heading {wanted!r}"
        positions.append(found[0])
    assert positions == sorted(positions), f"skeleton headings out of order: {SKELETON}"
    numbered = [h for h in headings if re.match(r"## \d+\. ", h)]
    assert len(numbered) >= 3, (
        "expected numbered sections '## 1. ...' between prerequisites and summary"
    )


#: "Prose cells of at most about 200 words" (the developers' guide): the limit a test holds.
PROSE_WORDS = 220


def test_prose_cells_are_short(nb):
    long = [
        (i, len(notebooks.source(cell).split()))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown" and len(notebooks.source(cell).split()) > PROSE_WORDS
    ]
    assert not long, f"markdown cells (index, words) over {PROSE_WORDS} words: split them: {long}"


def test_no_wrapped_line_turns_into_a_list_item(nb):
    """A paragraph line that starts with "1. " or "- " after wrapping renders as a list (seen in
    notebook 01); a real list starts after a blank line or another item."""
    item = re.compile(r"^(\d+[.)]|[-+*]) ")
    broken = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        lines = notebooks.source(cell).splitlines()
        for above, line in zip(lines, lines[1:], strict=False):
            if item.match(line) and above.strip() and not item.match(above.lstrip()):
                if not above.startswith((" ", "#", "|", "$$", "*", ">")):
                    broken.append((i, line[:40]))
    assert not broken, f"lines that would render as list items (cell, start): {broken}"


def test_open_questions_for_discussion_follow_the_summary(nb):
    cells = [notebooks.source(c) for c in nb.cells if c.cell_type == "markdown"]
    where = {
        h: next((i for i, s in enumerate(cells) if h in s), None)
        for h in ("## Summary", "## Open questions", "## Further reading")
    }
    assert None not in where.values() and list(where.values()) == sorted(where.values()), where
    questions = re.findall(r"^\d+\. .+\?$", cells[where["## Open questions"]], re.MULTILINE)
    assert 2 <= len(questions) <= 3, "two or three numbered questions, each ending in '?'"


def test_first_code_cell_calls_setup(nb):
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "course_utils.setup(" in notebooks.source(first)


def test_outputs_stripped_except_checked_cells(nb):
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if notebooks.is_output_checked(cell):
            assert cell.outputs, (
                f"cell {i}: marked NBVAL_CHECK_OUTPUT but has no stored output to compare"
            )
            assert cell.execution_count is not None, (
                f"cell {i}: nbval skips checked cells without a count"
            )
        else:
            assert not cell.outputs, (
                f"cell {i}: stored output in a cell nbval does not check; run `make strip`"
            )
            assert cell.execution_count is None, (
                f"cell {i}: execution count not stripped; run `make strip`"
            )
        assert "execution" not in cell.metadata, f"cell {i}: execution timestamps; run `make strip`"
    assert "widgets" not in nb.metadata, "saved widget state; run `make strip`"


def test_strip_is_idempotent(nb):
    import copy

    assert notebooks.strip(copy.deepcopy(nb)) == nb, "run `make strip`"


def test_no_deprecated_calls(nb):
    for i, cell in enumerate(nb.cells):
        for pattern, fix in DEPRECATED.items():
            assert not re.search(pattern, notebooks.source(cell)), (
                f"cell {i}: {pattern} is deprecated; {fix}"
            )


def test_exercises_have_solution_markers_and_a_check_cell(nb):
    exercises = notebooks.exercises(nb)
    assert exercises, "every notebook has at least one exercise"
    known = registry()
    for ex in exercises:
        src = notebooks.source(nb.cells[ex.cell])
        assert (
            src.count(notebooks.BEGIN_SOLUTION) == 1 and src.count(notebooks.END_SOLUTION) == 1
        ), ex.id
        assert src.index(notebooks.BEGIN_SOLUTION) < src.index(notebooks.END_SOLUTION), ex.id
        assert ex.check_cell is not None, f"{ex.id}: the next code cell must call check({ex.id!r})"
        assert ex.id in known, f"{ex.id}: no public check registered in course_utils.checks"


def test_exercise_ids_are_unique_and_all_used():
    seen = []
    for path in PATHS:
        seen += [ex.id for ex in notebooks.exercises(nbformat.read(path, as_version=4))]
    assert len(seen) == len(set(seen)), f"duplicate exercise ids: {seen}"
    assert set(registry()) <= set(seen), (
        f"checks registered for no notebook: {set(registry()) - set(seen)}"
    )


def test_notebook_01_has_three_graded_exercises():
    nb = nbformat.read(PATHS[0], as_version=4)
    assert len(notebooks.exercises(nb)) >= 3


def test_next_section_names_the_following_notebook_by_its_title():
    titles = {path.name[:2]: notebooks.title(nbformat.read(path, as_version=4)) for path in PATHS}
    for path in PATHS:
        nb = nbformat.read(path, as_version=4)
        text = next(
            notebooks.source(c) for c in nb.cells if "## Next" in notebooks.source(c)
        ).split("## Next", 1)[1]
        if path.name.startswith(LAST):
            assert "last notebook of the course" in text, f"{path.name}: '## Next' should say so"
            continue
        if titles[path.name[:2]].endswith(OPTIONAL):  # a side trip: back to any notebook of the arc
            named = re.search(r"\*\*(\d\d) · ([^*]+)\*\*", text)
            assert named and f"{named[1]} · {named[2]}" == titles.get(named[1]), (
                f"{path.name}: '## Next' should name a notebook by its title"
            )
            continue
        named = re.search(r"\*\*(\d\d) · ([^*]+)\*\*", text)
        wanted = f"{int(path.name[:2]) + 1:02d}"
        assert named and named[1] == wanted, f"{path.name}: '## Next' should name {wanted}"
        if wanted in titles:
            assert f"{named[1]} · {named[2]}" == titles[wanted], (
                f"{path.name}: '## Next' says {named[2]!r}; notebook {wanted} is {titles[wanted]!r}"
            )
        else:
            assert "not in this release yet" in text, (
                f"{path.name}: notebook {wanted} does not exist; say it is not in this release yet"
            )


def test_optional_notebooks_come_after_the_arc_and_are_linked_from_it():
    titles = {p.name: notebooks.title(nbformat.read(p, as_version=4)) for p in PATHS}
    optional = [name for name, title in titles.items() if title.endswith(OPTIONAL)]
    assert optional, "notebook 11 (making CNNs fast) is optional"
    assert all(name > LAST for name in optional), f"optional notebooks follow the arc: {optional}"
    arc = "".join(p.read_text() for p in PATHS if p.name not in optional)
    for name in optional:
        assert f"`{name}`" in arc, f"no notebook of the arc links to {name}"
