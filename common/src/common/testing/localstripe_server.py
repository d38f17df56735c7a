"""localstripe for tests on 127.0.0.1, in memory: python -m common.testing.localstripe_server.

localstripe's own entry point has no --host flag (it listens on every interface) and shares one
/tmp/localstripe.pickle between all its processes; parallel test sessions must not share state.
"""

import argparse
import logging
import sys

from aiohttp import web
from localstripe import resources, server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m common.testing.localstripe_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # Start from an empty store and never write the shared pickle file.
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
    web.run_app(server.app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
