"""Run one submission's code in a locked-down child process.

The grader's zygote (:mod:`.zygote`) never runs student code itself; for each attempt at a job
it forks:

- **B**, still root: new mount, network, PID and IPC namespaces and a new root built from an
  allow-list and pivoted into (:mod:`.isolation`): only the system's libraries, the Python
  installation and the student-facing course package are there, read-only, beside an empty
  working folder and a private /tmp; then it forks
- **C**, PID 1 of the new PID namespace: its own /proc, resource limits (memory, address space,
  processes, file size, open files, no core dumps), stdout/stderr into a capped file, then it
  drops to an unprivileged per-slot user, installs a system-call filter (:mod:`.seccomp`) and
  runs the setup cell, the student's helper cells (imports and definitions only), the exercise
  cells and the graded calls.

C reports progress over a pipe as length-prefixed JSON frames; results are ``.npy`` bytes
loaded with ``allow_pickle=False``. Student code can write to that pipe too, so the zygote
believes only frames in the order the stages must run in, and enforces every time limit from
outside.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
from dataclasses import dataclass, field

from course_utils.instructor.grading import isolation, seccomp, wire

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
FIRST_UID = 61000  # slot k runs as uid/gid FIRST_UID + k (no account needed)


class ReturnedNone(Exception):
    """A graded call returned None, as a function without ``return`` does."""


class SandboxUnavailable(RuntimeError):
    """The machine lacks a primitive the sandbox needs; the message says which and what to do."""


def preflight() -> None:
    """Raise :class:`SandboxUnavailable` unless this machine can isolate student code."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(
            "grading needs Linux namespaces; run it in a Linux container as root (for example "
            "`docker run --rm -it --privileged -v $PWD:/course python:3.11 bash`)"
        )
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "grading must run as root so each submission can drop to an unprivileged user and get "
            "its own network and mount namespaces; run `sudo .venv/bin/python -m course_utils grade ...` "
            "or grade inside a container as root"
        )
    machine = platform.machine()
    if machine not in isolation.PIVOT_ROOT:
        raise SandboxUnavailable(
            f"the sandbox's pivot_root is set up for {', '.join(isolation.PIVOT_ROOT)}, not "
            f"{machine}; grade on one of those (a Linux container as root)"
        )


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


# ---------------------------------------------------------------- C, before and as the student


def lock_down(uid: int, limits: dict, workdir: str) -> None:
    """In C: limits, output capture, then drop to ``uid`` for good behind the system-call
    filter."""
    import resource

    memory, output = limits["memory"], limits["output"]
    isolation.mount_proc()
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    mapped = _address_space()  # what is mapped already (libraries, torch) plus the allowance:
    resource.setrlimit(resource.RLIMIT_AS, (mapped + memory, mapped + memory))  # shared maps too
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(limits["wall"]) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
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
    seccomp.install()  # after this, the parent-death signal cannot be taken back


def _address_space() -> int:
    """This process's mapped virtual memory in bytes (VmSize)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


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


def private_copy(module):
    """A private copy of ``module`` (one of ``course_utils.checks``' harness or rule modules),
    loaded from its file and kept out of ``sys.modules``: made before any student code runs, it
    is out of reach of an exercise cell that rebinds names in the course's modules."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_grading_{module.__name__}", module.__file__)
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    return copy


def private_harnesses():
    """A private copy of ``course_utils.checks.harnesses``."""
    from course_utils.checks import harnesses

    return private_copy(harnesses)


def harness_function(name: str):
    """The harness ``name`` of a fresh private copy of the harness module (for tests)."""
    return getattr(private_harnesses(), name)


def result_array(value):
    """What a student's function returned, as float64 numbers (shape kept), or int64 when its
    dtype is an integer one (so that grading can name a truncation); None when it holds none.
    Tensors of any dtype are read, bfloat16 included, as the public checks read them."""
    import numpy as np

    from course_utils.checks.compare import tensor_to_numpy

    try:
        if hasattr(value, "detach") and hasattr(value, "cpu"):
            value = tensor_to_numpy(value)
        if np.iscomplexobj(value):  # a forgotten .real is not numbers the exercise asked for
            return None
        array = np.asarray(value)
        if array.dtype.kind in "iub":
            return array.astype(np.int64)
        if array.dtype.kind != "f":  # text, objects, ragged lists: not numbers
            return None
        return array.astype(np.float64)
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        return None


def execute_stages(job: dict, skip: set[str], fd: int) -> None:
    """In C, as the student user: run the setup, the cells and the calls, reporting each."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    from course_utils.checks import ruled_out, stub_reached

    namespace: dict = {"__name__": "__main__", "get_ipython": _Shell}
    harnesses = private_harnesses()  # before any student code
    rules = private_copy(ruled_out)

    def stage(name: str, run) -> None:
        if name in skip:
            return
        wire.send(fd, {"t": "start", "stage": name})
        try:
            run()
            wire.send(fd, {"t": "end", "stage": name, "ok": True})
        except BaseException as exc:  # noqa: BLE001 - student code may raise anything, SystemExit included
            error = type(exc).__name__
            if isinstance(exc, harnesses.Verdict):  # only the private copy's: a broken rule
                error = f"Verdict:{exc.code}"
            elif isinstance(exc, rules.RuledOut):  # a call the exercise's text rules out
                error = f"RuledOut:{exc.code}"
            elif isinstance(exc, NotImplementedError) and hasattr(exc, "stub"):  # graded() set it
                error = {None: error, "": "LibraryNotImplementedError"}.get(
                    exc.stub, f"Stub:{exc.stub}"
                )
            wire.send(fd, {"t": "end", "stage": name, "ok": False, "error": error})

    def run_cell(src: str):
        return lambda: exec(compile(transform(src), "<cell>", "exec"), namespace)

    stage("setup", run_cell(job["setup"]))
    for index, src in enumerate(job["helpers"]):
        stage(f"helper:{index}", run_cell(src))
    for exercise_id, src in job["cells"]:
        stage(f"cell:{exercise_id}", run_cell(src))
    for call in job["calls"]:  # decoded by the zygote
        name = call_stage(call)

        def graded(call=call, name=name):
            fn = namespace.get(call["name"])
            if not callable(fn):
                raise LookupError(call["name"])
            if rules.is_course_code(fn):  # the course's reference imported as the answer
                raise rules.RuledOut("course-code")
            args, kwargs = student_arguments(call)
            try:
                with rules.watch(
                    tuple(call.get("rules_out", ())), (*args, *kwargs.values())
                ) as seen:
                    if call.get("harness"):  # it builds the inputs, calls fn, returns numbers
                        value = getattr(harnesses, call["harness"])(fn, *args, **kwargs)
                    else:
                        value = fn(*args, **kwargs)
            except NotImplementedError as exc:
                exc.stub = stub_reached(exc, fn)  # named by the stage: not attempted, or a stub
                raise
            if seen:
                raise rules.RuledOut(seen[0])
            if value is None:
                raise ReturnedNone(call["name"])  # named in the feedback: a missing `return`
            if call.get("pick") is not None:  # one part of a tuple answer, if it has that part
                parts = value if isinstance(value, (tuple, list)) else ()
                value = parts[call["pick"]] if call["pick"] < len(parts) else ()
            numbers = result_array(value)
            if numbers is not None:  # else no result: the grader says "not an array of numbers"
                wire.send(fd, {"t": "result", "stage": name, "value": wire.encode(numbers)})

        stage(name, graded)
    wire.send(fd, {"t": "done"})
