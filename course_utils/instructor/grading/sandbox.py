"""Run one submission's code in a locked-down child process (the zygote's side).

The grader starts one *zygote* per parallel job (``python -m
course_utils.instructor.grading.sandbox``, see :mod:`.pool`). A zygote imports NumPy, torch and
matplotlib once, then serves jobs read from stdin. It never runs student code itself; for each
attempt at a job it forks:

- **B**, still root: new mount, network, PID and IPC namespaces and a new root built from an
  allow-list and pivoted into (:mod:`.isolation`): only the system's libraries, the Python
  installation and the student-facing course package are there, read-only, beside an empty
  working folder and a private /tmp; then it forks
- **C**, PID 1 of the new PID namespace: its own /proc, resource limits (memory, processes, file
  size, open files, no core dumps), stdout/stderr into a capped file, then it drops to an
  unprivileged per-slot user and runs the setup cell, the student's helper cells (imports and
  definitions only), the exercise cells and the graded calls.

C reports progress over a pipe as length-prefixed JSON frames; results are ``.npy`` bytes
loaded with ``allow_pickle=False``. The zygote enforces every time limit from outside
(per cell, per call, per submission) with SIGKILL: killing PID 1 of a PID namespace kills
every process in it, so nothing outlives a job, and the namespace's tmpfs folders go with it. A
stage that hangs or crashes is skipped and the job restarts without it, so one bad exercise does
not cost the others.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field

from course_utils.instructor.grading import isolation, wire

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 38, 36
FIRST_UID = 61000  # slot k runs as uid/gid FIRST_UID + k (no account needed)


class ReturnedNone(Exception):
    """A graded call returned None, as a function without ``return`` does."""


class SandboxUnavailable(RuntimeError):
    """The machine lacks a primitive the sandbox needs; the message says which and what to do."""


@dataclass(frozen=True)
class Limits:
    """Limits for one submission. Times in seconds, sizes in bytes."""

    wall: float = 120.0
    cell: float = 20.0
    call: float = 10.0
    memory: int = 3 * 2**30
    processes: int = 64
    output: int = 16 * 2**20
    open_files: int = 256


@dataclass
class Job:
    """One submission to run: setup source, exercise cells and graded calls (plain data), and
    the student's helper cells (imports and definitions only), run after the setup."""

    setup: str
    cells: list[tuple[str, str]]
    calls: list[dict]
    limits: Limits = field(default_factory=Limits)
    helpers: list[str] = field(default_factory=list)


def call_stage(call: dict) -> str:
    """The stage name under which a graded call is reported: ``call:<exercise>:<case>``."""
    return f"call:{call['exercise']}:{call['case']}"


# ---------------------------------------------------------------- zygote side (trusted, root)


def _lock_down(uid: int, limits: dict, workdir: str) -> None:
    """In C: limits, output capture, then drop to ``uid`` for good."""
    import resource

    memory, output = limits["memory"], limits["output"]
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(limits["wall"]) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    isolation.mount_proc()
    os.chdir(workdir)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open("output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # too much output fails the write, not the grader
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "USER": "student"})
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    isolation.libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    isolation.libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _Shell:
    """Stands in for IPython during grading: magics and shell escapes are ignored."""

    def run_line_magic(self, *args, **kwargs):
        return None

    run_cell_magic = run_line_magic
    system = run_line_magic
    getoutput = run_line_magic


def student_arguments(call: dict) -> tuple[list, dict]:
    """The arguments a decoded hidden-test call passes to the student's function: arrays
    become tensors when the exercise works on tensors (``as_torch``)."""
    args, kwargs = call["args"], call["kwargs"]
    if not call.get("as_torch"):
        return args, kwargs
    import numpy as np
    import torch

    def convert(value):
        return torch.from_numpy(value) if isinstance(value, np.ndarray) else value

    return [convert(a) for a in args], {k: convert(v) for k, v in kwargs.items()}


def private_harnesses():
    """A private copy of ``course_utils.checks.harnesses``, loaded from its file and kept out of
    ``sys.modules``: made before any student code runs, it is out of reach of an exercise cell
    that rebinds names in the course's modules."""
    import importlib.util

    from course_utils.checks import harnesses

    spec = importlib.util.spec_from_file_location("_grading_harnesses", harnesses.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def harness_function(name: str):
    """The harness ``name`` of a fresh private copy of the harness module (for tests)."""
    return getattr(private_harnesses(), name)


def result_array(value):
    """What a student's function returned, as float64 numbers (shape kept); None when it holds
    none. Tensors of any dtype are read, bfloat16 included, as the public checks read them."""
    import numpy as np

    from course_utils.checks import tensor_to_numpy

    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = tensor_to_numpy(value)
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        return None


def _execute_stages(job: dict, skip: set[str], fd: int) -> None:
    """In C, as the student user: run the setup, the cells and the calls, reporting each."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    namespace: dict = {"__name__": "__main__", "get_ipython": _Shell}
    harnesses = private_harnesses()  # before any student code

    def stage(name: str, run) -> None:
        if name in skip:
            return
        wire.send(fd, {"t": "start", "stage": name})
        try:
            run()
            wire.send(fd, {"t": "end", "stage": name, "ok": True})
        except BaseException as exc:  # noqa: BLE001 - student code may raise anything, SystemExit included
            error = type(exc).__name__
            if isinstance(
                exc, harnesses.Verdict
            ):  # only the private copy's: a rule it found broken
                error = f"Verdict:{exc.code}"
            wire.send(fd, {"t": "end", "stage": name, "ok": False, "error": error})

    def run_cell(src: str):
        return lambda: exec(compile(transform(src), "<cell>", "exec"), namespace)

    stage("setup", run_cell(job["setup"]))
    for index, src in enumerate(job["helpers"]):
        stage(f"helper:{index}", run_cell(src))
    for exercise_id, src in job["cells"]:
        stage(f"cell:{exercise_id}", run_cell(src))
    for call in wire.decode(job["calls"]):
        name = call_stage(call)

        def graded(call=call, name=name):
            fn = namespace.get(call["name"])
            if not callable(fn):
                raise LookupError(call["name"])
            args, kwargs = student_arguments(call)
            if call.get("harness"):  # it builds the inputs, calls fn and returns numbers
                value = getattr(harnesses, call["harness"])(fn, *args, **kwargs)
            else:
                value = fn(*args, **kwargs)
            if value is None:
                raise ReturnedNone(call["name"])  # named in the feedback: a missing `return`
            if call.get("pick") is not None:
                value = value[call["pick"]]
            numbers = result_array(value)
            if numbers is not None:  # else no result: the grader says "not an array of numbers"
                wire.send(fd, {"t": "result", "stage": name, "value": wire.encode(numbers)})

        stage(name, graded)
    wire.send(fd, {"t": "done"})


def _attempt(job: dict, uid: int, skip: set[str], deadline: float) -> tuple[dict, str | None, dict]:
    """One fork of B/C. Returns (stage reports, the stage that hung or crashed, results)."""
    limits = job["limits"]
    workdir = f"/tmp/course-grading-{uid}"
    progress_r, progress_w = os.pipe()
    control_r, control_w = os.pipe()
    b = os.fork()
    if b == 0:  # B
        try:
            os.close(progress_r)
            os.close(control_r)
            isolation.enter(
                uid, workdir, isolation.readable_paths(), [isolation.instructor_package()]
            )
            c = os.fork()
            if c == 0:  # C
                os.close(control_w)
                _lock_down(uid, limits, workdir)
                _execute_stages(job, skip, progress_w)
                os._exit(0)
            os.close(progress_w)
            wire.send(control_w, {"t": "pid", "pid": c})
            _, status = os.waitpid(c, 0)
            wire.send(control_w, {"t": "exit", "status": status})
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - report any setup failure, then leave
            try:
                wire.send(control_w, {"t": "error", "error": f"{type(exc).__name__}: {exc}"})
            finally:
                os._exit(3)
    os.close(progress_w)
    os.close(control_w)
    reader, control = wire.FrameReader(), wire.FrameReader(limit=1 << 16)
    stages: dict[str, dict] = {}
    results: dict[str, dict] = {}
    current, last, started, c_pid, failure, done = None, None, 0.0, None, None, False
    open_fds = {progress_r, control_r}
    try:
        while open_fds:
            now = time.monotonic()
            limit = limits["call"] if (current or "").startswith("call:") else limits["cell"]
            stage_deadline = started + limit if current else deadline
            timeout = max(0.0, min(deadline, stage_deadline) - now)
            ready, _, _ = select.select(list(open_fds), [], [], timeout)
            if not ready:  # a limit passed: kill the whole namespace, keep what was reported
                failure = current or "wall"
                if current:
                    stages[current] = {"status": "timeout"}
                for pid in (c_pid, b):
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                current = None
                break
            for fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    open_fds.discard(fd)
                    continue
                try:
                    frames = (reader if fd == progress_r else control).feed(data)
                except (ValueError, UnicodeDecodeError):
                    open_fds.discard(fd)
                    if c_pid:
                        os.kill(c_pid, signal.SIGKILL)
                    continue
                for frame in frames:
                    kind = frame.get("t")
                    if fd == control_r:
                        if kind == "pid":
                            c_pid = int(frame["pid"])
                        elif kind == "error":
                            raise SandboxUnavailable(
                                f"the sandbox could not start: {frame.get('error')}"
                            )
                        continue
                    name = frame.get("stage")
                    if kind == "start" and isinstance(name, str):
                        current, last, started = name, name, time.monotonic()
                    elif kind == "end" and name == current:
                        stages[name] = {
                            "status": "ok" if frame.get("ok") else "error",
                            "error": str(frame.get("error", ""))[:80],
                        }
                        current = None
                    elif (
                        kind == "result"
                        and name == current
                        and isinstance(frame.get("value"), dict)
                    ):
                        results[name] = frame["value"]
                    elif kind == "done":
                        done = True
    finally:
        os.close(progress_r)
        os.close(control_r)
        os.waitpid(b, 0)
        _reap_orphans()
    if (
        not done and failure is None
    ):  # C died (segfault, os._exit, kill): blame the last stage it began
        failure = last or "setup"
        stages[failure] = {"status": "crashed"}
    return stages, failure, results


def _reap_orphans(patience: float = 10.0) -> None:
    """Reap any C that outlived its B (a timeout kills both): as a child subreaper the zygote
    inherits it, so it never lingers as a zombie of the student's user."""
    give_up = time.monotonic() + patience
    while time.monotonic() < give_up:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no children left
            return
        if pid == 0:  # one is still dying from its SIGKILL
            time.sleep(0.01)


def run_job(job: dict, uid: int) -> dict:
    """Run a job, restarting without any stage that hung or crashed, within the wall limit."""
    deadline = time.monotonic() + job["limits"]["wall"]
    stages: dict[str, dict] = {}
    results: dict[str, dict] = {}
    skip: set[str] = set()
    for _ in range(2 + len(job["helpers"]) + len(job["cells"])):
        new_stages, failure, new_results = _attempt(job, uid, skip, deadline)
        stages.update(new_stages)
        results.update(new_results)
        if failure is None or failure in ("setup", "wall") or time.monotonic() >= deadline:
            if failure == "wall":
                stages["wall"] = {"status": "timeout"}
            break
        if failure.startswith("call:"):  # skip the rest of that exercise's calls
            exercise = failure.split(":")[1]
            skip |= {call_stage(c) for c in job["calls"] if c["exercise"] == exercise}
        skip.add(failure)
        skip |= {name for name in stages if name.startswith("call:")}
    return {"stages": stages, "results": results}


def serve(uid: int) -> None:
    """The zygote: preload libraries, then answer one JSON job per line on stdin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401 - preloaded for the notebooks' setup cells
    import numpy  # noqa: F401
    import torch
    from IPython.core.inputtransformer2 import TransformerManager  # noqa: F401

    import course_utils.env  # noqa: F401

    torch.set_num_threads(1)
    isolation.libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    out = sys.stdout
    sys.stdout = sys.stderr
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            reply = run_job(json.loads(line), uid)
        except Exception as exc:  # report, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
