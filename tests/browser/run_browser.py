"""The course as a student meets it in JupyterLab, in a real browser (Debian's Chromium, headless,
driven by Playwright): every notebook and the student release's 01, offline and in fast mode.

    python tests/browser/run_browser.py [--only 02 04] [--out build/browser]

For every notebook: Run All; no error output and no cell left unrun; in the instructor notebooks a
✅ line for every exercise; every explorer's controls each change its picture; then save, shut the
kernel down, reopen, and no "Error displaying widget". In the release's 01: ⏳ for every exercise,
then a wrong answer typed into the first exercise reads ❌ with its named mistake and the right
one ✅. ``make test-browser`` installs what this needs and runs it. One line per notebook, then
one JSON line; screenshots of a failing page go to ``--out``; the exit status is 1 on a failure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import nbformat  # noqa: E402
from lab import CHROMIUM_FLAGS, Lab, chromium  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from course_utils.checks import not_attempted_line  # noqa: E402
from course_utils.instructor import notebooks, release  # noqa: E402

RUN_TIMEOUT_MS = 900_000
WIDGET_ERROR = "Error displaying widget"
#: The exercise typed into the release (notebook 01's first), wrong and then right.
TYPED = ("convolve-full", ("w[t - a]", "w[k - 1 - (t - a)]"), "convolution flips the kernel")

KERNEL_READY = """() => {
  const w = window.jupyterapp?.shell.currentWidget;
  return Boolean(w?.context?.isReady && w.sessionContext?.session?.kernel?.status === 'idle');
}"""
#: 'dead', 'idle' (kernel idle, no cell running or queued, by the model and the prompts) or 'busy'
KERNEL_STATE = """() => {
  const w = jupyterapp.shell.currentWidget;
  const status = w.sessionContext.session?.kernel?.status;
  if (status === 'dead' || status === 'autorestarting') return 'dead';
  const running = w.content.widgets.some(c => c.model.type === 'code' && c.model.executionState === 'running');
  const prompts = [...w.content.node.querySelectorAll('.jp-InputPrompt')];
  return status === 'idle' && !running && !prompts.some(p => p.textContent.includes('*')) ? 'idle' : 'busy';
}"""
#: The SHA-256 of the picture an explorer cell shows, or null when it shows none (no image, or one
#: that is not a widget's non-empty blob)
PICTURE_HASH = """async cell => {
  const img = cell.querySelector('img');
  if (!img || !img.src.startsWith('blob:')) return null;
  const bytes = await (await fetch(img.src)).arrayBuffer();
  if (bytes.byteLength === 0) return null;
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
}"""
CONTROLS = "select, .widget-text input, .noUi-handle"


class Failed(Exception):
    """What the student would have seen go wrong."""


def open_notebook(page, lab: Lab, path: str) -> None:
    """Open ``path`` alone in a fresh workspace and wait for its kernel."""
    page.goto(lab.url(path) + "&reset")
    page.wait_for_function(KERNEL_READY, timeout=180_000)


def wait_idle(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the kernel is idle and no cell runs or waits, twice a second apart; a kernel
    that died fails at once."""
    deadline = time.monotonic() + timeout_ms / 1000
    for _ in range(2):
        while (state := page.evaluate(KERNEL_STATE)) != "idle":
            if state == "dead":
                raise Failed("the kernel died (out of memory, or a crash in native code)")
            if time.monotonic() > deadline:
                raise Failed(f"still running after {timeout_ms / 1000:.0f} s")
            time.sleep(0.5)
        time.sleep(1)


def notebook_json(page) -> dict:
    return page.evaluate("() => jupyterapp.shell.currentWidget.context.model.toJSON()")


def page_text(page) -> str:
    """The text of every output area, as shown (prose cells excluded)."""
    return page.evaluate(
        """() => [...jupyterapp.shell.currentWidget.content.node.querySelectorAll('.jp-OutputArea')]
                 .map(o => o.textContent).join('\\n')"""
    )


def run_all(page) -> dict:
    """Run All from the Run menu's command; the notebook as the browser holds it afterwards."""
    page.evaluate("() => { jupyterapp.commands.execute('notebook:run-all-cells'); }")
    time.sleep(2)
    wait_idle(page)
    nb = notebook_json(page)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        for output in cell["outputs"]:
            if output["output_type"] == "error":
                raise Failed(f"cell {i} raised {output['ename']}: {output['evalue'][:300]}")
        if cell["execution_count"] is None:
            raise Failed(f"Run All stopped before cell {i}")
    return nb


def wait_for_picture(cell, differs_from: str | None = None, timeout: float = 60) -> str:
    """The hash of the picture ``cell`` shows, once there is one (different from ``differs_from``)."""
    deadline = time.monotonic() + timeout
    while (now := cell.evaluate(PICTURE_HASH)) is None or now == differs_from:
        if time.monotonic() > deadline:
            raise Failed(
                "an explorer shows no picture" if now is None else "the picture did not change"
            )
        time.sleep(0.25)
    return now


def explore(page) -> dict[int, str]:
    """Change every control of every explorer; each change must change the picture. Returns each
    explorer cell's index and its last picture's hash."""
    last = {}
    for cell in page.locator(".jp-CodeCell").filter(has_text="Explorer.").all():
        picture = wait_for_picture(cell)
        cell.locator(CONTROLS).first.wait_for(timeout=60_000)
        controls = cell.locator(CONTROLS).all()
        for control in controls:
            tag = control.evaluate("e => e.tagName")
            if tag == "SELECT":
                options = control.locator("option").all_text_contents()
                current = control.input_value()
                control.select_option(options[-1] if current != options[-1] else options[0])
                what = f"menu {options}"
            elif tag == "INPUT":
                control.fill("0 1 0; 1 -4 1; 0 1 0")
                what = "typed kernel"
            else:
                control.focus()
                control.press("ArrowRight")
                what = f"slider now at {control.get_attribute('aria-valuenow')}"
            try:
                picture = wait_for_picture(cell, differs_from=picture)
            except Failed as exc:
                raise Failed(f"{exc} after the {what} changed") from None
        index = cell.evaluate(
            "c => [...c.closest('.jp-Notebook').querySelectorAll('.jp-Cell')].indexOf(c)"
        )
        last[index] = picture
    return last


def reopen(page, lab: Lab, path: str, pictures: dict[int, str]) -> str:
    """Save, shut the kernel down, open the notebook again; its outputs' text once the widget
    manager has settled (the text unchanged for 4 s; "model not found" comes seconds late). Each
    explorer must show the last picture it drew (``pictures``: cell index to hash)."""
    page.evaluate("() => jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !jupyterapp.shell.currentWidget.context.model.dirty")
    page.evaluate("() => jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    open_notebook(page, lab, path)
    deadline, text, since = time.monotonic() + 90, None, time.monotonic()
    while time.monotonic() < deadline:
        now = page_text(page)
        if now != text:
            text, since = now, time.monotonic()
        elif time.monotonic() - since > 4 and "Loading widget" not in text:
            break
        time.sleep(0.5)
    if WIDGET_ERROR in text:
        raise Failed(f"reopened, it shows {text.count(WIDGET_ERROR)} × '{WIDGET_ERROR}'")
    if "Loading widget" in text:
        raise Failed("reopened, a widget still says 'Loading widget...' after 90 s")
    cells = page.locator(".jp-Notebook .jp-Cell")
    for index, picture in pictures.items():
        if cells.nth(index).evaluate(PICTURE_HASH) != picture:
            raise Failed(f"reopened, the explorer in cell {index} does not show its last picture")
    return text


def type_answer(page, cell_index: int, check_index: int, source: str) -> str:
    """Type ``source`` into a cell as a student would, run it and its check; the check's output."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    editor = cells.nth(cell_index).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source)
    typed = page.evaluate(
        "i => jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.getSource()",
        cell_index,
    )
    if typed != source:
        raise Failed(f"the editor holds {typed!r} after typing {source!r}")
    if check_index != cell_index + 1:
        raise Failed(f"the check of cell {cell_index} is cell {check_index}, not the next one")
    page.keyboard.press("Shift+Enter")  # runs the exercise and selects the check below
    wait_idle(page, 120_000)
    page.keyboard.press("Shift+Enter")
    wait_idle(page, 120_000)
    return cells.nth(check_index).locator(".jp-OutputArea").text_content()


def check_instructor(page, lab: Lab, name: str) -> str:
    path = f"notebooks/{name}"
    open_notebook(page, lab, path)
    run_all(page)
    text = page_text(page)
    ids = [ex.id for ex in notebooks.exercises(nbformat.read(ROOT / path, as_version=4))]
    missing = [i for i in ids if f"✅ {i}" not in text]
    if missing or "❌" in text or WIDGET_ERROR in text:
        raise Failed(f"no ✅ for {missing}" if missing else f"'❌' or '{WIDGET_ERROR}' shown")
    pictures = explore(page)
    reopen(page, lab, path, pictures)
    return f"ok: {len(ids)} ✅" + (f", {len(pictures)} explorer(s) moved" if pictures else "")


def check_release(page, lab: Lab, name: str) -> str:
    path = f"release/notebooks/{name}"
    open_notebook(page, lab, path)
    nb = run_all(page)
    text = page_text(page)
    found = notebooks.exercises(nbformat.from_dict(nb))
    waiting = [ex.id for ex in found if not_attempted_line(ex.id) not in text]
    if waiting:
        raise Failed(f"no ⏳ line for {waiting}")
    ex_id, (right, wrong), cause = TYPED
    exercise = next(ex for ex in found if ex.id == ex_id)
    answer = notebooks.solved_exercise(ex_id)
    if right not in answer:
        raise Failed(f"the {ex_id} solution no longer contains {right!r}: update TYPED")
    said = type_answer(page, exercise.cell, exercise.check_cell, answer.replace(right, wrong))
    if f"❌ {ex_id}" not in said or cause not in said:
        raise Failed(f"a wrong {ex_id} read {said!r}, not ❌ naming '{cause}'")
    said = type_answer(page, exercise.cell, exercise.check_cell, answer)
    if f"✅ {ex_id}" not in said:
        raise Failed(f"the right {ex_id} read {said!r}")
    reopen(page, lab, path, {})
    return f"ok: {len(found)} ⏳, ❌ then ✅ typed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="notebook numbers, e.g. 02 04")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "browser")
    args = parser.parse_args()
    names = [p.name for p in notebooks.notebook_paths()]
    if args.only:
        names = [n for n in names if n[:2] in args.only]
    jobs = [(n, check_instructor) for n in names]
    jobs += [(n, check_release) for n in names if n.startswith("01")]
    if not jobs:
        sys.exit(f"--only {' '.join(args.only)} names no notebook")
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.png"):
        old.unlink()
    work = Path(tempfile.mkdtemp(prefix="course-browser-"))
    served = work / "served"
    shutil.copytree(ROOT / "notebooks", served / "notebooks")
    release.build_release(served / "release", repo_url="https://github.com/example-org/cnn-course")
    env = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1", "COURSE_CHECK_STRICT": "0",
           "COURSE_DATA_DIR": str(work / "data"), "MPLBACKEND": ""}  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))  # runs the finally
    rows, started, left, lab = {}, time.monotonic(), [], None
    try:
        lab = Lab(served, env, args.out / "jupyterlab.log")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name, check in jobs:
                label = ("release/" if check is check_release else "") + name
                t0 = time.monotonic()
                try:
                    status = check(page, lab, name)
                except Exception as exc:  # noqa: BLE001 (each notebook's failure is reported)
                    status = f"failed: {(str(exc) or type(exc).__name__).splitlines()[0]}"
                    status += screenshot(page, args.out / (label.replace("/", "_") + ".png"))
                finally:
                    lab.shut_kernels_down()
                rows[label] = {"status": status, "seconds": round(time.monotonic() - t0, 1)}
                print(f"{label:48s} {status:.300s} {rows[label]['seconds']:7.1f} s", flush=True)
            browser.close()
    finally:
        if lab is not None:
            left = lab.stop()
        shutil.rmtree(work, ignore_errors=True)
        if left:
            print(f"killed {len(left)} process(es) left running: {left}")
        failed = [k for k, v in rows.items() if not v["status"].startswith("ok")]
        print(json.dumps({"benchmark": "browser", "notebooks": rows, "passed": len(rows) - len(failed),
                          "runs": len(jobs), "seconds": round(time.monotonic() - started, 1)}))  # fmt: skip
    sys.exit(1 if failed or left or len(rows) != len(jobs) else 0)


def screenshot(page, path: Path) -> str:
    """Save what the page shows; the words to add to the failure's line."""
    try:
        page.screenshot(path=str(path))
    except Exception as exc:  # noqa: BLE001 (a crashed page cannot be photographed)
        return f" (no screenshot: {str(exc).splitlines()[0]})"
    return f" (screenshot {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})"


if __name__ == "__main__":
    main()
