"""The course CLI: ``python -m course_utils run | doctor | readme | strip``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_run(args: argparse.Namespace) -> int:
    from course_utils import notebooks, runner
    from course_utils.env import is_offline

    paths = notebooks.notebook_paths(args.notebooks_dir)
    if args.only:
        paths = [p for p in paths if p.name[:2] in args.only or p.stem in args.only]
    if not paths:
        print(
            f"no notebooks matched in {args.notebooks_dir or notebooks.notebooks_dir()}",
            file=sys.stderr,
        )
        return 2
    offline = args.offline or is_offline()
    print(
        f"executing {len(paths)} notebook(s) into {args.out}; "
        f"{'fast' if args.fast else 'full'} mode; "
        + (
            "offline: stand-in datasets"
            if offline
            else "online: real datasets, stand-ins if a download fails"
        )
    )
    results = runner.run_all(
        paths, args.out, cell_timeout=args.cell_timeout, fast=args.fast, offline=args.offline
    )
    print(runner.format_table(results))
    return 0 if all(r.status == "ok" for r in results) else 1


def _cmd_doctor(args: argparse.Namespace) -> int:
    from course_utils import doctor

    return doctor.report()


def _cmd_readme(args: argparse.Namespace) -> int:
    from course_utils import notebooks

    text = args.readme.read_text(encoding="utf-8")
    updated = notebooks.render_readme(text, notebooks.readme_table(args.notebooks_dir))
    if updated == text:
        print(f"{args.readme}: notebook table is up to date")
        return 0
    if args.check:
        print(
            f"{args.readme}: notebook table is stale; run `python -m course_utils readme`",
            file=sys.stderr,
        )
        return 1
    args.readme.write_text(updated, encoding="utf-8")
    print(f"{args.readme}: notebook table rewritten")
    return 0


def _cmd_strip(args: argparse.Namespace) -> int:
    import nbformat

    from course_utils import notebooks

    for path in args.paths or notebooks.notebook_paths():
        nb = notebooks.read(path)
        nbformat.write(notebooks.strip(nb), path)
        print(f"stripped {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_utils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute every notebook headless and print a table of results")
    run.add_argument(
        "--out", type=Path, default=Path("build/executed"), help="where executed copies go"
    )
    run.add_argument(
        "--notebooks-dir", type=Path, default=None, help="default: the repository's notebooks/"
    )
    run.add_argument(
        "--only", nargs="+", metavar="NN", help="run only these notebooks (number or stem)"
    )
    run.add_argument("--fast", action="store_true", help="tiny configuration (sets COURSE_FAST=1)")
    run.add_argument(
        "--offline", action="store_true", help="use stand-in datasets (sets COURSE_OFFLINE=1)"
    )
    run.add_argument("--cell-timeout", type=int, default=1800, help="seconds one cell may run")
    run.set_defaults(func=_cmd_run)

    doctor = sub.add_parser(
        "doctor", help="check the installation, device, flags, data cache and network"
    )
    doctor.set_defaults(func=_cmd_doctor)

    readme = sub.add_parser(
        "readme", help="rebuild the README's notebook table from the notebook titles"
    )
    readme.add_argument("--readme", type=Path, default=Path("README.md"))
    readme.add_argument("--notebooks-dir", type=Path, default=None)
    readme.add_argument("--check", action="store_true", help="fail instead of rewriting when stale")
    readme.set_defaults(func=_cmd_readme)

    strip = sub.add_parser(
        "strip", help="strip outputs (nbstripout), keeping those of NBVAL_CHECK_OUTPUT cells"
    )
    strip.add_argument("paths", nargs="*", type=Path, help="default: every notebook")
    strip.set_defaults(func=_cmd_strip)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
