"""What auth publishes (it listens to nothing): its CONTRACT (the event catalog reads it)."""

from common.contract import ServiceContract
from common.events import UserCreated, UserUpdated

CONTRACT = ServiceContract(
    name="auth",
    description="Users, passwords and sessions.",
    publishes=(UserCreated, UserUpdated),
)
