"""The files around the code: README, environment.yml, lint, CI entry point."""

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from course_utils.__main__ import build_parser
from course_utils.instructor import notebooks

# conda-forge names that differ from the pip names
CONDA_TO_PIP = {"pytorch": "torch"}


def _split(requirement: str) -> tuple[str, str]:
    requirement = requirement.split(";")[0]  # drop environment markers
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*(.*?)\s*", requirement)
    assert match, requirement
    return match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_environment_yml_matches_pyproject(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pip_side = dict(
        _split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    )
    env = yaml.safe_load((root / "environment.yml").read_text())
    conda_side = {}
    pip_section = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += dep["pip"]
            continue
        name, bound = _split(dep)
        if name not in ("python", "pip"):
            conda_side[CONDA_TO_PIP.get(name, name)] = bound
    assert conda_side == pip_side, (
        "environment.yml and pyproject.toml list different packages or bounds"
    )
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.replace(" ", "") == "python" + project["requires-python"]
    assert pip_section == ["-e ."], (
        "the package itself is installed by pip without extra dependencies"
    )


def test_readme_table_is_current(root):
    text = (root / "README.md").read_text(encoding="utf-8")
    assert notebooks.render_readme(text, notebooks.readme_table()) == text, "run `make readme`"
    for path in notebooks.notebook_paths():
        assert f"(notebooks/{path.name})" in text


def test_readme_commands_exist(root):
    text = (root / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S).group(1)
    assert "make run" in first_block and "make test" in first_block, "the two commands come first"
    makefile = (root / "Makefile").read_text() + (root / "course.mk").read_text()
    assert "include course.mk" in makefile
    for target in set(re.findall(r"make ([a-z-]+)", text)):
        assert re.search(rf"^{target}:", makefile, re.M), (
            f"README names `make {target}`, Makefile lacks it"
        )
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)
    for command in set(re.findall(r"python -m course_utils ([a-z]+)", text)):
        assert command in subcommands, (
            f"README names `python -m course_utils {command}`, CLI lacks it"
        )


def test_readme_documents_every_flag_the_package_reads(root):
    readme = (root / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(COURSE_[A-Z_]+)=", readme, re.M))
    read = {
        name
        for path in (root / "course_utils").rglob("*.py")
        for name in re.findall(r"COURSE_[A-Z_]+", path.read_text(encoding="utf-8"))
    }
    read.discard("COURSE_PYTHON")  # the Gradescope bundle's hook for its own test, not a flag
    assert read <= documented, f"README's flag table lacks {sorted(read - documented)}"


def test_ci_runs_the_readme_test_commands(root):
    commands = [
        line for line in (root / ".ci/run").read_text().splitlines() if line.startswith("make")
    ]
    assert commands == ["make test", "make test-colab", "make test-browser"]
    readme = (root / "README.md").read_text()
    assert "CI runs `make test`, then `make test-colab` and `make test-browser`" in readme


def test_ruff_is_clean_on_package_tests_and_notebooks(root):
    done = subprocess.run(  # the ruff of the environment running the tests, whichever it is
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "course_utils",
            "tests",
            "benchmarks",
            "requirements",
            "notebooks",
            "conftest.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_pytest_given_one_notebook_still_sets_fast_offline_strict_mode(root):
    """Given only a notebook, pytest never loads tests/conftest.py; the root conftest.py, which
    sets the mode, must still apply (without it a failing check() would not fail the cell)."""
    # the environment of a maintainer's shell, not this run's
    shell = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_", "PYTEST_XDIST_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "notebooks/01_convolution_1d.ipynb"],
        cwd=root,
        env=shell,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "COURSE_FAST=1 COURSE_OFFLINE=1 COURSE_CHECK_STRICT=1" in done.stdout, done.stdout


def _suite(pytester, root, monkeypatch) -> str:
    """A small project under pytester with the root conftest.py: two "notebooks" of two tests,
    a test NOTEBOOK_RUNS names beside another test, and three modules of eight tests, each test
    appending its worker, name and thread settings to log.txt; outside any xdist run. The test
    NOTEBOOK_RUNS names (its first without parameters) is returned."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID",
                 "COURSE_THREADS", "OMP_NUM_THREADS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest((root / "conftest.py").read_text())
    log = pytester.path / "log.txt"
    record = (
        "import os\n\ndef record(name):\n"
        f"    with open({str(log)!r}, 'a') as f:\n"
        "        env = os.environ\n"
        "        f.write(' '.join([env.get('PYTEST_XDIST_WORKER', 'main'), name,"
        " env.get('COURSE_THREADS', '-'), env.get('OMP_NUM_THREADS', '-')]) + '\\n')\n"
    )

    def module(path: str, names: list[str]) -> None:
        (pytester.path / path).parent.mkdir(exist_ok=True)
        tests = "".join(f"\n\ndef {n}():\n    record({path + '::' + n!r})\n" for n in names)
        (pytester.path / path).write_text(record + tests)

    for notebook in ("01_a", "02_b"):
        module(f"notebooks/test_{notebook}.py", [f"test_cell_{i}" for i in range(2)])
    run = next(run for run in _notebook_runs(root) if "[" not in run)
    module(run.split("::")[0], [run.split("::")[1], "test_other"])
    for other in ("x", "y", "z"):
        module(f"tests/test_{other}.py", [f"test_{other}{i}" for i in range(8)])
    return run


def _make_test_arguments(root) -> list[str]:
    """The pytest arguments of the Makefile's `test` recipe, with TEST_WORKERS at its default."""
    makefile = (root / "Makefile").read_text()
    workers = re.search(r"^TEST_WORKERS \?= (\d+)$", makefile, re.M)[1]
    recipe = re.search(r"^test: .*\n\t\$\(PY\) -m pytest (.*) \$\(PYTEST_ARGS\)$", makefile, re.M)[
        1
    ]
    return recipe.replace("$(TEST_WORKERS)", workers).split()


def test_make_test_runs_the_notebooks_one_after_another_in_one_worker(root, pytester, monkeypatch):
    """With the Makefile's own arguments, the notebooks and the tests NOTEBOOK_RUNS names run in
    one worker in their collection order, handed out first though other modules are larger; each
    worker gets its share of the cores' threads."""
    run = _suite(pytester, root, monkeypatch)
    arguments = _make_test_arguments(root)
    workers = int(arguments[arguments.index("-n") + 1])
    assert workers >= 2
    group = [
        "notebooks/test_01_a.py::test_cell_0", "notebooks/test_01_a.py::test_cell_1",
        "notebooks/test_02_b.py::test_cell_0", "notebooks/test_02_b.py::test_cell_1", run,
    ]  # fmt: skip
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    done = pytester.runpytest_subprocess(*arguments, "-p", "no:cacheprovider")
    done.assert_outcomes(passed=4 + 2 + 24)
    rows = [line.split() for line in (pytester.path / "log.txt").read_text().splitlines()]
    (worker,) = {w for w, name, *_ in rows if name in group}
    ran_there = [name for w, name, *_ in rows if w == worker]
    assert ran_there[: len(group)] == group, ran_there
    assert {w for w, *_ in rows} == {f"gw{i}" for i in range(workers)}
    assert {(course, omp) for *_, course, omp in rows} == {(threads, threads)}
    assert f"COURSE_THREADS={threads} in each of {workers} workers" in done.stdout.str()


def test_a_maintainers_course_threads_reach_every_worker_and_the_header(root):
    """COURSE_THREADS set before `make test` is kept in each worker (and OMP_NUM_THREADS follows
    it) and named in the header; a worker without it gets its share of the cores. The root
    conftest.py's hooks, called here with the environment restored afterwards."""
    share = str(max(1, (os.cpu_count() or 1) // 2))
    maintainers = str(int(share) + 1)  # differs from the share on any machine
    worker = SimpleNamespace(workerinput={"workercount": 2})
    controller = SimpleNamespace(option=SimpleNamespace(tx=["popen", "popen"]))
    with mock.patch.dict(os.environ):
        spec = importlib.util.spec_from_file_location("root_conftest", root / "conftest.py")
        conftest = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(conftest)
        for set_before, expected in ((maintainers, maintainers), (None, share)):
            os.environ.pop("OMP_NUM_THREADS", None)
            os.environ.pop("COURSE_THREADS", None)
            if set_before is not None:
                os.environ["COURSE_THREADS"] = set_before
            header = conftest.pytest_report_header(controller)
            assert f"COURSE_THREADS={expected} in each of 2 workers" in header, header
            conftest.pytest_configure(worker)
            assert (os.environ["COURSE_THREADS"], os.environ["OMP_NUM_THREADS"]) == (expected,) * 2


def _notebook_runs(root) -> tuple[str, ...]:
    """The test ids of the root conftest.py's NOTEBOOK_RUNS, read without importing it."""
    tree = ast.parse((root / "conftest.py").read_text())
    (ids,) = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "NOTEBOOK_RUNS"
    ]
    return ids


def test_every_test_that_notebook_runs_names_exists(root):
    """A renamed or moved test in conftest.py's NOTEBOOK_RUNS would run beside the notebooks
    unnoticed: pytest must find each one by its id."""
    ids = _notebook_runs(root)
    assert ids and all(run.startswith("tests/") and "::" in run for run in ids)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *ids],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line for line in done.stdout.splitlines() if "::" in line] == list(ids)


def _requirements_module(root, name: str):
    """Import a script of requirements/ (they are not a package)."""
    sys.path.insert(0, str(root / "requirements"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(root / "requirements"))


def _lock_pins(path) -> dict[str, str]:
    """{canonical package name: version} of a lock file."""
    lines = path.read_text().splitlines()
    pins = (line.split("==") for line in lines if "==" in line and not line.startswith("#"))
    return {_canonical(name): version for name, version in pins}


@pytest.mark.parametrize("python", ["3.10", "3.11.0", "3.11", "3.12", "3.13"])
def test_every_python_gets_a_lock_that_pins_what_pyproject_needs(root, python):
    """Python 3.10 cannot install the newest pins (NumPy 2.4 needs 3.11, soupsieve 3.11.5): it,
    and 3.11 before 3.11.5, have their own file."""
    version = tuple(map(int, python.split(".")))
    lock = _requirements_module(root, "pins").constraints_file(version)
    newest = (version + (99,))[:3]  # "3.11": its newest patch release
    assert lock.endswith("-py310.txt") == (newest < (3, 11, 5))
    pins = _lock_pins(root / lock)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for requirement in map(
        Requirement, project["dependencies"] + extras["dev"] + extras["browser"]
    ):
        if requirement.marker and not requirement.marker.evaluate({"python_version": python[:4]}):
            continue  # not installed on this Python
        name = _canonical(requirement.name)
        assert name in pins, f"{name} is not pinned in {lock}: run `make lock`"
        assert requirement.specifier.contains(pins[name]), (
            f"{lock} pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_make_installs_with_the_lock_of_the_python_that_creates_the_venv(root, tmp_path):
    done = subprocess.run(
        ["make", "-n", "install-dev", f"VENV={tmp_path / 'venv'}", f"PYTHON={sys.executable}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lock = _requirements_module(root, "pins").constraints_file(sys.version_info)
    assert f"-c {lock} -e" in done.stdout, done.stdout


@pytest.mark.parametrize("target", ["install", "install-dev"])
def test_a_failed_install_says_where_the_pinned_torch_runs_and_what_to_do_elsewhere(
    root, tmp_path, target
):
    """pip's own error for a platform without a torch wheel is "No matching distribution"."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)  # an existing .venv; PIP=false fails
    done = subprocess.run(
        ["make", target, f"VENV={venv}", "PIP=false"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode != 0
    lock = _requirements_module(root, "pins").constraints_file(sys.version_info)
    torch = _lock_pins(root / lock)["torch"]
    assert f"pinned in {lock}" in done.stderr and f"torch {torch} has wheels" in done.stderr
    assert "macOS 14" in done.stderr and "Colab" in done.stderr
    assert not list(venv.glob(".installed*"))  # nothing claims an install that failed


def test_floors_pin_every_direct_dependency_at_its_lower_bound(root, tmp_path):
    done = subprocess.run(
        [sys.executable, "requirements/floors.py"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    pinned = {_split(line)[0]: _split(line)[1] for line in done.stdout.splitlines()}
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = dict(
        _split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    )
    assert pinned == {name: bound.replace(">=", "==") for name, bound in declared.items()}
    assert "python_version < '3.11'" in done.stdout  # markers survive

    floors = _requirements_module(root, "floors")
    unbounded = tmp_path / "pyproject.toml"
    unbounded.write_text(
        '[project]\ndependencies = ["torch"]\n[project.optional-dependencies]\ndev = []\n'
    )
    with pytest.raises(SystemExit, match="'torch': every dependency needs a '>=' floor"):
        floors.floors(unbounded)


def _providers() -> dict[str, set[str]]:
    """Import name -> the distributions that install it, from each distribution's file list.

    (Python 3.10's ``packages_distributions()`` reads only ``top_level.txt``, which wheels built
    with meson, scikit-learn's among them, do not have.)
    """
    import importlib.metadata as metadata

    providers = {}
    for dist in metadata.distributions():
        name = _canonical(dist.metadata["Name"])
        for file in dist.files or []:
            top = file.parts[0] if len(file.parts) > 1 else file.name.split(".")[0]
            if top.isidentifier():
                providers.setdefault(top, set()).add(name)
    return providers


def _imports_with_a_fallback(source: str, imports_of) -> set[str]:
    """Modules imported in a ``try`` whose handler catches ImportError (the handler's import,
    checked like any other, is what must be installed: ``tomllib`` or else ``tomli``)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            names |= imports_of(ast.unparse(ast.Module(body=node.body, type_ignores=[])))
    return names


def test_the_package_imports_only_what_its_runtime_dependencies_install(root, imports_of):
    """Students and instructors get `pip install course-utils` without the dev extra: every module
    course_utils imports must be a runtime dependency or come with one (on any Python)."""
    import importlib.metadata as metadata

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = {_canonical(Requirement(r).name) for r in project["dependencies"]}
    installed_with_them, todo = set(), list(declared)
    while todo:
        name = todo.pop()
        if name in installed_with_them:
            continue
        installed_with_them.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # declared for another Python (a marker), so not installed here
        for requirement in map(Requirement, requires):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_canonical(requirement.name))
    providers = _providers()
    problems = []
    for path in sorted((root / "course_utils").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for name in sorted(imports_of(source) - _imports_with_a_fallback(source, imports_of)):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("course_utils", "__future__"):
                continue
            distributions = providers.get(top, {_canonical(top)})
            if not distributions & installed_with_them:
                problems.append(
                    f"{path.relative_to(root)} imports {name} ({', '.join(sorted(distributions))}),"
                    " which no runtime dependency in pyproject.toml installs"
                )
    assert not problems, "\n".join(problems)


def test_make_install_has_jupyterlab_save_widget_state(root, tmp_path):
    """A saved notebook, reopened, shows its explorers' last picture instead of "Error
    displaying widget: model not found": the course's environment turns on the widget manager's
    saveState (its schema must know the setting), for editable and plain installs alike."""
    setting = json.loads((root / "course_utils/jupyter/course-utils.json").read_text())
    plugin = "@jupyter-widgets/jupyterlab-manager:plugin"
    assert setting == {plugin: {"saveState": True}}
    schema = Path(sys.prefix, "share/jupyter/labextensions", plugin.split(":")[0], "schemas",
                  plugin.split(":")[0], "plugin.json")  # fmt: skip
    assert "saveState" in json.loads(schema.read_text())["properties"]
    folder = "share/jupyter/lab/settings/overrides.d"
    assert tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"][
        folder
    ] == ["course_utils/jupyter/course-utils.json"]
    for target in ("install", "install-dev"):
        done = subprocess.run(
            ["make", "-n", target, f"VENV={tmp_path / 'venv'}", f"PYTHON={sys.executable}"],
            cwd=root, capture_output=True, text=True,
        )  # fmt: skip
        assert (
            f"cp course_utils/jupyter/course-utils.json {tmp_path / 'venv'}/{folder}/"
            in done.stdout
        )
