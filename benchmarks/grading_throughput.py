"""Grade N submissions of notebook 01 (correct, wrong, unattempted and hostile) with --jobs J.

Prints one JSON line: wall time for the batch, submissions per second, the mix, and the peak
resident memory of the grader process and of its largest sandbox process. Needs root (the sandbox).

    python benchmarks/grading_throughput.py [--n 200] [--jobs 2]
"""

import argparse
import json
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat

from course_utils.instructor import notebooks
from course_utils.instructor.grading.grade import grade_folder
from course_utils.instructor.release import release_notebook

HOSTILE = {
    "loop": "def convolve(x, w):\n    while True:\n        pass\n",
    "os_exit": "import os\nos._exit(1)\n",
    "memory_bomb": "import numpy as np\ndef convolve(x, w):\n    return np.ones(50 * 2**30 // 8)\n",
    "fork_storm": "import os, time\nfor _ in range(200):\n    if os.fork() == 0:\n        time.sleep(60)\n",
    "patch_numpy": "import numpy as np\nnp.allclose = lambda *a, **k: True\ndef convolve(x, w):\n    return 0 * x\n",
    "copy_solutions": (  # looks for any solution notebook on the machine (build/executed/, ...)
        "import os, json\ndef convolve(x, w):\n    for parent, dirs, files in os.walk('/'):\n"
        "        for f in files:\n            if f.endswith('.ipynb'):\n"
        "                return np.zeros(1)\n    return 0 * x\n"
    ),
    "write_host": (
        "def convolve(x, w):\n    for folder in ('/tmp', '/dev/shm', '/var/tmp'):\n"
        "        try:\n            open(folder + '/left-behind', 'w').write('x')\n"
        "        except OSError:\n            pass\n    return 0 * x\n"
    ),
}


def _variant(source, kind: str):
    nb = nbformat.from_dict(source)
    if kind == "unattempted":
        return release_notebook(
            nb, repo_url="https://github.com/o/r", branch="main", name="01.ipynb"
        )
    cell = next(c for c in nb.cells if notebooks.exercise_id(c) == "convolve-full")
    if kind == "wrong":
        cell.source = "# EXERCISE: convolve-full\ndef convolve(x, w):\n    return np.correlate(x, w, 'full')\n"
    elif kind in HOSTILE:
        cell.source = "# EXERCISE: convolve-full\n" + HOSTILE[kind]
    return nb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    path = notebooks.notebook_paths()[0]
    source = notebooks.read(path)
    kinds = ["correct"] * 10 + ["wrong"] * 5 + ["unattempted"] * 3 + list(HOSTILE)
    mix = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        for i in range(args.n):
            kind = kinds[i % len(kinds)]
            mix[kind] += 1
            folder = subs / f"student{i:03d}"
            folder.mkdir(parents=True)
            nbformat.write(_variant(source, kind), folder / path.name)
        start = time.perf_counter()
        rows = grade_folder(subs, Path(tmp) / "out", jobs=args.jobs)
        seconds = time.perf_counter() - start
    kb = 1024
    print(
        json.dumps(
            {
                "benchmark": "grading_throughput",
                "submissions": len(rows),
                "jobs": args.jobs,
                "seconds": round(seconds, 1),
                "per_second": round(len(rows) / seconds, 2),
                "goal_seconds": 180,
                "mix": dict(mix),
                "statuses": dict(Counter(r.status for r in rows)),
                "grader_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kb, 1
                ),
                "largest_sandbox_peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kb, 1
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
