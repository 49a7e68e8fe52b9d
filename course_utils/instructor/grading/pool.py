"""A pool of sandboxes (one zygote per parallel job), proven isolated by a start-up probe before
anyone is scored, that grades one submitted notebook at a time."""

from __future__ import annotations

import json
import os
import queue
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path

from course_utils.env import repo_root
from course_utils.instructor.grading import submission, wire
from course_utils.instructor.grading.collect import SourceNotebook
from course_utils.instructor.grading.hidden import HIDDEN_DIR
from course_utils.instructor.grading.results import NotebookResult
from course_utils.instructor.grading.sandbox import (
    FIRST_UID,
    Job,
    Limits,
    SandboxUnavailable,
    call_stage,
    preflight,
)
from course_utils.instructor.grading.score import hidden_calls, score

#: What the sandbox inherits of the grader's environment (an allow-list: the grader's tokens,
#: paths and course settings stay out, so its shell changes no grade).
PASSED_ON = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH")
#: How long past a job's wall limit the grader waits for its reply before it gives the zygote up.
REPLY_MARGIN = 30.0


class Zygote:
    """A sandbox server process; :meth:`run` sends it one job and waits for the result."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
        env.update(
            MPLBACKEND="Agg",
            OMP_NUM_THREADS="1",
            COURSE_THREADS="1",
            COURSE_OFFLINE="1",  # the sandbox has no network
            PYTHONUNBUFFERED="1",
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "course_utils.instructor.grading.zygote",
                str(FIRST_UID + slot),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        ready = self.process.stdout.readline()
        if json.loads(ready or "{}").get("ready") is not True:
            self.close()
            raise SandboxUnavailable(
                "the sandbox process did not start; run `python -m course_utils doctor`"
            )

    def run(self, job: Job) -> dict:
        """Run ``job``; returns ``{"stages": {...}, "results": {...}}`` or raises ``RuntimeError``."""
        message = {
            "setup": job.setup,
            "cells": job.cells,
            "helpers": job.helpers,
            "calls": wire.encode(job.calls),
            "limits": asdict(job.limits),
        }
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()
        wait = job.limits.wall + REPLY_MARGIN
        if not select.select([self.process.stdout], [], [], wait)[0]:
            self.kill()
            raise RuntimeError(f"the sandbox sent no reply within {wait:g} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process died")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def kill(self) -> None:
        """SIGKILL the zygote's process group (its B and C children with it)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Stop the zygote: end of input lets it finish and reap its children; SIGKILL if it hangs."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        self.process.stdout.close()


class Grader:
    """A pool of sandboxes; use as a context manager so no process outlives it."""

    def __init__(self, *, jobs: int = 2, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.jobs = max(1, jobs)
        self.pool: queue.Queue[Zygote] = queue.Queue()
        self.started: list[Zygote] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()  # set by kill(): no zygote is replaced after it

    def __enter__(self) -> Grader:
        preflight()
        try:
            for slot in range(self.jobs):
                zygote = Zygote(slot)
                self.started.append(zygote)
                probe(zygote, self.limits)
                self.pool.put(zygote)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self.lock:
            started = list(self.started)
        for zygote in started:
            zygote.close()

    def kill(self) -> None:
        """Stop every sandbox at once (an interrupted run): running jobs end with them."""
        with self.lock:
            self.stopped.set()
            started = list(self.started)
        for zygote in started:
            zygote.kill()

    def _replace(self, slot: int) -> Zygote:
        """A new zygote for a failed one's slot; killed at once if the run was stopped while it
        started, so none outlives an interrupted run."""
        zygote = Zygote(slot)
        with self.lock:
            self.started.append(zygote)
            stopped = self.stopped.is_set()
        if stopped:
            zygote.kill()
        return zygote

    def grade_file(self, student: str, path: Path, source: SourceNotebook) -> NotebookResult:
        """Grade one submitted notebook; never raises for anything the student did."""
        row = NotebookResult(student, source.name, 0.0, source.max_score, "graded")
        try:
            nb = submission.load(path)
        except submission.SubmissionError as exc:
            row.status, row.reason = "rejected", str(exc)
            return row
        submitted = submission.read_submitted(nb)
        calls, tests = hidden_calls(source)
        job = Job(
            source.setup,
            [(i, submitted.cells[i]) for i in source.exercise_ids if i in submitted.cells],
            calls,
            self.limits,
            submitted.helpers,
        )
        zygote = self.pool.get()
        try:
            reply = zygote.run(job)
        except RuntimeError as exc:  # the zygote itself failed: replace it, report, go on
            row.status, row.reason = "error", f"grader error ({exc}); grade this submission again"
            zygote.close()
            if not self.stopped.is_set():
                zygote = self._replace(zygote.slot)
            return row
        finally:
            self.pool.put(zygote)
        setup_stage = reply["stages"].get("setup", {})
        if setup_stage.get("status") != "ok":
            row.status = "error"
            row.reason = (
                f"the course setup cell did not run ({setup_stage.get('status', 'not reached')})"
            )
        if "wall" in reply["stages"]:
            row.reason = f"stopped at the {self.limits.wall:g} s limit for one submission"
        try:
            row.exercises = score(source, submitted, reply, calls, tests, self.limits)
        except Exception as exc:  # noqa: BLE001 - a reply nothing should produce: grade again
            row.status, row.reason = "error", f"grader error ({type(exc).__name__}); grade again"
            return row
        row.score = round(sum(e.score for e in row.exercises), 2)
        return row


#: What the start-up probe runs in the sandbox: it reports its user id, whether it reached the
#: grader's socket, which of the paths it was given it can see, and how many writes succeeded.
_PROBE = """
import os, socket
def probe():
    try:
        socket.create_connection(('127.0.0.1', PORT), timeout=1).close(); net = 1
    except OSError:
        net = 0
    seen = [int(os.path.exists(path)) for path in LOOKED_FOR]
    wrote = 0
    for path in WRITES:
        try:
            with open(path, 'w') as handle:
                handle.write('probe')
            wrote += 1
        except OSError:
            pass
    return [os.getuid(), net, wrote, *seen]
"""


def probe(zygote: Zygote, limits: Limits) -> None:
    """Prove the allow-list before anyone is scored: the sandbox runs as an unprivileged user,
    reaches no network, cannot see a file planted in the host's /tmp, in the course repository's
    ``build/executed/`` or the repository itself (any checkout of the course), nor the hidden
    tests; and what it writes to its own /tmp and /dev/shm is gone from the host afterwards."""
    token = secrets.token_hex(6)
    planted = [_plant(Path(tempfile.gettempdir()) / f"course-probe-{token}")]
    root = repo_root()
    if root is not None:
        planted.append(_plant(root / "build" / "executed" / f".course-probe-{token}"))
    looked_for = [*map(str, planted), str(HIDDEN_DIR / "__init__.py")]
    if root is not None:
        looked_for += [str(root / "pyproject.toml"), str(root / "notebooks")]
    writes = [f"/tmp/course-probe-{token}-written", f"/dev/shm/course-probe-{token}-written"]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0)
    setup = (
        _PROBE.replace("PORT", str(listener.getsockname()[1]))
        .replace("LOOKED_FOR", repr(looked_for))
        .replace("WRITES", repr(writes))
    )
    calls = [{"exercise": "probe", "name": "probe", "case": 0, "args": [], "kwargs": {}}]
    try:
        reply = zygote.run(Job(setup, [], calls, limits))
        value = reply["results"].get(call_stage(calls[0]))
        report = [int(v) for v in wire.decode(value)] if value else None
        try:
            listener.accept()
            report = report and [report[0], 1, *report[2:]]
        except BlockingIOError:
            pass
    except (RuntimeError, SandboxUnavailable) as exc:
        raise SandboxUnavailable(f"the sandbox failed its start-up check: {exc}") from None
    finally:
        listener.close()
        for path in planted:
            path.unlink(missing_ok=True)
    left = [path for path in writes if Path(path).exists()]
    if report is None:
        raise SandboxUnavailable("the sandbox failed its start-up check: it ran no code")
    uid, net, wrote, *seen = report
    visible = [path for path, flag in zip(looked_for, seen, strict=True) if flag]
    if uid == 0 or net or visible or not wrote or left:
        raise SandboxUnavailable(
            f"the sandbox failed its start-up check (uid {uid}, network reachable: {bool(net)}, "
            f"host paths visible: {visible or 'none'}, writes to its own /tmp: {wrote}, left on "
            f"the host: {left or 'none'}); grade as root on Linux"
        )


def _plant(path: Path) -> Path:
    """A world-readable file at ``path`` (its folders made world-readable too if new)."""
    missing = [p for p in path.parents if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in missing:
        folder.chmod(0o755)
    path.write_text("a file the sandbox must not see\n")
    path.chmod(0o644)
    return path
