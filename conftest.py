"""Settings for every pytest run in this repository, whatever paths it is given.

The environment is set at import, before nbval starts any kernel, so every notebook runs in fast
mode, offline (stand-in data, no download attempts) and with strict checks (a ❌ or ⏳ from
``check()`` fails the cell), also when pytest is pointed at one notebook
(``python -m pytest notebooks/05_pooling.ipynb``), which never loads ``tests/conftest.py``.
"""

import os

import pytest

SETTINGS = {
    "COURSE_FAST": "1",
    "COURSE_OFFLINE": "1",
    "COURSE_CHECK_STRICT": "1",
    "MPLBACKEND": "Agg",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}
os.environ.update(SETTINGS)


#: What `make test`'s pytest-xdist workers run one after another in a single worker: the notebooks
#: and the tests that execute course notebooks top to bottom. Two notebooks training at once on a
#: two-core machine slow each other several times over, so notebooks never run side by side.
#: (tests/test_project_files.py checks that every test named here exists.)
NOTEBOOK_RUNS = (
    "notebooks/",
    "tests/test_release.py::test_release_notebooks_run_unattempted_under_nbconvert",
    "tests/test_benchmarks.py::test_benchmark_runs_and_prints_its_figures[gpu_course.py]",
    "tests/test_benchmarks.py::test_benchmark_runs_and_prints_its_figures[notebook_times.py]",
    "tests/test_cli.py::test_run_executes_notebook_01_and_prints_its_row",
)


def _threads_per_worker(workers: int) -> str:
    """An equal share of the cores for each pytest-xdist worker, so no worker's threads wait on
    another's (torch's default of every core in each worker oversubscribes them)."""
    return str(max(1, (os.cpu_count() or 1) // workers))


WORKERS = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
if WORKERS:  # this process is a pytest-xdist worker
    os.environ.setdefault("COURSE_THREADS", _threads_per_worker(int(WORKERS)))
    os.environ.setdefault("OMP_NUM_THREADS", os.environ["COURSE_THREADS"])  # read at import torch


def pytest_report_header(config):
    """One header line that says which settings the run uses."""
    settings = " ".join(f"{name}={os.environ[name]}" for name in SETTINGS)
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 0 and "COURSE_THREADS" not in os.environ:
        settings += f" COURSE_THREADS={_threads_per_worker(workers)} in each of {workers} workers"
    return "course settings: " + settings


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``--dist loadscope``: each test module is one unit of work, as usual, except that
    everything NOTEBOOK_RUNS names is a single unit, handed out first because it takes longest."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebooksInOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            if nodeid.startswith(NOTEBOOK_RUNS):
                return "notebooks"
            return super()._split_scope(nodeid)

        def _assign_work_unit(self, node):
            if "notebooks" in self.workqueue:
                self.workqueue.move_to_end("notebooks", last=False)
            super()._assign_work_unit(node)

    return NotebooksInOneWorker(config, log)
