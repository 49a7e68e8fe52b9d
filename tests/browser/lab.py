"""A JupyterLab server on 127.0.0.1 and a headless Chromium page on it, for the browser test.

The server runs from this Python's environment with settings, workspace and runtime folders of its
own (the user's JupyterLab settings and open tabs are neither read nor changed); ``stop`` ends it
and its kernels, and names any process of theirs that outlived it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: Flags without which Chromium keeps trying hosts an offline machine refuses, as root needs
#: --no-sandbox; the profile is a fresh folder per run.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

#: JupyterLab's own settings for the run: no news or update checks (offline), and every cell
#: drawn at once (by default cells off screen are drawn when the browser is idle, and a test that
#: reads outputs must not miss one). The course's widget-state setting comes from the environment
#: (``overrides.d``), as a student's JupyterLab gets it.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def chromium() -> str:
    """The path of Debian's Chromium (``make test-browser`` installs it when missing)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        sys.exit(
            "Chromium is not installed: `apt-get install -y chromium` (make test-browser does)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """``Lab(root, env)``: JupyterLab serving ``root``; ``url(path)`` opens a file in it."""

    def __init__(self, root: Path, env: dict[str, str], log: Path):
        self.root, self.token, self.port = root, secrets.token_hex(16), _free_port()
        state = root.parent / "lab-state"
        for name, settings in USER_SETTINGS.items():
            (state / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
            (state / "settings" / name).write_text(json.dumps(settings))
        self.runtime = state / "runtime"
        env = {
            **os.environ, **env,
            "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(self.runtime),
        }  # fmt: skip
        command = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
            f"--port={self.port}", f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ]  # fmt: skip
        self.log = log.open("w")
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise

    def _wait_until_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with {self.process.returncode}: see {self.log.name}"
                )
            try:
                with urllib.request.urlopen(self.api("status"), timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer in {timeout:.0f} s: see {self.log.name}")

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/api/{path}?token={self.token}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{path}?token={self.token}"

    def shut_kernels_down(self) -> None:
        """End every kernel the server runs (one notebook's kernel must not slow the next)."""
        try:
            with urllib.request.urlopen(self.api("sessions"), timeout=10) as answer:
                sessions = json.load(answer)
            for session in sessions:
                request = urllib.request.Request(
                    self.api(f"sessions/{session['id']}"), method="DELETE"
                )
                urllib.request.urlopen(request, timeout=30).close()
        except OSError:
            pass  # a server that is gone has no kernels left; stop() finds any stray process

    def stop(self) -> list[str]:
        """Shut the server down (it shuts its kernels down); kill what is left. Returns the
        command lines of processes that had to be killed."""
        try:
            request = urllib.request.Request(self.api("shutdown"), method="POST")
            urllib.request.urlopen(request, timeout=10).close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if not self.log.closed:
            self.log.close()
        return kill_processes_naming(str(self.runtime))


def kill_processes_naming(text: str) -> list[str]:
    """Kill every process whose command line contains ``text`` (kernels name their connection
    file in the run's runtime folder); return their command lines."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(cmdline.strip())
            except OSError:
                pass
    return killed
