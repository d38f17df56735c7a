"""`make bench`: issue 12's figures, each printed beside its goal (`--all`: every bench_*.py).

Small sizes by default (a few minutes in all); `--sizes issue` runs the sizes issue 12 sets its
goals at (10,000 tickets; 2,000 expiries due in the same second with 10,000 pending; 100 hop
samples), e.g. `make bench BENCH_ARGS="--sizes issue"`. Each benchmark prints its own lines;
at the end every "goal:" line is repeated in one summary with the load average the benchmark
started at (the machine is shared: a figure taken at a high load says so).

The table of figures with their machine and date is in bench/README.md.
"""

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Figure:
    """One issue-12 benchmark and its arguments at each size."""

    script: str
    small: list[str] = field(default_factory=list)
    issue: list[str] = field(default_factory=list)


ISSUE_12 = [
    Figure("bench_write_cost.py", [], ["--sizes", "100,10000", "--writes", "200"]),
    Figure(
        "bench_expiration_latency.py",
        [],
        ["--burst", "2000", "--spread", "0", "--pending", "10000", "--lead", "15"],
    ),
    Figure("bench_event_hop.py", ["--samples", "50"], ["--samples", "100"]),
    Figure("bench_order_cpu.py", ["--sizes", "100,1000"], ["--sizes", "100,10000"]),
    Figure(
        "bench_order_writes.py",
        ["--sizes", "100,1000"],
        ["--sizes", "100,10000", "--writes", "1000"],
    ),
]


def run(script: str, extra: list[str]) -> tuple[bool, list[str]]:
    """Run one benchmark, its output passed through; its "goal:" lines."""
    goals = []
    with subprocess.Popen(
        [sys.executable, str(BENCH_DIR / script), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if "goal:" in line:
                goals.append(line.strip().removeprefix("goal:").strip())
    return process.returncode == 0, goals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", choices=("small", "issue"), default="small")
    parser.add_argument("--only", help="run only the benchmarks whose file name contains this")
    parser.add_argument("--all", action="store_true", help="every bench_*.py, not only issue 12's")
    args = parser.parse_args()
    figures = {figure.script: figure for figure in ISSUE_12}
    if args.all:
        for path in sorted(BENCH_DIR.glob("bench_*.py")):
            figures.setdefault(path.name, Figure(path.name))
    failed = []
    summary = []
    for figure in figures.values():
        if args.only and args.only not in figure.script:
            continue
        extra = figure.issue if args.sizes == "issue" else figure.small
        load = os.getloadavg()[0]
        print(f"=== {figure.script} {' '.join(extra)} (load {load:.1f}) ===", flush=True)
        ok, goals = run(figure.script, extra)
        if not ok:
            failed.append(figure.script)
        summary += [(figure.script, goal, load) for goal in goals]
        print(flush=True)
    print("=== issue 12: each figure beside its goal (load average when the benchmark started) ===")
    for script, goal, load in summary:
        print(f"{script:30} {goal} [load {load:.1f}]")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
