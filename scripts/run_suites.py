"""Run independent suites side by side, a few at a time; print each one's output whole.

`make test` runs lint, every workspace member's suite and `tests/` through this, two at a time:
most of a service suite's time is spent waiting (on nats-server, on a service's shutdown), so two
suites on two cores take little longer than one. Each job is its own process in its own session
(its own nats-server, localstripe, temporary directories and free ports, as when it runs alone),
its output goes to a file and is printed in one piece when it ends, so the log reads as if the
suites had run one after another. Exit status 1 if any job failed or ran past --job-timeout.

    python scripts/run_suites.py --jobs 2 "lint=make lint" "auth=uv run ... pytest auth/tests"
"""

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

REPO = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.2
# Past this a job is stuck (every test already has its own 120 s timeout): end it, fail the run.
JOB_TIMEOUT_SECONDS = 900.0
# What a job gets between SIGTERM and SIGKILL when it has to be ended.
TERMINATE_GRACE_SECONDS = 15.0


@dataclass
class Job:
    name: str
    command: list[str]
    output: IO[bytes] | None = None
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float = 0.0
    returncode: int | None = None
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def parse_job(spec: str) -> Job:
    name, sep, command = spec.partition("=")
    if not sep or not name.strip() or not command.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=COMMAND, got {spec!r}")
    return Job(name=name.strip(), command=shlex.split(command))


def start(job: Job, logs: Path) -> None:
    job.output = (logs / f"{job.name}.log").open("w+b")
    job.started = time.monotonic()
    # Its own session: ending a job ends every process it started (nats-server, Chromium, ...).
    job.process = subprocess.Popen(
        job.command, cwd=REPO, stdout=job.output, stderr=subprocess.STDOUT, start_new_session=True
    )


def end(job: Job) -> None:
    """SIGTERM to the job's whole process group, SIGKILL if it is still there after the grace."""
    assert job.process is not None
    for sig, grace in ((signal.SIGTERM, TERMINATE_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(job.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            job.process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def report(job: Job) -> None:
    """The job's whole output, then one line saying how it ended."""
    assert job.output is not None
    job.output.seek(0)
    print(f"=== {job.name} ===", flush=True)
    sys.stdout.buffer.write(job.output.read())
    job.output.close()
    for note in job.notes:
        print(note)
    outcome = "passed" if job.passed else f"FAILED (exit status {job.returncode})"
    print(f"--- {job.name}: {outcome} in {job.seconds:.0f} s", flush=True)


def run(jobs: list[Job], width: int, job_timeout: float) -> None:
    waiting = list(jobs)
    running: list[Job] = []
    with tempfile.TemporaryDirectory(prefix="gittix-suites-") as logs:
        try:
            while waiting or running:
                while waiting and len(running) < width:
                    job = waiting.pop(0)
                    start(job, Path(logs))
                    running.append(job)
                time.sleep(POLL_SECONDS)
                for job in list(running):
                    assert job.process is not None
                    job.seconds = time.monotonic() - job.started
                    if job.process.poll() is None and job.seconds > job_timeout:
                        job.timed_out = True
                        job.notes.append(f"*** {job.name} still running after {job_timeout:.0f} s")
                        end(job)
                    if job.process.poll() is not None:
                        job.returncode = job.process.returncode
                        running.remove(job)
                        report(job)
        finally:
            # Interrupted (Ctrl-C, SIGTERM from make): leave no suite running behind us.
            for job in running:
                end(job)


def summary(jobs: list[Job], wall: float) -> None:
    print("=== summary ===")
    for job in jobs:
        outcome = "passed" if job.passed else "FAILED" if job.returncode is not None else "not run"
        print(f"  {job.name:<12} {outcome:<8} {job.seconds:5.0f} s")
    print(f"  {len(jobs)} jobs in {wall:.0f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("jobs", nargs="+", type=parse_job, metavar="NAME=COMMAND")
    parser.add_argument("--jobs", dest="width", type=int, default=2, help="how many at once")
    parser.add_argument("--job-timeout", type=float, default=JOB_TIMEOUT_SECONDS)
    args = parser.parse_args()
    names = [job.name for job in args.jobs]
    if len(set(names)) != len(names):
        parser.error(f"job names must differ: {names}")

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    began = time.monotonic()
    try:
        run(args.jobs, max(1, args.width), args.job_timeout)
    except KeyboardInterrupt:
        print("\ninterrupted: the jobs still running were ended", flush=True)
        return 130
    summary(args.jobs, time.monotonic() - began)
    return 0 if all(job.passed for job in args.jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
