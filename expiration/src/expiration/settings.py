"""expiration's settings: the common ones plus how often the scheduler looks for due timers."""

from typing import ClassVar

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "expiration"

    # The longest the scheduler sleeps before looking again; it also wakes at the earliest due
    # time and whenever a timer is added, so this only bounds how late a missed wake-up can be.
    expiration_poll_seconds: float = 0.25
