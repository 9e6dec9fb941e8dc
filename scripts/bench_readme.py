"""Cold end-to-end wall time of the README command (bitdance.evaluation.readme_speed); writes the report.

python scripts/bench_readme.py --runs 5 --out docs/results/speed_readme.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bitdance.core.atomic import atomic_write_bytes
from bitdance.evaluation.readme_speed import bench_readme, readme_table, shared_report
from bitdance.evaluation.report import md_table, recipe


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="cold runs of each command (median; default 5)")
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="also time the command of another checkout (FOLDER holds its bitdance package); repeatable",
    )
    p.add_argument("--out", default="runs/eval/speed_readme.json", help="report path (JSON)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be at least 1, got {args.runs}")
    baselines = {}
    for b in args.baseline:
        name, sep, folder = b.partition("=")
        if not sep or not name or not folder:
            p.error(f"--baseline takes NAME=FOLDER, got {b!r}")
        baselines[name] = folder
    try:
        res = bench_readme(args.runs, baselines)
    except ValueError as e:
        p.error(str(e))
    argv_used = ["python", "scripts/bench_readme.py", *(argv if argv is not None else sys.argv[1:])]
    rec = recipe(argv_used, "cpu", runs=args.runs, threads=1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(args.out), shared_report(res, rec).encode())
    t = readme_table(res)
    print(md_table(t["columns"], t["rows"]))
    print(f"load average (1 min) before/after: {res['load_average_1min']}; report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
