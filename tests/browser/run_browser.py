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
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import nbformat  # noqa: E402
from lab import CHROMIUM_FLAGS, Lab, chromium  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from course_utils.instructor import notebooks, release  # noqa: E402

RUN_TIMEOUT_MS = 900_000
WIDGET_ERROR = "Error displaying widget"
#: The exercise typed into the release (notebook 01's first), wrong and then right.
TYPED = ("convolve-full", ("w[t - a]", "w[k - 1 - (t - a)]"), "convolution flips the kernel")

KERNEL_READY = """() => {
  const w = window.jupyterapp?.shell.currentWidget;
  return Boolean(w?.context?.isReady && w.sessionContext?.session?.kernel?.status === 'idle');
}"""
IDLE = """() => {
  const w = jupyterapp.shell.currentWidget;
  const prompts = [...w.content.node.querySelectorAll('.jp-InputPrompt')];
  return w.sessionContext.session?.kernel?.status === 'idle'
    && !prompts.some(p => p.textContent.includes('*'));
}"""
PICTURE_HASH = """async cell => {
  const img = cell.querySelector('img');
  if (!img) return null;
  const bytes = await (await fetch(img.src)).arrayBuffer();
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
}"""


class Failed(Exception):
    """What the student would have seen go wrong."""


def open_notebook(page, lab: Lab, path: str) -> None:
    """Open ``path`` alone in a fresh workspace and wait for its kernel."""
    page.goto(lab.url(path) + "&reset")
    page.wait_for_function(KERNEL_READY, timeout=180_000)


def wait_idle(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the kernel is idle and no cell is queued; twice, a second apart."""
    for _ in range(2):
        page.wait_for_function(IDLE, timeout=timeout_ms, polling=500)
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


def explore(page) -> int:
    """Change every control of every explorer; each change must change the picture. Returns the
    number of controls changed."""
    changed = 0
    for cell in page.locator(".jp-CodeCell").filter(has_text="Explorer.").all():
        controls = cell.locator("select, .widget-text input, .noUi-handle").all()
        if not controls:
            raise Failed("an explorer shows no controls")
        for control in controls:
            before = cell.evaluate(PICTURE_HASH)
            if before is None:
                raise Failed("an explorer shows no picture")
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
                what = f"slider {control.get_attribute('aria-valuenow')}"
            deadline = time.monotonic() + 60
            while cell.evaluate(PICTURE_HASH) == before:
                if time.monotonic() > deadline:
                    raise Failed(f"the picture did not change after the {what} changed")
                time.sleep(0.25)
            changed += 1
    return changed


def reopen(page, lab: Lab, path: str) -> str:
    """Save, shut the kernel down, open the notebook again; its outputs' text once the widget
    manager has settled (the text unchanged for 4 s; "model not found" comes seconds late)."""
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
    for cell in page.locator(".jp-CodeCell").filter(has_text="Explorer.").all():
        if cell.evaluate(PICTURE_HASH) is None:
            raise Failed("reopened, an explorer shows no picture")
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
    controls = explore(page)
    reopen(page, lab, path)
    return f"ok: {len(ids)} ✅" + (f", {controls} explorer controls" if controls else "")


def check_release(page, lab: Lab, name: str) -> str:
    path = f"release/notebooks/{name}"
    open_notebook(page, lab, path)
    nb = run_all(page)
    text = page_text(page)
    found = notebooks.exercises(nbformat.from_dict(nb))
    waiting = [ex.id for ex in found if f"⏳ {ex.id}: not attempted yet" not in text]
    if waiting:
        raise Failed(f"no ⏳ line for {waiting}")
    ex_id, (right, wrong), cause = TYPED
    exercise = next(ex for ex in found if ex.id == ex_id)
    answer = notebooks.solved_exercise(ex_id)
    said = type_answer(page, exercise.cell, exercise.check_cell, answer.replace(right, wrong))
    if f"❌ {ex_id}" not in said or cause not in said:
        raise Failed(f"a wrong {ex_id} read {said!r}, not ❌ naming '{cause}'")
    said = type_answer(page, exercise.cell, exercise.check_cell, answer)
    if f"✅ {ex_id}" not in said:
        raise Failed(f"the right {ex_id} read {said!r}")
    reopen(page, lab, path)
    return f"ok: {len(found)} ⏳, ❌ then ✅ typed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="notebook numbers, e.g. 02 04")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "browser")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.png"):
        old.unlink()
    work = Path(tempfile.mkdtemp(prefix="course-browser-"))
    served = work / "served"
    shutil.copytree(ROOT / "notebooks", served / "notebooks")
    release.build_release(served / "release", repo_url="https://github.com/example-org/cnn-course")
    names = [p.name for p in notebooks.notebook_paths()]
    if args.only:
        names = [n for n in names if n[:2] in args.only]
    jobs = [(n, check_instructor) for n in names]
    jobs += [(n, check_release) for n in names if n.startswith("01")]
    env = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1", "COURSE_CHECK_STRICT": "0",
           "COURSE_DATA_DIR": str(work / "data"), "MPLBACKEND": ""}  # fmt: skip
    rows, started = {}, time.monotonic()
    lab = Lab(served, env, args.out / "jupyterlab.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name, check in jobs:
                label = ("release/" if check is check_release else "") + name
                t0 = time.monotonic()
                try:
                    status = check(page, lab, name)
                except (Failed, PlaywrightError) as exc:
                    status = f"failed: {str(exc).splitlines()[0]}"
                    shot = args.out / (label.replace("/", "_") + ".png")
                    page.screenshot(path=str(shot))
                    status += f" (screenshot {shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot})"
                rows[label] = {"status": status, "seconds": round(time.monotonic() - t0, 1)}
                print(f"{label:48s} {status:.300s} {rows[label]['seconds']:7.1f} s", flush=True)
            browser.close()
    finally:
        left = lab.stop()
        shutil.rmtree(work, ignore_errors=True)
    if left:
        print(f"killed {len(left)} process(es) left running: {left}")
    failed = [k for k, v in rows.items() if not v["status"].startswith("ok")]
    print(json.dumps({"benchmark": "browser", "notebooks": rows, "passed": len(rows) - len(failed),
                      "runs": len(rows), "seconds": round(time.monotonic() - started, 1)}))  # fmt: skip
    sys.exit(1 if failed or left or len(rows) != len(jobs) else 0)


if __name__ == "__main__":
    main()
