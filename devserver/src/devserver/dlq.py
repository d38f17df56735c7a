"""`make dlq`: the dead-letter command (common.dlq) against `make up`'s NATS, as its admin user.

`make up`'s NATS admits only its users; the admin's password is in the data directory it keeps.
Elsewhere (Kubernetes, another machine) run `python -m common.dlq` with NATS_URL instead.
"""

import asyncio
import sys

from common.bus_permissions import ADMIN_USER
from common.dlq import run

from devserver.keys import stored_password
from devserver.system import SystemConfig


def make_up_nats_url(config: SystemConfig) -> str:
    address = f"127.0.0.1:{config.nats_port}"
    password = stored_password(config.data_dir, f"nats/{ADMIN_USER}")
    if password is None:  # never started with users: an open server, if any
        return f"nats://{address}"
    return f"nats://{ADMIN_USER}:{password}@{address}"


def main(argv: list[str] | None = None) -> int:
    url = make_up_nats_url(SystemConfig.from_environment())
    return asyncio.run(run(sys.argv[1:] if argv is None else argv, nats_url=url))


if __name__ == "__main__":
    sys.exit(main())
