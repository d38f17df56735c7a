"""localstripe, the fake Stripe server, bound to 127.0.0.1 and kept in memory only.

localstripe's own entry point listens on every interface ("::") and loads/saves its whole store
in one shared /tmp/localstripe.pickle; here it binds loopback and keeps state in this process.
"""

import argparse
import logging
import sys

from aiohttp import web
from localstripe import resources, server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devserver.fake_stripe")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args(argv)
    # Every process starts from an empty store and never writes the shared pickle file.
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    web.run_app(server.app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
