"""The zygote: the grader's trusted server process that runs each job in fresh sandboxes.

The grader starts one zygote per parallel job (``python -m
course_utils.instructor.grading.zygote <uid>``, see :mod:`.pool`). It imports NumPy, torch and
matplotlib once and never reads a job itself: for each job it forks **J**, which reads that one
job from stdin, answers it on stdout and exits. So the memory every sandbox is forked from never
held another student's code. For each attempt at the job, J forks **B** and **C**
(:mod:`.sandbox`), watches C's progress frames against the order the stages must run in, and
enforces every time limit from outside with SIGKILL: killing PID 1 of a PID namespace kills
every process in it. A stage that hangs or crashes is skipped and the job restarts without it,
so one bad exercise does not cost the others. When the grader goes away (end of stdin), J kills
the sandbox it is running and the zygote exits.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import sys
import time

from course_utils.instructor.grading import isolation, wire
from course_utils.instructor.grading.sandbox import (
    SandboxUnavailable,
    call_stage,
    execute_stages,
    lock_down,
)

PR_SET_CHILD_SUBREAPER = 36
SERVED, END_OF_INPUT = 0, 10  # J's exit codes
#: The most attempts at one job (each stage that hangs or crashes costs one), within its wall limit.
MAX_ATTEMPTS = 40
#: An error as the sandbox may name it: an exception's class name, a harness verdict code, the
#: code of a call the exercise rules out, or the name of an unfinished function that was reached.
ERROR_NAME = re.compile(r"(Verdict:|RuledOut:|Stub:)?[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def stage_order(job: dict, skip: set[str]) -> list[str]:
    """The stages C runs, in order (what :func:`.sandbox.execute_stages` reports)."""
    names = ["setup", *(f"helper:{i}" for i in range(len(job["helpers"])))]
    names += [f"cell:{exercise_id}" for exercise_id, _ in job["cells"]]
    names += [call_stage(call) for call in job["calls"]]
    return [name for name in names if name not in skip]


class Progress:
    """C's reports, believed only in the order the stages must run in: a frame that starts
    a stage out of turn, ends a stage that is not running or sends a second result is ignored,
    so student code that writes to the progress pipe cannot mark the setup as failed, restart
    its time limit out of turn or name its error in free text."""

    def __init__(self, order: list[str]) -> None:
        self.order, self.position = order, 0
        self.current: str | None = None
        self.last: str | None = None
        self.started = 0.0
        self.stages: dict[str, dict] = {}
        self.results: dict[str, dict] = {}
        self.done = False

    def take(self, frame: dict) -> None:
        kind, name = frame.get("t"), frame.get("stage")
        if kind == "start" and self.current is None and self.position < len(self.order):
            if name == self.order[self.position]:
                self.position += 1
                self.current, self.last, self.started = name, name, time.monotonic()
        elif kind == "end" and name is not None and name == self.current:
            error = str(frame.get("error", ""))
            self.stages[name] = {
                "status": "ok" if frame.get("ok") is True else "error",
                "error": error if not error or ERROR_NAME.fullmatch(error) else "an exception",
            }
            self.current = None
        elif kind == "result" and name == self.current and name.startswith("call:"):
            if isinstance(frame.get("value"), dict) and name not in self.results:
                self.results[name] = frame["value"]
        elif kind == "done" and self.current is None and self.position == len(self.order):
            self.done = True


def _kill(*pids: int | None) -> None:
    for pid in pids:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _start(job: dict, uid: int, skip: set[str]) -> tuple[int, int, int]:
    """Fork B (which forks C); returns (B's pid, C's progress pipe, B's control pipe)."""
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
                lock_down(uid, job["limits"], workdir)
                execute_stages(job, skip, progress_w)
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
    return b, progress_r, control_r


def _attempt(job: dict, uid: int, skip: set[str], deadline: float) -> tuple[Progress, str | None]:
    """One fork of B/C. Returns (what C reported, the stage that hung or crashed)."""
    limits = job["limits"]
    progress = Progress(stage_order(job, skip))
    b, progress_r, control_r = _start(job, uid, skip)
    readers = {progress_r: wire.FrameReader(), control_r: wire.FrameReader(limit=1 << 16)}
    c_pid, c_exited, failure = None, False, None
    try:
        while progress_r in readers or control_r in readers:
            current = progress.current
            limit = limits["call"] if (current or "").startswith("call:") else limits["cell"]
            until = min(deadline, progress.started + limit) if current else deadline
            ready, _, _ = select.select([0, *readers], [], [], max(0.0, until - time.monotonic()))
            if not ready:  # a limit passed: the whole namespace is killed below
                failure = current or "wall"
                if current:
                    progress.stages[current] = {"status": "timeout"}
                break
            if 0 in ready:  # the grader went away (or broke the protocol): stop at once
                _kill(None if c_exited else c_pid, b)
                os._exit(END_OF_INPUT)
            for fd in ready:
                data = os.read(fd, 65536)
                try:
                    frames = readers[fd].feed(data) if data else None
                except Exception:  # noqa: BLE001 - garbage on the pipe (deep nesting included)
                    frames = None
                if frames is None:
                    del readers[fd]
                    continue
                for frame in frames:
                    kind = frame.get("t")
                    if fd == progress_r:
                        progress.take(frame)
                    elif kind == "pid" and c_pid is None:
                        c_pid = int(frame["pid"])
                    elif kind == "exit":
                        c_exited = True
                    elif kind == "error":
                        raise SandboxUnavailable(
                            f"the sandbox could not start: {frame.get('error')}"
                        )
    finally:
        _kill(None if c_exited else c_pid, b)  # nothing of this attempt outlives it
        os.close(progress_r)
        os.close(control_r)
        os.waitpid(b, 0)
        _reap_orphans()
    if not progress.done and failure is None:  # C died (segfault, os._exit, kill) or lied
        failure = progress.last or "setup"
        progress.stages[failure] = {"status": "crashed"}
    return progress, failure


def _reap_orphans(patience: float = 10.0) -> None:
    """Reap any C that outlived its B: as a child subreaper this process inherits it, so it
    never lingers as a zombie of the student's user."""
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
    for _ in range(MAX_ATTEMPTS):
        progress, failure = _attempt(job, uid, skip, deadline)
        stages.update(progress.stages)
        results.update(progress.results)
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


def _read_job() -> dict | None:
    """One job line from fd 0 (unbuffered, so nothing of the next job is read); None at the end."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def _serve_one(uid: int) -> int:
    """In J: read one job, answer it on fd 1, return J's exit code."""
    isolation.libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    job = _read_job()
    if job is None:
        return END_OF_INPUT
    job["calls"] = wire.decode(job["calls"])
    try:
        reply = run_job(job, uid)
    except Exception as exc:  # noqa: BLE001 - report, the zygote serves the next job
        reply = {"error": f"{type(exc).__name__}: {exc}"}
    data = (json.dumps(reply) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]
    return SERVED


def serve(uid: int) -> None:
    """Preload the libraries, say ready, then fork one J per job until stdin ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401 - preloaded for the notebooks' setup cells
    import numpy  # noqa: F401
    import torch
    from IPython.core.inputtransformer2 import TransformerManager  # noqa: F401

    import course_utils.env  # noqa: F401

    torch.set_num_threads(1)
    isolation.libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    sys.stdout = sys.stderr
    while True:
        j = os.fork()
        if j == 0:
            code = END_OF_INPUT
            try:
                code = _serve_one(uid)
            finally:
                os._exit(code)
        _, status = os.waitpid(j, 0)
        _reap_orphans(patience=1.0)
        if os.waitstatus_to_exitcode(status) != SERVED:
            return


if __name__ == "__main__":
    serve(int(sys.argv[1]))
