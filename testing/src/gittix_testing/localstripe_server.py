"""localstripe for tests on 127.0.0.1, in memory: python -m gittix_testing.localstripe_server.

localstripe's own entry point has no --host flag (it listens on every interface) and shares one
/tmp/localstripe.pickle between all its processes; parallel test sessions must not share state.

`make_faithful()` closes the gaps between localstripe and Stripe that GitTix relies on, so the
code under test sends exactly what it sends to Stripe itself:
- PaymentIntents accept `receipt_email` (kept and returned) and `automatic_payment_methods`;
- `pm_card_visa_chargeDeclined` (card 4000000000000002) is declined when charged, as on Stripe;
- `pm_card_authenticationRequired` (card 4000002760003184) exists and always asks for 3-D Secure,
  as Stripe's test PaymentMethod of that name does;
- POSTs with an `Idempotency-Key` are answered once and replayed for the same key, as on Stripe.
"""

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from localstripe import resources, server

DECLINED_ON_CHARGE = "4000000000000002"
AUTHENTICATION_REQUIRED = "4000002760003184"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _accept_payment_intent_params() -> None:
    original = resources.PaymentIntent.__init__

    def init(
        self: Any,
        *args: Any,
        receipt_email: str | None = None,
        automatic_payment_methods: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        original(self, *args, **kwargs)
        self.receipt_email = receipt_email

    resources.PaymentIntent.__init__ = init  # type: ignore[method-assign]


def _decline_charge_declined_card() -> None:
    original = resources.PaymentMethod._charging_is_declined

    def declined(self: Any) -> bool:
        if self.type == "card" and self._card_number == DECLINED_ON_CHARGE:
            return True
        return bool(original(self))

    resources.PaymentMethod._charging_is_declined = declined  # type: ignore[method-assign]


def _authentication_required_card() -> None:
    original = resources.PaymentMethod._try_get_canonical_test_article.__func__  # type: ignore[attr-defined]

    def canonical(cls: Any, id: str) -> Any:
        if id == "pm_card_authenticationRequired":
            card = {"number": AUTHENTICATION_REQUIRED, "exp_month": "12", "exp_year": "2030"}
            return resources.PaymentMethod(type="card", card={**card, "cvc": "123"})
        return original(cls, id)

    resources.PaymentMethod._try_get_canonical_test_article = classmethod(canonical)  # type: ignore[method-assign, assignment]


def _idempotency_middleware() -> Callable[[web.Request, _Handler], Awaitable[web.StreamResponse]]:
    answered: dict[tuple[str, str], tuple[int, bytes, str]] = {}
    locks: dict[tuple[str, str], asyncio.Lock] = {}

    @web.middleware
    async def idempotency(request: web.Request, handler: _Handler) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)
        scope = (request.headers.get("Authorization", ""), key)
        async with locks.setdefault(scope, asyncio.Lock()):
            if scope in answered:
                status, body, content_type = answered[scope]
                replayed = web.Response(status=status, body=body, content_type=content_type)
                replayed.headers["Idempotent-Replayed"] = "true"
                return replayed
            response = await handler(request)
            # Stripe keeps the outcome of a request that ran (success or a 4xx such as a
            # decline), not a 5xx, so a retry after a server error runs again.
            if isinstance(response, web.Response) and response.status < 500:
                body = response.body if isinstance(response.body, bytes) else b""
                answered[scope] = (response.status, body, response.content_type)
            return response

    return idempotency


def make_faithful() -> None:
    """Patch localstripe (in this process) to behave like Stripe where GitTix depends on it."""
    _accept_payment_intent_params()
    _decline_charge_declined_card()
    _authentication_required_card()
    # Outermost, so localstripe's errors are already responses when they are remembered.
    server.app.middlewares.insert(0, _idempotency_middleware())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gittix_testing.localstripe_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # Start from an empty store and never write the shared pickle file.
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    make_faithful()
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
    web.run_app(server.app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
