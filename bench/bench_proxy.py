"""What `make up`'s HTTPS entry point adds per request (latency, CPU) over calling a service.

Everything runs on loopback with a bounded number of requests. Usage: python bench/bench_proxy.py
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devserver.certs import ensure_ca, server_certificate
from devserver.entry_point import caddy_args, caddy_config, caddy_env, write_config
from gittix_testing.processes import ManagedProcess, free_port

BENCH_DIR = Path(__file__).resolve().parent
PATH = "/api/users/currentuser"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(process: ManagedProcess) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    assert process.process is not None
    fields = Path(f"/proc/{process.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def load(url: str, requests: int, concurrency: int, cafile: str | None) -> dict[str, float]:
    args = [
        sys.executable,
        str(BENCH_DIR / "load.py"),
        url,
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
    ]
    if cafile:
        args += ["--cafile", cafile]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


@dataclass
class Target:
    name: str
    url: str
    process: ManagedProcess | None  # the front process whose CPU we charge (None: direct)


def uvicorn(
    name: str,
    factory: str,
    port: int,
    *extra: str,
    env: dict[str, str] | None = None,
    app_dir: Path = BENCH_DIR,
) -> ManagedProcess:
    return ManagedProcess(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--app-dir",
            str(app_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-keep-alive",
            "60",
            *extra,
        ],
        port=port,
        env=env,
    ).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sequential", type=int, default=2000, help="requests at concurrency 1")
    parser.add_argument("--concurrent", type=int, default=10000, help="requests at concurrency 50")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--skip-httpx", action="store_true", help="leave out the httpx reference")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="gittix-bench-"))
    cert, key = server_certificate(data_dir, ["localhost", "127.0.0.1"], "localhost")
    ca = str(ensure_ca(data_dir)[0])
    up_port, tls_port, quiet_port, plain_port, httpx_port = (free_port() for _ in range(5))
    upstream_url = f"http://127.0.0.1:{up_port}"

    def entry_point(name: str, port: int, *, tls: bool, access_log: bool) -> ManagedProcess:
        """Caddy configured by devserver.entry_point, as `make up` starts it."""
        home = data_dir / name
        config = caddy_config(
            port=port,
            upstreams={"auth": up_port},
            cert=cert if tls else None,
            key=key if tls else None,
            storage=home / "data",
            access_log=access_log,
        )
        args = caddy_args(write_config(home / "caddy.json", config))
        return ManagedProcess(name, args, port=port, env=caddy_env(home)).start()

    processes: list[ManagedProcess] = []
    try:
        upstream = uvicorn("service", "stand_in_service:create_app", up_port)
        processes.append(upstream)
        tls = entry_point("entry-https", tls_port, tls=True, access_log=True)
        quiet = entry_point("entry-https-quiet", quiet_port, tls=True, access_log=False)
        plain = entry_point("entry-http", plain_port, tls=False, access_log=False)
        processes += [tls, quiet, plain]
        targets = [
            Target("service directly (HTTP)", f"{upstream_url}{PATH}", None),
            Target(
                "Caddy as `make up` runs it (HTTPS, access log)",
                f"https://127.0.0.1:{tls_port}{PATH}",
                tls,
            ),
            Target("Caddy, HTTPS, no access log", f"https://127.0.0.1:{quiet_port}{PATH}", quiet),
            Target(
                "Caddy, plain HTTP, no access log", f"http://127.0.0.1:{plain_port}{PATH}", plain
            ),
        ]
        if not args.skip_httpx:
            reference = uvicorn(
                "httpx-ref",
                "httpx_reference_proxy:create_app",
                httpx_port,
                "--ssl-certfile",
                str(cert),
                "--ssl-keyfile",
                str(key),
                env={"BENCH_UPSTREAM": upstream_url},
            )
            processes.append(reference)
            targets.append(
                Target(
                    "httpx.AsyncClient reference, HTTPS",
                    f"https://127.0.0.1:{httpx_port}{PATH}",
                    reference,
                )
            )

        rows: list[dict[str, Any]] = []
        for target in targets:
            cafile = ca if target.url.startswith("https") else None
            load(target.url, 300, args.concurrency, cafile)  # warm up: connections, TLS sessions
            sequential = load(target.url, args.sequential, 1, cafile)
            before = cpu_seconds(target.process) if target.process else 0.0
            upstream_before = cpu_seconds(upstream)
            # The httpx reference is ~10x slower: fewer requests keep the run short.
            count = args.concurrent // 5 if target.name.startswith("httpx") else args.concurrent
            concurrent = load(target.url, count, args.concurrency, cafile)
            front_cpu = (cpu_seconds(target.process) - before) if target.process else 0.0
            upstream_cpu = cpu_seconds(upstream) - upstream_before
            n = concurrent["requests"]
            rows.append(
                {
                    "target": target.name,
                    "seq_p50_ms": sequential["p50_ms"],
                    "seq_p99_ms": sequential["p99_ms"],
                    "rps": concurrent["rps"],
                    "conc_p50_ms": concurrent["p50_ms"],
                    "conc_p99_ms": concurrent["p99_ms"],
                    "front_cpu_us": front_cpu / n * 1e6,
                    "service_cpu_us": upstream_cpu / n * 1e6,
                    "failures": sequential["failures"] + concurrent["failures"],
                }
            )
    finally:
        for process in reversed(processes):
            process.stop()

    direct = rows[0]
    print(
        f"GET {PATH}, {args.sequential} sequential requests, then {args.concurrent} "
        f"({args.concurrent // 5} for the httpx reference) at "
        f"concurrency {args.concurrency}; load generator in its own process; "
        f"{os.cpu_count()} CPUs"
    )
    print()
    print(
        "| path | c=1 p50 ms | c=1 p99 ms | added p50 ms | c=50 req/s | c=50 p50 ms | "
        "c=50 p99 ms | proxy CPU µs/req | service CPU µs/req | failures |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        added = row["seq_p50_ms"] - direct["seq_p50_ms"]
        proxy_cpu = f"{row['front_cpu_us']:.0f}"
        print(
            f"| {row['target']} | {row['seq_p50_ms']:.2f} | {row['seq_p99_ms']:.2f} | "
            f"{'—' if row is direct else f'{added:+.2f}'} | {row['rps']:.0f} | "
            f"{row['conc_p50_ms']:.1f} | {row['conc_p99_ms']:.1f} | "
            f"{'—' if row is direct else proxy_cpu} | "
            f"{row['service_cpu_us']:.0f} | {row['failures']:.0f} |"
        )


if __name__ == "__main__":
    main()
