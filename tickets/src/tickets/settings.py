"""tickets' settings: only the common ones (database, bus, public key for sessions)."""

from typing import ClassVar

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "tickets"
