"""``python -m course_utils run``: execute the notebooks headless and report each one.

A notebook reports its headline result with :func:`headline`; the runner finds that line
in the executed notebook's outputs and shows it in the table.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from course_utils import HEADLINE_PREFIX
from course_utils.instructor import notebooks


@dataclass(frozen=True)
class RunResult:
    """How one notebook run went."""

    notebook: str
    status: str
    seconds: float
    headline: str


def find_headline(nb) -> str:
    """The last headline printed anywhere in an executed notebook's stream outputs."""
    found = ""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                for line in output.get("text", "").splitlines():
                    if line.startswith(HEADLINE_PREFIX):
                        found = line[len(HEADLINE_PREFIX) :]
    return found


def run_notebook(path: Path, out_dir: Path, *, cell_timeout: int) -> RunResult:
    """Execute ``path`` in a fresh ``python3`` kernel (working directory: its folder); write it
    to ``out_dir``."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets.config import Config

    start = time.perf_counter()
    try:
        nb = notebooks.read(path)
    except ValueError as exc:
        return RunResult(path.name, "unreadable", 0.0, str(exc))
    with tempfile.TemporaryDirectory() as sockets:
        # IPC: the kernel's sockets are files in a private folder, not ports on localhost
        # (ipykernel warns about unencrypted TCP). Windows has no IPC transport.
        ipc = {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}
        client = NotebookClient(
            nb,
            config=Config(KernelManager=ipc if os.name == "posix" else {}),
            timeout=cell_timeout,
            kernel_name="python3",  # this Python's, whatever kernel the notebook was saved with
            resources={"metadata": {"path": str(path.parent)}},
            # the kernel's process group is killed once the last cell has run, as nbval does: a
            # graceful stop waits 1-2.5 s per notebook for torch's interpreter to tear down
            shutdown_kernel="immediate",
        )
        # No stand-in for ipywidgets' Output widget: nbclient's sends a message on the kernel's
        # shell socket for each output shown inside one, while it awaits the cell's reply on that
        # socket, which can lose the reply and hang the run until the cell timeout (nbclient issue
        # 312; seen with notebook 02's kernel explorer). Without it, what a widget shows is kept
        # as the cell's output.
        client.widget_registry = {}
        try:
            client.execute()
            status, line = "ok", find_headline(nb)
        except CellTimeoutError:
            status, line = "timeout", f"a cell ran longer than {cell_timeout} s"
        except (CellExecutionError, DeadKernelError) as exc:
            status, line = "failed", last_line(str(exc))
    out_dir.mkdir(parents=True, exist_ok=True)
    import nbformat

    nbformat.write(nb, out_dir / path.name)
    return RunResult(path.name, status, time.perf_counter() - start, line)


def last_line(message: str) -> str:
    """The last non-blank line of ``message``, stripped ("error" when there is none)."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "error"


def format_table(results: list[RunResult]) -> str:
    """A plain-text table: notebook, status, seconds, headline."""
    width = max([len("notebook")] + [len(r.notebook) for r in results])
    lines = [f"{'notebook':<{width}}  {'status':<8} {'seconds':>8}  headline"]
    for r in results:
        lines.append(f"{r.notebook:<{width}}  {r.status:<8} {r.seconds:>8.1f}  {r.headline}")
    return "\n".join(lines)


def run_all(
    paths: list[Path],
    out_dir: Path,
    *,
    cell_timeout: int = 1200,
    fast: bool = False,
    offline: bool = False,
) -> list[RunResult]:
    """Run ``paths`` in order, printing a table row as each finishes; return the results."""
    if fast:
        os.environ["COURSE_FAST"] = "1"
    if offline:
        os.environ["COURSE_OFFLINE"] = "1"
    results = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        results.append(run_notebook(path, out_dir, cell_timeout=cell_timeout))
    return results
