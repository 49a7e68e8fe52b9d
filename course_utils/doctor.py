"""``python -m course_utils doctor``: what this machine has, and how to fix what it lacks."""

from __future__ import annotations

import importlib
import os
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from course_utils import __version__
from course_utils.env import (
    SWITCHES,
    check_settings,
    data_dir,
    in_colab,
    is_fast,
    is_offline,
    threads,
)


#: Hosts the real datasets and weights come from (torchvision's own download locations).
def download_hosts() -> tuple[str, ...]:
    """The hosts the notebooks download from, read from torchvision itself: MNIST's first
    mirror, CIFAR-10, Flowers-102 and the pretrained weights."""
    from urllib.parse import urlparse

    from torchvision import datasets, models

    urls = (
        datasets.MNIST.mirrors[0],
        datasets.CIFAR10.url,
        datasets.Flowers102._download_url_prefix,
        models.ResNet18_Weights.DEFAULT.url,
    )
    return tuple(dict.fromkeys(urlparse(url).hostname for url in urls))


@dataclass(frozen=True)
class Finding:
    """One line of the report; ``fix`` is set when something needs doing."""

    topic: str
    state: str
    fix: str = ""
    fatal: bool = False


def _python() -> Finding:
    return Finding("python", f"{platform.python_version()} ({sys.executable})")


def _package(name: str) -> tuple[object | None, str]:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # a broken install raises more than ImportError
        return None, f"{type(exc).__name__}: {exc}"
    return module, getattr(module, "__version__", "?")


def _torch() -> list[Finding]:
    torch, state = _package("torch")
    if torch is None:
        return [
            Finding(
                "torch",
                f"missing ({state})",
                "run `make install` (or `pip install -e .`)",
                fatal=True,
            )
        ]
    found = [Finding("torch", state)]
    tv, tv_state = _package("torchvision")
    if tv is None:
        found.append(
            Finding("torchvision", f"missing ({tv_state})", "run `make install`", fatal=True)
        )
    else:
        try:
            box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
            tv.ops.nms(box, torch.tensor([1.0]), 0.5)
            found.append(Finding("torchvision", tv_state))
        except Exception as exc:  # the symptom of a torch/torchvision version mismatch
            found.append(
                Finding(
                    "torchvision",
                    f"{tv_state}, does not work with torch {state} ({type(exc).__name__})",
                    "install the pair pinned in requirements/constraints.txt: `make install`",
                    fatal=True,
                )
            )
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        major, minor = torch.cuda.get_device_capability(0)
        from course_utils.train import describe_precision

        precision = describe_precision(torch.device("cuda", 0))
        found.append(
            Finding("device", f"cuda: {name} (compute capability {major}.{minor}, {precision})")
        )
    else:
        fix = "Colab: Runtime > Change runtime type > GPU" if in_colab() else ""
        found.append(
            Finding(
                "device",
                f"cpu ({os.cpu_count()} cores); notebook 08 trains a quarter-width AlexNet"
                " for fewer epochs than on a GPU",
                fix,
            )
        )
    return found


def _flags() -> Finding:
    names = (*SWITCHES, "COURSE_DATA_DIR", "COURSE_THREADS", "COURSE_PRECISION")
    shown = ", ".join(f"{n}={os.environ[n]}" for n in names if n in os.environ) or "none set"
    try:
        check_settings()
    except ValueError as exc:  # setup() in every notebook would stop on it
        return Finding("flags", shown, str(exc), fatal=True)
    cpu = f"{threads()} CPU threads"
    mode = f"{'fast' if is_fast() else 'full'} mode, {'offline' if is_offline() else 'online'}"
    return Finding("flags", f"{shown} ({mode}, {cpu})")


def _data_cache() -> Finding:
    path = data_dir()
    if not path.exists():
        parent = path.parent
        if os.access(parent, os.W_OK):
            return Finding("data cache", f"{path} (not created yet; made on first download)")
        return Finding(
            "data cache", f"{path} cannot be created", "set COURSE_DATA_DIR to a writable folder"
        )
    if not path.is_dir():
        return Finding(
            "data cache",
            f"{path} exists but is not a folder",
            "move that file away or set COURSE_DATA_DIR",
        )
    if not os.access(path, os.W_OK):
        return Finding(
            "data cache", f"{path} is not writable", "set COURSE_DATA_DIR to a writable folder"
        )
    sizes = {p.name: _bytes(p) for p in sorted(path.iterdir()) if p.name != "README.md"}
    held = ", ".join(
        name if size else f"{name} (empty: a download that failed)" for name, size in sizes.items()
    )
    return Finding(
        "data cache",
        f"{path}: {held or 'nothing downloaded yet'} ({sum(sizes.values()) / 1e6:.1f} MB)",
    )


def _bytes(path: Path) -> int:
    """Size of a file, or of every file under a folder."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files)


def _network(timeout: float = 3.0) -> Finding:
    try:
        offline = is_offline()
    except ValueError:  # a misspelt COURSE_OFFLINE: reported under flags; check the network anyway
        offline = False
    if offline:
        return Finding("network", "not checked (COURSE_OFFLINE=1): stand-in datasets will be used")
    try:
        hosts = download_hosts()
    except Exception as exc:  # noqa: BLE001 - a broken torchvision is reported under torchvision
        return Finding("network", f"not checked: torchvision cannot be read ({type(exc).__name__})")
    reachable = []
    for host in hosts:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            reachable.append(host)
        except OSError:
            pass
    if len(reachable) == len(hosts):
        return Finding("network", "dataset and weight hosts reachable")
    missing = ", ".join(h for h in hosts if h not in reachable)
    return Finding(
        "network",
        f"cannot reach {missing}: notebooks will use the offline stand-ins",
        "connect to the internet for the real datasets, or set COURSE_OFFLINE=1 to skip the attempts",
    )


def _jupyter_kernel() -> Finding:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec("python3")
    except Exception as exc:  # missing package or missing kernelspec
        return Finding("jupyter kernel", f"python3 kernel not found ({exc})", "run `make install`")
    return Finding("jupyter kernel", f"python3 -> {spec.argv[0]}")


def diagnose() -> list[Finding]:
    """Every check, in the order they are printed."""
    return [
        _python(),
        Finding("course_utils", f"{__version__} ({os.path.dirname(__file__)})"),
        *_torch(),
        _jupyter_kernel(),
        _flags(),
        _data_cache(),
        _network(),
    ]


def report() -> int:
    """Print the findings; return 1 if any is fatal, else 0."""
    findings = diagnose()
    width = max(len(f.topic) for f in findings)
    for f in findings:
        mark = "✗" if f.fatal else ("!" if f.fix else "✓")
        print(f"{mark} {f.topic:<{width}}  {f.state}")
        if f.fix:
            print(f"  {'':<{width}}  fix: {f.fix}")
    problems = [f for f in findings if f.fatal]
    print(
        f"{len(problems)} problem(s) need fixing" if problems else "everything needed is in place"
    )
    return 1 if problems else 0
