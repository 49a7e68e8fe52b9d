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


#: What pytest-xdist's workers (`make test`) run one after another in a single worker, in the
#: order pytest collects them: every notebook under NOTEBOOKS and the tests in NOTEBOOK_RUNS, which
#: execute course notebooks top to bottom. Two notebooks training at once on a two-core machine
#: slow each other several times over, so notebooks never run side by side.
#: (tests/test_project_files.py checks that every test named here exists.)
NOTEBOOKS = "notebooks/"
NOTEBOOK_RUNS = (
    "tests/test_benchmarks.py::test_benchmark_runs_and_prints_its_figures[gpu_course.py]",
    "tests/test_benchmarks.py::test_benchmark_runs_and_prints_its_figures[notebook_times.py]",
    "tests/test_cli.py::test_run_executes_notebook_01_and_prints_its_row",
)
SERIAL_UNIT = "<notebooks, one after another>"


def _threads_per_worker(workers: int) -> str:
    """An equal share of the cores for each pytest-xdist worker, so no worker's threads wait on
    another's (torch's default of every core in each worker oversubscribes them)."""
    return str(max(1, (os.cpu_count() or 1) // workers))


def pytest_configure(config):
    """In a pytest-xdist worker: COURSE_THREADS (unless set already) and OMP_NUM_THREADS to the
    worker's share of the cores. No test module, so no torch, has been imported yet; notebook
    kernels and subprocesses inherit both."""
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        os.environ.setdefault("COURSE_THREADS", _threads_per_worker(worker["workercount"]))
        if os.environ["COURSE_THREADS"].isdecimal():  # else setup() names the mistake
            os.environ.setdefault("OMP_NUM_THREADS", os.environ["COURSE_THREADS"])


def pytest_report_header(config):
    """One header line that says which settings the run uses."""
    settings = " ".join(f"{name}={os.environ[name]}" for name in SETTINGS)
    workers = len(getattr(config.option, "tx", None) or [])
    if workers:
        threads = os.environ.get("COURSE_THREADS") or _threads_per_worker(workers)
        settings += f" COURSE_THREADS={threads} in each of {workers} workers"
    return "course settings: " + settings


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (any ``--dist`` but ``each``): xdist's ``loadscope`` scheduling, where
    each test module is one unit of work, except that the notebooks and NOTEBOOK_RUNS are a single
    unit, handed out first because it takes longest. (Under ``load``, xdist's default, one
    notebook's cells would go to different workers, each with its own kernel.)"""
    if config.getvalue("dist") == "each":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebooksInOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            if nodeid.startswith(NOTEBOOKS) or nodeid in NOTEBOOK_RUNS:
                return SERIAL_UNIT
            return super()._split_scope(nodeid)

        def _assign_work_unit(self, node):
            if SERIAL_UNIT in self.workqueue:
                self.workqueue.move_to_end(SERIAL_UNIT, last=False)
            super()._assign_work_unit(node)

    return NotebooksInOneWorker(config, log)
