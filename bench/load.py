"""A bounded HTTP load generator: N requests at concurrency C against one URL, latencies as JSON.

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


async def run(url: str, requests: int, concurrency: int, cafile: str | None) -> dict[str, float]:
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
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
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
    args = parser.parse_args()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run(args.url, args.requests, args.concurrency, args.cafile))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
