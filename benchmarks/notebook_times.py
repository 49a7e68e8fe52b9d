"""Wall time of each notebook executed headless, in fast mode (as under the test suite) and,
with --full, in default mode. Prints one JSON line.

    python benchmarks/notebook_times.py [--full] [--only 01 02]
"""

import argparse
import json
import tempfile
from pathlib import Path

from course_utils.instructor import notebooks, runner


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="default mode instead of COURSE_FAST=1")
    parser.add_argument("--only", nargs="+", default=None)
    args = parser.parse_args()
    paths = [p for p in notebooks.notebook_paths() if not args.only or p.name[:2] in args.only]
    with tempfile.TemporaryDirectory() as out:
        results = runner.run_all(paths, Path(out), fast=not args.full, offline=True)
    print(
        json.dumps(
            {
                "benchmark": "notebook_times",
                "mode": "full" if args.full else "fast",
                "seconds": {r.notebook: round(r.seconds, 1) for r in results},
                "status": {r.notebook: r.status for r in results},
            }
        )
    )


if __name__ == "__main__":
    main()
