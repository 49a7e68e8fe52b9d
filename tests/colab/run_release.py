"""The Colab path, simulated: the student release, installed by its own first cell from a local
git URL into an environment with Colab's package versions (``requirements/colab.txt``), and
every release notebook executed there in a kernel that looks like Colab's (``google.colab``
imported at start-up, ``COLAB_RELEASE_TAG`` set), offline and in fast mode, by an instructor's
own tool: ``jupyter nbconvert --to notebook --execute``. ``make test`` runs the solution
notebooks; CI runs the release notebooks here (and the release's 01 in the browser test).

    python tests/colab/run_release.py --python .venv-colab/bin/python [--out DIR]

``make test-colab`` builds that environment and runs this. One line per notebook, then one JSON
line; the exit status is 1 when a notebook fails or one of ``problems_in``'s checks does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

from course_utils.checks import not_attempted_line  # noqa: E402
from course_utils.instructor import notebooks, release, runner  # noqa: E402

GITHUB = "https://github.com/example-org/cnn-course"
KERNEL = "colab-like"
CELL_S, NOTEBOOK_S = 300, 900  # the longest release cell takes about 10 s in fast mode


def check_environment(python: str) -> str:
    """The environment's package site, after making it look like Colab: ``google.colab``
    importable and imported at start-up, and no course package installed yet."""
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    package = Path(site) / "google" / "colab"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        '"""A stand-in for Colab\'s module: its presence is what counts."""\n'
    )
    (Path(site) / "zz_colab_like.pth").write_text("import google.colab\n")
    subprocess.run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "course-utils"],
                   capture_output=True)  # fmt: skip
    return site


def local_release(out: Path) -> Path:
    """The release, committed to a local git repository; its install cells point there."""
    repo = out / "release"
    shutil.rmtree(repo, ignore_errors=True)
    release.build_release(repo, repo_url=GITHUB, branch="main")
    for path in notebooks.notebook_paths(repo / "notebooks"):
        path.write_text(
            path.read_text().replace(f"git+{GITHUB}@main", f"git+file://localhost{repo}@main")
        )
    git = ["git", "-C", str(repo), "-c", "user.name=course", "-c", "user.email=course@example.org"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "release"]):
        subprocess.run([*git, *command], check=True)
    return repo


def install_kernel(python: str, out: Path) -> Path:
    """A kernel spec for the environment's Python; the folder to put on JUPYTER_PATH."""
    prefix = out / "jupyter"
    subprocess.run([python, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", KERNEL],
                   capture_output=True, check=True)  # fmt: skip
    return prefix / "share" / "jupyter"


def nbconvert(path: Path, work: Path) -> tuple[str, float]:
    """Execute ``path`` with ``jupyter nbconvert --execute`` into ``work``, in the Colab-like
    kernel (each kernel is stopped at once when its notebook has run: a graceful stop waits
    1-2.5 s for torch's interpreter to tear down); "ok" or what went wrong, and the seconds."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             f"--ExecutePreprocessor.kernel_name={KERNEL}", f"--ExecutePreprocessor.timeout={CELL_S}",
             "--ExecutePreprocessor.shutdown_kernel=immediate", "--output-dir", str(work), str(path)],
            capture_output=True, text=True, timeout=NOTEBOOK_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"timeout: nbconvert ran longer than {NOTEBOOK_S} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if "CellTimeoutError" in done.stderr:  # its message ends in a row of dashes
        return f"timeout: a cell ran longer than {CELL_S} s", seconds
    if done.returncode != 0:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stderr)  # the traceback's colours
        return f"failed: nbconvert exited {done.returncode}: {runner.last_line(plain)}", seconds
    return "ok", seconds


def problems_in(executed: nbformat.NotebookNode, solution: nbformat.NotebookNode, first: bool,
                version: str) -> list[str]:  # fmt: skip
    """What is wrong with one executed release notebook: a cell not run or with an error, the
    install cell's line, Colab not seen, an exercise not saying it is unattempted, an Output
    widget kept (nbclient can hang on one, its issue 312), fewer Image widgets than explorers.
    The exercises are the ``solution`` notebook's: a stub that lost its marker is still read."""
    code = [c for c in executed.cells if c.cell_type == "code"]
    printed = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    said = "installed" if first else "is already installed"  # the first cell installs once
    widgets = executed.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
    models = [m["model_name"] for m in (widgets or {}).get("state", {}).values()]
    missing = [
        ex.id for ex in notebooks.exercises(solution) if not_attempted_line(ex.id) not in printed
    ]
    explorers = sum(c.source.count("_explorer(") for c in code)  # widgets.*_explorer(...)
    wrong = {
        "a code cell did not run": not all(c.execution_count for c in code),
        "an error output": any(o.output_type == "error" for c in code for o in c.outputs),
        f"the install cell did not print 'course-utils {version} {said}'":
            f"course-utils {version} {said}" not in printed,
        "setup() did not see a Colab runtime": "| Colab" not in printed,
        f"no 'not attempted yet' line for {', '.join(missing)}": bool(missing),
        "an Output widget was saved": "OutputModel" in models,
        "an explorer saved no Image widget": models.count("ImageModel") < explorers,
    }  # fmt: skip
    return [problem for problem, found in wrong.items() if found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="the Colab-like environment's python")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "course-colab-like",
                        help="a folder outside the repository (the release refuses one inside)")  # fmt: skip
    args = parser.parse_args()
    out = args.out.resolve()
    site = check_environment(args.python)
    repo = local_release(out)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ.update(
        JUPYTER_PATH=str(install_kernel(args.python, out)), COLAB_RELEASE_TAG="colab-like",
        COURSE_FAST="1", COURSE_OFFLINE="1", COURSE_CHECK_STRICT="0", COURSE_DATA_DIR=str(out / "data"),
    )  # fmt: skip
    version, rows, problems = release.package_version(), {}, []
    for i, path in enumerate(notebooks.notebook_paths(repo / "notebooks")):
        status, seconds = nbconvert(path, work)
        if status == "ok":
            executed, solution = (
                nbformat.read(p, as_version=4)
                for p in (work / path.name, ROOT / "notebooks" / path.name)
            )
            wrong = problems_in(executed, solution, i == 0, version)
            status = f"failed: {'; '.join(wrong)}" if wrong else "ok"
        rows[path.name] = {"status": status, "seconds": round(seconds, 1)}
        print(f"{path.name:40s} {status:8.300s} {seconds:7.1f} s", flush=True)
        if status != "ok":
            problems.append(path.name)
    versions = subprocess.run(
        [args.python, "-c", "import IPython, ipykernel, ipywidgets, numpy, matplotlib, sklearn, torch;"
         "print(IPython.__version__, ipykernel.__version__, ipywidgets.__version__, numpy.__version__,"
         " matplotlib.__version__, sklearn.__version__, torch.__version__)"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    names = ["IPython", "ipykernel", "ipywidgets", "numpy", "matplotlib", "scikit-learn", "torch"]
    print(json.dumps({"benchmark": "colab_like", "site": site, "versions": dict(zip(names, versions, strict=False)),
                      "notebooks": rows, "passed": len(rows) - len(problems), "runs": len(rows)}))  # fmt: skip
    sys.exit(1 if problems or not rows else 0)


if __name__ == "__main__":
    main()
