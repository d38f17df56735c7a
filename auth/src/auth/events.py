"""What auth publishes (it consumes nothing)."""

from common.contract import ServiceContract
from common.events import UserCreated, UserUpdated

CONTRACT = ServiceContract(
    name="auth",
    description="Users, passwords and sessions.",
    publishes=(UserCreated, UserUpdated),
)
