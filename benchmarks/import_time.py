"""Time of `import course_utils` in a fresh interpreter, and whether it pulled in torch.

Prints one JSON line: median and best of several runs, in seconds.
"""

import json
import statistics
import subprocess
import sys

CODE = (
    "import sys, time; t = time.perf_counter(); import course_utils; "
    "print(time.perf_counter() - t, 'torch' in sys.modules)"
)


def main(runs: int = 7) -> None:
    times, torch_loaded = [], False
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
        ).stdout
        seconds, loaded = out.split()
        times.append(float(seconds))
        torch_loaded |= loaded == "True"
    print(
        json.dumps(
            {
                "benchmark": "import_time",
                "runs": runs,
                "median_s": round(statistics.median(times), 4),
                "best_s": round(min(times), 4),
                "goal_s": 0.2,
                "torch_imported": torch_loaded,
            }
        )
    )


if __name__ == "__main__":
    main()
