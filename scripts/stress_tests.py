"""Run every service's suite many times in random order on a busy machine; fail if any run fails.

`make test-stress` runs this. Each round picks a new pytest-randomly seed (printed, so a failing
order can be replayed with `--randomly-seed=SEED`), runs each suite on its own as
`make test` does, while scripts/burn_cpu.py keeps every core busy. At the end: runs, failures,
the slowest tests seen and the total time.
"""

import argparse
import random
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    round: int
    suite: str
    seed: int
    passed: bool
    seconds: float


def slowest_tests(reports: list[Path], count: int) -> list[tuple[float, str]]:
    """The slowest test cases over every run's JUnit report (each test's worst run)."""
    worst: dict[str, float] = {}
    for report in reports:
        if not report.exists():
            continue
        for case in ET.parse(report).iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            worst[name] = max(worst.get(name, 0.0), float(case.get("time") or 0.0))
    return sorted(((seconds, name) for name, seconds in worst.items()), reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suites", nargs="+", help="workspace members whose tests/ to run")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--uv", default="uv")
    parser.add_argument("--no-burn", action="store_true", help="leave the cores alone")
    args = parser.parse_args()

    burner = None
    if not args.no_burn:
        burner = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "burn_cpu.py"), "--seconds", "14400"]
        )
    runs: list[Run] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gittix-stress-") as reports_dir:
        reports: list[Path] = []
        try:
            for number in range(1, args.rounds + 1):
                seed = random.randrange(1, 2**31)
                print(f"=== round {number}/{args.rounds}: randomly_seed={seed} ===", flush=True)
                for suite in args.suites:
                    report = Path(reports_dir) / f"{number}-{suite}.xml"
                    reports.append(report)
                    command = [
                        args.uv, "run", "--no-sync", "--package", suite,
                        "pytest", f"{suite}/tests", "-q",
                        f"--randomly-seed={seed}", f"--junitxml={report}",
                    ]  # fmt: skip
                    print(f"--- {suite} (round {number}, seed {seed})", flush=True)
                    began = time.monotonic()
                    code = subprocess.run(command, cwd=REPO, check=False).returncode
                    runs.append(Run(number, suite, seed, code == 0, time.monotonic() - began))
        except KeyboardInterrupt:
            print("\ninterrupted: the summary covers the runs that finished", flush=True)
        finally:
            if burner is not None:
                burner.terminate()
                burner.wait(timeout=30)
        total = time.monotonic() - started
        failed = [run for run in runs if not run.passed]
        print("\n=== stress summary ===")
        print(f"runs: {len(runs)} of {args.rounds} rounds x {len(args.suites)} suites")
        print(f"failures: {len(failed)}")
        for run in failed:
            print(f"  FAILED {run.suite} round {run.round} (replay: --randomly-seed={run.seed})")
        print(f"total time: {total / 60:.1f} min")
        for suite in args.suites:
            times = [run.seconds for run in runs if run.suite == suite]
            if times:
                print(f"  {suite}: {min(times):.0f}-{max(times):.0f}s per run")
        print("slowest tests (worst run):")
        for seconds, name in slowest_tests(reports, 10):
            print(f"  {seconds:6.2f}s  {name}")
    return 1 if failed or len(runs) < args.rounds * len(args.suites) else 0


if __name__ == "__main__":
    sys.exit(main())
