"""A bounded HTTP load generator: N requests at concurrency C against one URL, latencies as JSON.

GET by default; with --body-file, each request POSTs the next line of the file (JSON), e.g. one
order per ticket; --header adds a header to every request, and --headers-file gives request i
the headers on line i (mod the lines) of a file of JSON objects (e.g. each buyer's cookie).

Runs in its own process so its CPU is not counted against the server being measured.
"""

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import time

import aiohttp

JSON_BODY = {"Content-Type": "application/json"}


async def run(
    url: str,
    requests: int,
    concurrency: int,
    cafile: str | None,
    bodies: list[bytes] | None = None,
    headers: list[dict[str, str]] | None = None,
    expect: int = 200,
) -> dict[str, float]:
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context if context else False)
    latencies: list[float] = []
    failures = 0
    remaining = requests

    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                number = requests - remaining - 1
                these = headers[number % len(headers)] if headers else {}
                started = time.perf_counter()
                if bodies is None:
                    request = session.get(url, headers=these)
                else:
                    request = session.post(url, data=bodies[number], headers={**these, **JSON_BODY})
                async with request as response:
                    await response.read()
                    if response.status != expect:
                        failures += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began

    latencies.sort()
    return {
        "requests": len(latencies),
        "failures": failures,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--cafile")
    parser.add_argument("--body-file", help="POST one JSON line of this file per request")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--headers-file", help="request i: the headers on line i (JSON object)")
    parser.add_argument("--expect", type=int, default=200, help="the status of a success")
    args = parser.parse_args()
    bodies = None
    if args.body_file:
        with open(args.body_file, "rb") as lines:
            bodies = [line.strip() for line in lines if line.strip()]
        args.requests = len(bodies)
    common = dict(header.split(": ", 1) for header in args.header)
    headers = [common]
    if args.headers_file:
        with open(args.headers_file) as lines:
            headers = [{**common, **json.loads(line)} for line in lines if line.strip()]
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(
            run(
                args.url,
                args.requests,
                args.concurrency,
                args.cafile,
                bodies,
                headers,
                args.expect,
            )
        )
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
