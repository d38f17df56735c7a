"""A service's declaration of what it publishes and what it consumes: the one place for both."""

from dataclasses import dataclass, field
from typing import Any

from common.events import Event
from common.messaging import Listener
from common.outbox import outbox_entry


@dataclass(frozen=True)
class ServiceContract:
    """Declared once per service in its contract.py as CONTRACT; the catalog is built from these."""

    name: str
    publishes: tuple[type[Event], ...] = ()
    listeners: tuple[type[Listener[Any, Any]], ...] = ()
    description: str = ""
    _consumes: tuple[type[Event], ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "_consumes", tuple(cls.event for cls in self.listeners))

    @property
    def consumes(self) -> tuple[type[Event], ...]:
        return self._consumes

    def outbox_entry(self, event: Event) -> dict[str, Any]:
        """The pending-event entry for a document's outbox; only declared events may be sent."""
        if type(event) not in self.publishes:
            raise TypeError(f"{self.name} does not declare that it publishes {event.type_name()}")
        return outbox_entry(event)
