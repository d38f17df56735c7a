"""scripts/run_suites.py, which `make test` runs the suites through two at a time: every job's
output is printed whole, and the run fails when any job fails or overruns."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_suites.py"


def run_suites(*jobs: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--jobs", "2", *jobs],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def job(name: str, code: str) -> str:
    return f"{name}={sys.executable} -c '{code}'"


def test_each_jobs_output_comes_whole_and_a_failure_fails_the_run() -> None:
    slow = 'import time\nfor n in range(3): print("slow", n, flush=True); time.sleep(0.2)'
    result = run_suites(
        job("slow", slow),
        job("quick", 'print("quick 0"); print("quick 1")'),
        job("broken", 'print("broken"); raise SystemExit(3)'),
    )

    assert result.returncode == 1, result.stdout
    out = result.stdout
    # Side by side, yet each job's lines stay together, under its own header.
    assert "=== slow ===\nslow 0\nslow 1\nslow 2\n--- slow: passed" in out
    assert "=== quick ===\nquick 0\nquick 1\n--- quick: passed" in out
    assert "=== broken ===\nbroken\n--- broken: FAILED (exit status 3)" in out
    summary = out[out.index("=== summary ===") :]
    assert [line.split()[:2] for line in summary.splitlines()[1:4]] == [
        ["slow", "passed"],
        ["quick", "passed"],
        ["broken", "FAILED"],
    ]


def test_every_job_passing_passes_the_run() -> None:
    result = run_suites(job("one", 'print("one")'), job("two", 'print("two")'))

    assert result.returncode == 0, result.stdout
    assert "=== one ===\none\n--- one: passed" in result.stdout
    assert "2 jobs in" in result.stdout


def test_a_job_past_its_time_is_ended_and_fails_the_run() -> None:
    result = run_suites(
        "--job-timeout",
        "1",
        job("stuck", 'import time; print("stuck", flush=True); time.sleep(60)'),
    )

    assert result.returncode == 1, result.stdout
    assert "*** stuck still running after 1 s" in result.stdout
    assert "--- stuck: FAILED" in result.stdout
