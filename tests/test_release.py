"""The student release: stubs instead of solutions, nothing hidden shipped, a repository a student
can use. Its notebooks run in `make test-colab` (tests/colab/run_release.py)."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils.instructor import notebooks, release
from course_utils.instructor.grading.hidden import HIDDEN_DIR


def _solution_lines(root):
    """The lines of every solution block, less the lines an exercise cell gives away on purpose
    (a partial skeleton: ``n, c, h, w = x.shape`` is given in one exercise and solved in
    another). A solution line anywhere else in a released notebook is still a leak."""
    lines, given = set(), set()
    for path in notebooks.notebook_paths(root / "notebooks"):
        for ex in notebooks.exercises(notebooks.read(path)):
            src = notebooks.source(notebooks.read(path).cells[ex.cell])
            before, rest = src.split(notebooks.BEGIN_SOLUTION)
            block, after = rest.split(notebooks.END_SOLUTION)
            lines |= {
                line.strip() for line in block.splitlines() if any(ch.isalnum() for ch in line)
            }
            given |= {line.strip() for line in (before + after).splitlines()}
    return lines - given


def _public_lines(root):
    """Lines of the instructor repository's public code and notebooks outside solution blocks."""
    lines = set()
    for path in (root / "course_utils").rglob("*.py"):
        if root / "course_utils" / "instructor" not in path.parents:  # released code only
            lines |= {line.strip() for line in path.read_text().splitlines()}
    for path in notebooks.notebook_paths(root / "notebooks"):
        for cell in notebooks.read(path).cells:
            src = release.stub_solutions(notebooks.source(cell), "x")
            lines |= {line.strip() for line in src.splitlines()}
    return lines


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "student"
    written = release.build_release(
        out, repo_url="https://github.com/example-org/cnn-course", branch="spring"
    )
    return out, written


def test_no_solution_line_and_no_hidden_test_text_is_released(built, root):
    out, _ = built
    solutions = _solution_lines(root)
    assert solutions
    hidden = {line.strip() for p in HIDDEN_DIR.glob("*.py") for line in p.read_text().splitlines()}
    hidden = {h for h in hidden - _public_lines(root) if len(h) > 3}
    assert hidden
    for path in out.rglob("*"):
        if path.is_file() and path.suffix != ".pt":  # the shipped source network, checked by sha256
            text = path.read_text(encoding="utf-8")
            lines = {line.strip() for line in text.splitlines()}
            if path.suffix == ".ipynb":
                nb = nbformat.reads(text, as_version=4)
                lines = {
                    line.strip() for c in nb.cells for line in notebooks.source(c).splitlines()
                }
                assert notebooks.BEGIN_SOLUTION not in text
            assert not lines & solutions, f"{path}: {sorted(lines & solutions)[:3]}"
            assert not lines & hidden, f"{path}: {sorted(lines & hidden)[:3]}"
    assert not (out / "course_utils/instructor").exists(), (
        "instructor code stays out of the release"
    )
    assert not (out / "tests").exists(), "tests hold worked answers"


def test_stubs_keep_signature_and_docstring(built, root):
    out, _ = built
    source = notebooks.read(root / "notebooks/01_convolution_1d.ipynb")
    student = notebooks.read(out / "notebooks/01_convolution_1d.ipynb")
    for ex in notebooks.exercises(source):
        src = notebooks.source(source.cells[ex.cell])
        head = src.split(notebooks.BEGIN_SOLUTION)[0].rstrip()
        released = next(
            notebooks.source(c) for c in student.cells if notebooks.exercise_id(c) == ex.id
        )
        assert released.startswith(head), ex.id
        assert f'raise NotImplementedError("Exercise {ex.id}:' in released


def test_badge_setup_cell_and_cleared_outputs(built):
    out, written = built
    assert [p.name for p in written] == [p.name for p in notebooks.notebook_paths()]
    nb = notebooks.read(out / "notebooks/01_convolution_1d.ipynb")
    badge, install = nb.cells[1], nb.cells[2]
    assert (
        "https://colab.research.google.com/github/example-org/cnn-course/blob/spring/"
        "notebooks/01_convolution_1d.ipynb"
    ) in badge.source
    assert 'if "google.colab" in sys.modules:' in install.source
    assert "git+https://github.com/example-org/cnn-course@spring" in install.source
    assert "torch" not in install.source.split("subprocess.run(")[1], (
        "never reinstall Colab's torch"
    )
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in nb.cells
        if c.cell_type == "code"
    )


def test_the_student_readme_names_only_files_and_targets_the_release_has(built):
    """Its install steps (make, and the commands for Windows) must work in the released folder."""
    out, _ = built
    readme = (out / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"requirements/[\w.-]+", readme))
    assert {"requirements/constraints.txt", "requirements/constraints-py310.txt"} <= named
    assert all((out / path).is_file() for path in named), named
    makefile = (out / "Makefile").read_text(encoding="utf-8")
    for target in re.findall(r"`make (\w+)`", readme):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"no `{target}` target"


def test_release_refuses_bad_urls_and_used_folders(tmp_path):
    with pytest.raises(ValueError, match="github.com/OWNER/REPO"):
        release.build_release(tmp_path / "a", repo_url="git@github.com:o/r.git")
    for branch in ("spring 2027", "-main", "a..b", "fix/", "v1.lock", 'x"y', "a#b", ""):
        with pytest.raises(ValueError, match="--branch must be a git branch"):
            release.build_release(tmp_path / "a", repo_url="https://github.com/o/r", branch=branch)
    assert not (tmp_path / "a").exists(), (
        "a refused release must write nothing (a retry needs the folder)"
    )
    for branch in ("main", "spring-2027", "release/v1.0", "fall_2026"):
        assert release.github_repo("https://github.com/o/r", branch)["name"] == "r"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        release.build_release(tmp_path / "b", repo_url="https://github.com/o/r")
    assert (tmp_path / "b" / "keep.txt").read_text() == "mine"


def test_repo_url_is_set_in_pyproject(root):
    assert release.repo_url_from_pyproject(root).startswith("https://github.com/")


@pytest.mark.parametrize("version", ["0.0.1", None])
def test_colab_install_cell_installs_once_and_says_nothing_misleading(version, monkeypatch, capsys):
    """In Colab the cell installs with pip in a subprocess (no magic, so no "restart the kernel"
    note) unless the installed version is the release's; elsewhere it does nothing."""
    cell = release.colab_cells("https://github.com/o/r", "main", "x.ipynb", version=version)[1]
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(args))
    exec(cell.source, {})  # not in Colab
    assert calls == [] and capsys.readouterr().out == ""
    monkeypatch.setitem(sys.modules, "google.colab", object())
    exec(cell.source, {})
    printed = capsys.readouterr().out
    if version is None:  # the version this checkout has installed: nothing to do
        assert (
            calls == []
            and printed == f"course-utils {release.package_version()} is already installed\n"
        )
    else:
        assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          "course-utils @ git+https://github.com/o/r@main"]]  # fmt: skip
        assert printed == "course-utils 0.0.1 installed\n" and "run_line_magic" not in cell.source


def test_colab_install_adds_nothing_the_notebooks_would_miss(root, imports_of):
    """The Colab cell installs with --no-deps, so what the notebooks import, directly or through
    course_utils, must be in release.COLAB_SHIPS (or the standard library)."""
    cell = release.colab_cells("https://github.com/o/r", "main", "x.ipynb")[1].source
    assert '"install", "--quiet", "--no-deps"' in cell
    todo = set()
    for path in notebooks.notebook_paths():
        for c in notebooks.read(path).cells:
            if c.cell_type == "code":
                code = notebooks.source(c).splitlines()
                todo |= imports_of(
                    "\n".join(x for x in code if not x.lstrip().startswith(("%", "!")))
                )
    seen, outside = set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top != "course_utils":
            if top not in sys.stdlib_module_names:
                outside.add(top)
            continue
        folder = root / name.replace(".", "/")
        if (folder / "__init__.py").is_file():  # a package; a subpackage loads all its modules
            files = [folder / "__init__.py"]
            if name != "course_utils":
                files += sorted(folder.glob("*.py"))
        elif folder.with_suffix(".py").is_file():
            files = [folder.with_suffix(".py")]
        else:
            continue  # a function imported from a module, e.g. course_utils.check
        for file in files:
            todo |= imports_of(file.read_text(encoding="utf-8"))
    assert "course_utils.checks.pooling" in seen and "course_utils.instructor.grading" not in seen
    assert outside <= set(release.COLAB_SHIPS), sorted(outside - set(release.COLAB_SHIPS))


def test_nested_notebooks_are_found_without_following_links(tmp_path):
    from course_utils.instructor.grading.collect import notebook_files

    upload = tmp_path / "submission"
    for name in (
        "top.ipynb",
        "notebooks/01_convolution_1d.ipynb",
        "notebooks/.ipynb_checkpoints/01_convolution_1d-checkpoint.ipynb",
        "__MACOSX/._top.ipynb",
        "notes.txt",
    ):
        (upload / name).parent.mkdir(parents=True, exist_ok=True)
        (upload / name).write_text("{}")
    (upload / "linked.ipynb").symlink_to("/etc/hostname")  # listed, so that grading refuses it
    (upload / "linked_folder").symlink_to(upload / "notebooks", target_is_directory=True)
    found = [p.as_posix() for p in notebook_files(upload)]
    assert found == ["linked.ipynb", "top.ipynb", "notebooks/01_convolution_1d.ipynb"]


def test_grading_runs_a_students_import_and_definition_cells_only():
    from course_utils.instructor.grading.submission import helper_sources

    cells = [
        "import scipy.signal\n\ndef _flip(w):\n    '''Reverse.'''\n    return w[::-1]\n",
        "class Net:\n    pass\n",
        "demo = [1, 2, 3]\n\ndef helper():\n    pass\n",  # computes something: not run
        "%matplotlib inline\nimport os\n",  # a magic: not plain Python, not run
        "# EXERCISE: convolve-full\ndef convolve(x, w):\n    pass\n",  # run as the exercise
        "check('convolve-full')\n",
        "",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    assert helper_sources(nb) == cells[:2]


def test_a_name_error_is_traced_to_names_no_graded_cell_defines():
    from course_utils.checks.graded_cells import undefined_names

    exercise = (
        "def convolve(x, w):\n"
        "    total = [v for v in x]\n"
        "    return np.convolve(total, _flip(w)) * SCALE + len(x)\n"
    )
    assert undefined_names(exercise, ["import numpy as np"]) == ["SCALE", "_flip"]
    graded = ["import numpy as np", "def _flip(w):\n    return w[::-1]", "SCALE = 2"]
    assert undefined_names(exercise, graded) == []
    assert undefined_names(exercise, ["from numpy import *"]) == []  # unsure: name nothing


def test_the_release_is_a_repository_a_student_can_use(tmp_path):
    """Its pyproject names the repository given, its Makefile's targets run there, and the
    instructor's commands say where they are instead of failing."""
    out = tmp_path / "student"
    release.build_release(out, repo_url="https://github.com/example-org/cnn-course")
    assert (
        'repo_url = "https://github.com/example-org/cnn-course"'
        in (out / "pyproject.toml").read_text()
    )
    assert not (out / "course_utils" / "instructor").exists()
    # a .venv that has the course installed: the test's interpreter, importing the release's package
    venv = out / ".venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{out}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (venv / "bin" / "jupyter").symlink_to(Path(sys.executable).parent / "jupyter")
    (venv / ".installed").touch()
    targets = re.findall(r"^([a-z-]+):", (out / "Makefile").read_text(), re.MULTILINE)
    assert set(targets) == {"install", "lab", "doctor"}, targets
    planned = subprocess.run(["make", "-n", *targets], cwd=out, capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr
    assert (
        "jupyter lab --ip=127.0.0.1" in planned.stdout
        and "-m course_utils doctor" in planned.stdout
    )
    doctor = subprocess.run(
        ["make", "doctor"], cwd=out, capture_output=True, text=True, timeout=300
    )
    assert "course_utils" in doctor.stdout and "Traceback" not in doctor.stderr, doctor.stderr
    lab = subprocess.run(
        [str(venv / "bin" / "jupyter"), "lab", "--version"], capture_output=True, text=True
    )
    assert lab.returncode == 0 and lab.stdout.strip()
    for command in (["grade", "subs", "--out", "grades"], ["release", "--out", "x"], ["run"]):
        done = subprocess.run(
            [str(python), "-m", "course_utils", *command], cwd=out, capture_output=True, text=True
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"`python -m course_utils {command[0]}` belongs to the course repository (the instructor's "
            "copy); this student release has only `python -m course_utils doctor`"
        ]


def test_student_facing_code_never_imports_the_instructors(root, imports_of):
    """Instructor code may import the student-facing package, never the reverse: the release
    leaves course_utils/instructor out, and nothing left behind may need it."""
    for path in (root / "course_utils").rglob("*.py"):
        if (
            "instructor" in path.relative_to(root / "course_utils").parts
            or path.name == "__main__.py"
        ):
            continue
        imported = imports_of(path.read_text(encoding="utf-8"))
        assert not {m for m in imported if m and m.startswith("course_utils.instructor")}, path
    main = (root / "course_utils" / "__main__.py").read_text()  # the CLI: one guarded reference
    assert "from course_utils.instructor import cli" in main
    assert (
        '(Path(__file__).resolve().parent / "instructor").is_dir()' in main
    )  # a look at the files


def test_release_refuses_an_out_that_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("notes")
    with pytest.raises(FileExistsError, match="is a file; --out names a new"):
        release.build_release(tmp_path / "taken", repo_url="https://github.com/o/r")
    assert (tmp_path / "taken").read_text() == "notes"


def test_the_install_cell_takes_no_code_from_its_inputs():
    """A version, URL or branch cannot add code to the install cell or end a line early."""
    with pytest.raises(ValueError, match="version number"):
        release.colab_cells("https://github.com/o/r", "main", "x.ipynb", version='0" or print("x')
    for url, branch in (("https://github.com/o/r\n", "main"), ("https://github.com/o/r", "main\n")):
        with pytest.raises(ValueError, match="--repo-url|--branch"):
            release.colab_cells(url, branch, "x.ipynb")
    cell = release.colab_cells("https://github.com/o/r", "v1.0", "x.ipynb", version="1.0+local")[1]
    compile(cell.source, "install cell", "exec")
