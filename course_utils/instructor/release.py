"""``python -m course_utils release --out DIR``: the student version of the course.

DIR is a complete repository the instructor can publish: notebooks with every solution block
replaced by a stub that raises ``NotImplementedError`` (signatures and docstrings stay),
outputs and counts cleared, an "Open in Colab" badge and a Colab-only install cell; and the
package without the hidden tests. Tests, benchmarks and CI files (which hold worked answers)
are left out.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

from course_utils.instructor import notebooks

#: Copied into the release (relative to the repository root); everything else is left out.
RELEASED = (
    ".gitignore",
    "pyproject.toml",
    "environment.yml",
    "requirements",
    "data/README.md",
    "course_utils",
)
#: The release's Makefile: the course's targets that work there (install, lab, doctor).
STUDENT_MAKEFILE = "course.mk"
#: Never released, even inside a released folder: the instructor's tools and hidden tests.
WITHHELD = ("course_utils/instructor",)
STUB = 'raise NotImplementedError("Exercise {id}: replace this line with your code")'
STUDENT_README = """# Convolutional neural networks: the course notebooks

Ordered Jupyter notebooks that take you from 1D convolution written as a matrix product to
LeNet-5, AlexNet and transfer learning. Work through them in order.

## Start

- **Colab**: open a notebook with its "Open in Colab" badge. Its first code cell installs the
  course package and keeps Colab's own PyTorch and other packages. Pick a GPU runtime for the
  training notebooks.
- **Your computer** (Python 3.10 or newer): `make lab` creates `.venv`, installs everything and
  opens JupyterLab; `make doctor` checks the installation and says how to fix what is missing.
  If the install fails, `make` says why and what to do. Windows has no `make`: in this folder run
  `python -m venv .venv`, then `.venv\\Scripts\\activate`, then
  `pip install -c requirements/constraints.txt -e .` (on Python 3.10, or 3.11 before 3.11.5:
  `requirements/constraints-py310.txt`) and `jupyter lab notebooks`. On an Intel Mac use Colab:
  PyTorch is no longer built for it.

{table}

## Exercises

A cell that starts with `# EXERCISE: <id>` asks you to write a function: replace the line
`raise NotImplementedError(...)` with your code, run the cell, then run the `check("<id>")` cell
below it. ✅ means your function agrees with NumPy/PyTorch on several inputs; ❌ shows the input,
the expected and the actual value; ⏳ means not attempted yet. Later cells never use your answer,
so Run All always reaches the end. Submit the notebook file (`.ipynb`) you worked in. Grading
runs the exercise cells, and your cells that only import modules or define functions and classes,
but no other cell: keep everything else your function uses (a variable, a dataset) inside its
exercise cell.

Without a network the notebooks use small stand-in datasets and say so (`COURSE_OFFLINE=1`
forces this).
"""
#: What the notebooks may import besides the standard library and course_utils: what Colab ships,
#: since its install cell adds nothing else (tests/test_release.py checks the notebooks and the
#: modules they use).
COLAB_SHIPS = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "matplotlib",
    "sklearn",
    "ipywidgets",
    "tqdm",
    "IPython",
)
_REPO = re.compile(r"https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?")
#: A branch (or tag) name git accepts that also fits, unquoted, in the Colab URL and pip's
#: ``git+URL@branch``: ASCII letters, digits, ``_ . / -``, and git's rules on where ``.`` and
#: ``/`` may stand.
_BRANCH = re.compile(r"(?![./-])(?!.*(?:\.\.|//|/\.))[\w./-]+(?<![./])(?<!\.lock)", re.ASCII)


def _pyproject(root: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))


def repo_url_from_pyproject(root: Path) -> str:
    """``[tool.course] repo_url`` from pyproject.toml: the one place the instructor sets it."""
    return _pyproject(root).get("tool", {}).get("course", {}).get("repo_url", "")


def package_version(root: Path | None = None) -> str:
    """The package's version in pyproject.toml (the repository's by default)."""
    from course_utils.env import repo_root

    return _pyproject(root or repo_root())["project"]["version"]


def stub_solutions(src: str, exercise_id: str) -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block by a one-line stub."""
    out, inside = [], False
    for line in src.splitlines():
        stripped = line.strip()
        if stripped == notebooks.BEGIN_SOLUTION:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB.format(id=exercise_id))
        elif stripped == notebooks.END_SOLUTION:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(
            f"exercise {exercise_id}: {notebooks.BEGIN_SOLUTION} without {notebooks.END_SOLUTION}"
        )
    return "\n".join(out)


def github_repo(repo_url: str, branch: str) -> re.Match:
    """``repo_url`` matched as a GitHub repository (``owner``, ``name``), after checking that
    both it and ``branch`` can go into the badge's URL and the install cell; else ValueError."""
    match = _REPO.fullmatch(repo_url)
    if not match:
        raise ValueError(
            f"--repo-url must look like https://github.com/OWNER/REPO; got {repo_url!r}"
        )
    if not _BRANCH.fullmatch(branch):
        raise ValueError(
            f"--branch must be a git branch or tag name of letters, digits and _ . / - "
            f"(such as main or spring-2027); got {branch!r}"
        )
    return match


def colab_cells(repo_url: str, branch: str, notebook: str, version: str | None = None) -> list:
    """The badge (markdown) and the Colab-only install cell stamped at the top of a notebook; the
    cell installs ``version`` of the package (pyproject.toml's by default) unless it is there."""
    match = github_repo(repo_url, branch)
    colab = (
        f"https://colab.research.google.com/github/{match['owner']}/{match['name']}"
        f"/blob/{branch}/notebooks/{notebook}"
    )
    badge = new_markdown_cell(
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})"
    )
    version = version or package_version()
    if not re.fullmatch(r"[\w.+!-]+", version):
        raise ValueError(
            f"the package version must be a version number such as 0.1.0; got {version!r}"
        )
    requirement = f"course-utils @ git+{repo_url}@{branch}"
    install = new_code_cell(
        "# Colab only: install the course package once; elsewhere this does nothing. Colab already\n"
        "# has everything the notebooks use, and --no-deps keeps its versions: upgrading its ipykernel\n"
        "# or ipywidgets (as the package's local-install dependencies would) can break the runtime.\n"
        "# No restart is needed: the package is importable as soon as it is installed.\n"
        "import sys\n\n"
        'if "google.colab" in sys.modules:\n'
        "    import importlib\n"
        "    import importlib.metadata\n"
        "    import subprocess\n\n"
        "    try:\n"
        '        installed = importlib.metadata.version("course-utils")\n'
        "    except importlib.metadata.PackageNotFoundError:\n"
        "        installed = None\n"
        f"    if installed == {version!r}:\n"
        '        print(f"course-utils {installed} is already installed")\n'
        "    else:\n"
        '        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",\n'
        f"                        {requirement!r}], check=True)\n"
        "        importlib.invalidate_caches()\n"
        f'        print("course-utils {version} installed")'
    )
    return [badge, install]


def release_notebook(nb, *, repo_url: str, branch: str, name: str, version: str | None = None):
    """A student copy of ``nb``: stubs, no outputs or counts, badge and install cell first."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        exercise_id = notebooks.exercise_id(cell)
        if exercise_id is not None:
            cell.source = stub_solutions(notebooks.source(cell), exercise_id)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("keep_output", None)
    nb.cells[1:1] = colab_cells(repo_url, branch, name, version)  # after the title cell
    for i, cell in enumerate(nb.cells):
        cell.id = f"r{i:02d}"
    nbformat.validate(nb)
    return nb


def build_release(
    out: Path, *, repo_url: str, branch: str = "main", root: Path | None = None
) -> list[Path]:
    """Write the student repository to ``out`` (which must not exist or be empty)."""
    from course_utils.env import repo_root

    github_repo(repo_url, branch)  # a typo stops the release before anything is written
    root = root or repo_root()
    if root is None:
        raise FileNotFoundError(
            "release needs the course repository (an editable install of course_utils)"
        )
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; --out names a new (or empty) folder")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder")
    if out.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{out} is inside the course repository; choose a folder outside it")
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for item in RELEASED:
        source = root / item
        if source.is_dir():
            shutil.copytree(source, out / item, ignore=ignore)
        elif source.exists():
            (out / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out / item)
    for item in WITHHELD:
        shutil.rmtree(out / item, ignore_errors=True)
    shutil.copy2(root / STUDENT_MAKEFILE, out / "Makefile")
    pyproject = (out / "pyproject.toml").read_text(encoding="utf-8")
    (out / "pyproject.toml").write_text(
        re.sub(r'(?m)^repo_url = ".*"$', f'repo_url = "{repo_url}"', pyproject), encoding="utf-8"
    )
    written = []
    (out / "notebooks").mkdir()
    table = notebooks.readme_table(root / "notebooks")
    version = package_version(root)
    for path in notebooks.notebook_paths(root / "notebooks"):
        nb = release_notebook(
            notebooks.read(path), repo_url=repo_url, branch=branch, name=path.name, version=version
        )
        nbformat.write(nb, out / "notebooks" / path.name)
        written.append(out / "notebooks" / path.name)
    (out / "README.md").write_text(STUDENT_README.format(table=table), encoding="utf-8")
    return written
