"""The whole course on one GPU: every notebook in default mode, offline, in order, each in a fresh
Python process, then notebooks 06 and 08 again on the older GPUs' precision path
(``COURSE_PRECISION=fp16``: fp16 autocast with a gradient scaler, as on Colab's T4).

    python benchmarks/gpu_course.py [--only 06 08] [--fp16 06 08] [--timeout 900] [--tiny]

Prints one JSON line per run (notebook, precision, status, seconds, headline, peak GPU memory,
the largest training run's accuracy and images/s), then a summary line with all of them.
``--tiny`` runs in the test suite's configuration (``COURSE_FAST=1``) on whatever device is
there, so that the script is exercised on a CPU.

How a notebook runs: its code cells are executed in order as one plain script, in one namespace,
with matplotlib drawing to Agg; a run's output goes to ``--log-dir``. The lent GPU machine has
torch but no Jupyter kernel and no network, so this needs no nbclient, ipykernel or ZMQ (binary
wheels for a Python we cannot see in advance). The notebooks need no kernel: none uses a magic
or ``display`` of its own, the package's widgets fall back to text, and the public checks read
the namespace the cells share. What a kernel adds (rich output, widgets) is not exercised here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Modules the notebooks import; a machine without one is told how to bring it.
NEEDED = ("numpy", "torch", "torchvision", "matplotlib", "sklearn", "tqdm", "ipywidgets", "PIL")


def code_cells(notebook: Path) -> list[str]:
    """The source of each code cell of ``notebook``, in order (read as JSON: no nbformat)."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in cells
        if c["cell_type"] == "code"
    ]
    for number, source in enumerate(sources):
        if any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
            raise ValueError(
                f"{notebook.name} code cell {number} uses an IPython magic or shell "
                "line, which a plain script cannot run"
            )
    return sources


class _Tee:
    """Write to a log file and keep the lines that start with the headline prefix."""

    def __init__(self, log, prefix: str) -> None:
        self.log, self.prefix, self.headline, self._line = log, prefix, "", ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self._line += text
        *done, self._line = self._line.split("\n")
        for line in done:
            if line.startswith(self.prefix):
                self.headline = line[len(self.prefix) :]
        return len(text)

    def flush(self) -> None:
        self.log.flush()


def _record_training_runs(runs: list[dict]) -> None:
    """Wrap ``course_utils.train.fit`` so that each call appends its images, epochs, seconds
    and accuracies to ``runs`` (before any notebook imports it)."""
    from course_utils import train

    fit = train.fit

    def recorded_fit(model, data, *args, **kwargs):
        history = fit(model, data, *args, **kwargs)
        images = len(getattr(data, "y", getattr(data, "dataset", ())))
        seconds = sum(history["seconds"])
        runs.append(
            {
                "epochs": len(history),
                "images": images,
                "seconds": round(seconds, 2),
                "train_acc": history.last.get("train_acc"),
                "val_acc": history.last.get("val_acc"),
                "images_per_s": round(images * len(history) / seconds)
                if images and seconds
                else None,
            }
        )
        return history

    train.fit = recorded_fit


def run_one(notebook: Path, report: Path, log: Path) -> None:
    """Execute ``notebook``'s code cells in this process; write what happened to ``report``."""
    sys.path.insert(0, str(ROOT))  # the working tree, installed or not
    os.chdir(notebook.parent)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from course_utils import HEADLINE_PREFIX
    from course_utils.train import describe_precision

    try:
        sources = code_cells(notebook)
    except (ValueError, KeyError) as exc:  # KeyError: JSON that is not a notebook
        report.write_text(json.dumps({"status": "unrunnable", "error": str(exc)}))
        return
    runs: list[dict] = []
    _record_training_runs(runs)
    result = {"status": "ok", "cells": 0}
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        tee = _Tee(handle, HEADLINE_PREFIX)
        namespace = {"__name__": "__main__"}
        with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(handle):
            for number, source in enumerate(sources):
                print(f"\n# ---- code cell {number}", flush=True)
                try:
                    exec(compile(source, f"{notebook.name} code cell {number}", "exec"), namespace)
                except BaseException as exc:  # reported, whatever it is; the run stops here
                    traceback.print_exc()
                    last = (str(exc).strip().splitlines() or [""])[-1]
                    result = {
                        "status": "failed",
                        "cells": number,
                        "error": f"code cell {number}: {type(exc).__name__}: {last}",
                    }
                    break
                finally:
                    plt.close("all")
                result["cells"] = number + 1
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    result |= {
        "seconds": round(time.perf_counter() - start, 1),
        "headline": tee.headline,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "precision": describe_precision(device),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
        "training_runs": len(runs),
        "largest_training_run": max(runs, key=lambda r: r["images"] * r["epochs"], default=None),
    }
    report.write_text(json.dumps(result))


def missing_modules() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def bring_missing(wheelhouse: Path) -> list[str]:
    """Install what is missing from ``wheelhouse`` (no index) if it exists; what is still missing."""
    missing = missing_modules()
    if missing and wheelhouse.is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                *(
                    "scikit-learn" if m == "sklearn" else "pillow" if m == "PIL" else m
                    for m in missing
                ),
            ],
            check=False,
        )
        importlib.invalidate_caches()
        missing = missing_modules()
    return missing


def plan(only: list[str] | None, fp16: list[str] | None) -> list[tuple[Path, str]]:
    """(notebook, COURSE_PRECISION) for each run, in course order, the fp16 runs last: ``only``
    (default: all) at the default precision, ``fp16`` (default: 06 and 08 where ``only`` has
    them) with fp16."""
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    chosen = [p for p in notebooks if not only or p.name[:2] in only]
    unknown = (set(only or ()) | set(fp16 or ())) - {p.name[:2] for p in notebooks}
    if unknown:
        raise SystemExit(
            f"no notebook numbered {', '.join(sorted(unknown))}; the course has "
            f"{', '.join(p.name[:2] for p in notebooks)}"
        )
    if fp16 is None:
        fp16 = [p.name[:2] for p in chosen if p.name[:2] in ("06", "08")]
    return [(p, "auto") for p in chosen] + [(p, "fp16") for p in notebooks if p.name[:2] in fp16]


def run_all(args: argparse.Namespace) -> dict:
    """Each planned run in a child process; one JSON line each; the summary."""
    args.log_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for notebook, precision in plan(args.only, args.fp16):
        stem = f"{notebook.stem}.{precision}"
        report, log = args.log_dir / f"{stem}.json", args.log_dir / f"{stem}.log"
        report.unlink(missing_ok=True)
        env = dict(
            os.environ,
            COURSE_OFFLINE="1",
            COURSE_PRECISION=precision,
            MPLBACKEND="Agg",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        env["COURSE_FAST"] = "1" if args.tiny else "0"
        start = time.perf_counter()
        try:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(notebook),
                    "--report",
                    str(report),
                    "--log",
                    str(log),
                ],
                env=env,
                timeout=args.timeout,
                check=False,
            )
            row = (
                json.loads(report.read_text())
                if report.is_file()
                else {
                    "status": "crashed",
                    "error": f"the process ended without a report; see {log}",
                }
            )
        except subprocess.TimeoutExpired:
            row = {"status": "timeout", "error": f"ran longer than {args.timeout} s; see {log}"}
        row = {
            "notebook": notebook.name,
            "course_precision": precision,
            "wall_s": round(time.perf_counter() - start, 1),
        } | row
        print(json.dumps(row), flush=True)
        rows.append(row)
    default = [r for r in rows if r["course_precision"] == "auto"]
    return {
        "benchmark": "gpu_course",
        "mode": "tiny (COURSE_FAST=1)" if args.tiny else "default",
        "passed": sum(r["status"] == "ok" for r in rows),
        "runs": len(rows),
        "course_seconds": round(sum(r["wall_s"] for r in default), 1),
        "goal": "every run ok; the course (default precision) <= 300 s on an H100-class GPU",
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NN", help="only these notebooks")
    parser.add_argument(
        "--fp16",
        nargs="*",
        default=None,
        metavar="NN",
        help="run these with COURSE_PRECISION=fp16 too, named in --only or not "
        "(default: 06 and 08, where --only leaves them in)",
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per notebook")
    parser.add_argument("--tiny", action="store_true", help="COURSE_FAST=1, for a CPU")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build" / "gpu_course")
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=ROOT / "build" / "wheelhouse",
        help="wheels to install missing modules from, without an index",
    )
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one.resolve(), args.report.resolve(), args.log.resolve())
        return
    missing = bring_missing(args.wheelhouse)
    if missing:
        print(
            json.dumps(
                {
                    "benchmark": "gpu_course",
                    "missing": missing,
                    "fix": "on a machine with the registry: pip download --only-binary=:all: "
                    "--python-version X.Y --platform manylinux2014_x86_64 -d build/wheelhouse "
                    "<the missing packages>, then carry build/wheelhouse (64 MiB at most)",
                }
            )
        )
        raise SystemExit(2)
    print(json.dumps(run_all(args)))


if __name__ == "__main__":
    main()
