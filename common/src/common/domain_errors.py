"""What a business rule answers when it says no: domain errors, with no HTTP in them.

A service layer raises these; a repository raises none (it answers with None, False or an
outcome, and the service decides). common.errors maps each one to an HTTP status at the edge,
in one table, and renders it as {"errors": [{"message", "field"?}]}; a listener that meets one
lets it fail like any other error.
"""


class DomainError(Exception):
    """A rule said no. `message` is written for the person using the product; `field` names the
    input it is about, when there is one."""

    default_message = "The request cannot be carried out"

    def __init__(self, message: str | None = None, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)


class Invalid(DomainError):
    """The input breaks a rule (a wrong current password, an order for your own ticket)."""

    default_message = "Invalid request"


class Conflict(Invalid):
    """The input clashes with what is stored (an email in use, a ticket already reserved)."""


class InvalidState(Invalid):
    """The thing is in a state that does not allow this (editing a reserved ticket, cancelling a
    completed order)."""


class Unauthenticated(DomainError):
    """Nobody is signed in, or the session is not valid."""

    default_message = "Not authorized"


class Forbidden(DomainError):
    """Signed in, but this belongs to someone else."""

    default_message = "Forbidden"


class NotFound(DomainError):
    """No such thing (or an id that cannot name one)."""

    default_message = "Not found"


class PaymentDeclined(DomainError):
    """The card was declined."""

    default_message = "Your card was declined"


class RateLimited(DomainError):
    """Too many attempts; `retry_after_seconds` says when to try again."""

    default_message = "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DomainError):
    """Something the rule depends on (Stripe, the database, the bus, a busy worker pool) cannot
    serve now; `retry_after_seconds`, when known, says when to try again."""

    default_message = "Service unavailable, try again"

    def __init__(
        self,
        message: str | None = None,
        field: str | None = None,
        *,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message, field)
        self.retry_after_seconds = retry_after_seconds
