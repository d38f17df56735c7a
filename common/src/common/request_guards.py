"""Guards in front of every service's routes: a request body size limit and a cross-site check.

Both answer in the common error format before a route runs: 413 for a body over the limit
(declared in Content-Length or counted as it streams in), 403 for a state-changing request a
browser sent from another site. They are pure ASGI middleware so that neither buffers a body.
"""

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import error_response

DEFAULT_MAX_BODY_BYTES = 64 * 1024
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_SITE_MESSAGE = "Cross-site request refused"
# What a browser says about where a request comes from; anything else (same-site, cross-site)
# is another site's page, however close its name is to ours.
OWN_SITE_FETCHES = frozenset({"same-origin", "none"})


def body_too_large_message(max_bytes: int) -> str:
    if max_bytes % 1024 == 0:
        return f"Request body is too large (at most {max_bytes // 1024} KiB)"
    return f"Request body is too large (at most {max_bytes} bytes)"


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once the streamed body passes the limit; rendered as 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=body_too_large_message(max_bytes))


class BodySizeLimit:
    """413 for a body over `max_bytes`, whether it says so up front or streams in chunks.

    `larger_bodies` maps exact paths that need more (a webhook whose sender we do not control)
    to their own limit.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger_bodies: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger_bodies = dict(larger_bodies or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger_bodies.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(scope, receive, send, max_bytes)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            # Normally the app's error handler has already answered 413; this covers a body
            # read outside it (a middleware, a streaming route).
            if response_started:
                raise
            await self._refuse(scope, receive, send, max_bytes)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = error_response(413, [{"message": body_too_large_message(max_bytes)}])
        await response(scope, receive, send)


def normalise_origin(origin: str) -> str:
    """scheme://host[:port] in lower case, without a trailing slash."""
    return origin.strip().rstrip("/").lower()


class CrossSiteGuard:
    """403 for a state-changing request that a browser sent from another site's page.

    Defence in depth behind SameSite=Lax cookies and JSON-only bodies. Browsers say where a
    request comes from in `Sec-Fetch-Site` (and, for these methods, `Origin`); a request with
    neither header is not from a browser (curl, tests, service to service) and is let through,
    since it carries no victim's cookie. Origins in `trusted_origins` may always write.
    """

    def __init__(self, app: ASGIApp, *, trusted_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.trusted_origins = frozenset(normalise_origin(origin) for origin in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in STATE_CHANGING_METHODS
            and not self.allows(Headers(scope=scope))
        ):
            response = error_response(403, [{"message": CROSS_SITE_MESSAGE}])
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def allows(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is not None and normalise_origin(origin) in self.trusted_origins:
            return True
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None:
            return fetch_site.strip().lower() in OWN_SITE_FETCHES
        if origin is None:
            return True
        # A browser too old for Sec-Fetch-Site: the origin must be the host it is talking to
        # (as the entry point saw it; behind it, Host names the service instead).
        host = headers.get("x-forwarded-host") or headers.get("host")
        return host is not None and urlsplit(normalise_origin(origin)).netloc == host.lower()


def install_request_guards(
    app: FastAPI,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    larger_bodies: Mapping[str, int] | None = None,
    trusted_origins: Iterable[str] = (),
) -> None:
    """Put both guards in front of `app`; the cross-site check runs first (it reads no body)."""
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, larger_bodies=larger_bodies)
    # Added last, so outermost.
    app.add_middleware(CrossSiteGuard, trusted_origins=tuple(trusted_origins))
