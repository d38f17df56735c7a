"""`make bench`: run every benchmark in this folder (bench_*.py), one after another.

Small sizes by default (a few minutes); `--sizes issue` runs the sizes issue 12 sets its goals
at (10,000 tickets; 2,000 expiries due in the same second with 10,000 pending), e.g.
`make bench BENCH_ARGS="--sizes issue"`. Each benchmark prints its figures beside their goals.
"""

import argparse
import subprocess
import sys
from pathlib import Path

ISSUE_SIZES = {
    "bench_write_cost.py": ["--sizes", "100,10000", "--writes", "200"],
    "bench_expiration_latency.py": [
        "--burst",
        "2000",
        "--spread",
        "0",
        "--pending",
        "10000",
        "--lead",
        "15",
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", choices=("small", "issue"), default="small")
    parser.add_argument("--only", help="run only the benchmarks whose file name contains this")
    args = parser.parse_args()
    failed = 0
    for script in sorted(Path(__file__).resolve().parent.glob("bench_*.py")):
        if args.only and args.only not in script.name:
            continue
        extra = ISSUE_SIZES.get(script.name, []) if args.sizes == "issue" else []
        print(f"=== {script.name} {' '.join(extra)} ===", flush=True)
        failed |= subprocess.run([sys.executable, str(script), *extra]).returncode != 0
        print(flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
