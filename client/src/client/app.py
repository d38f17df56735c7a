"""client's app: create_app builds it (uvicorn --factory client.app:create_app)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from common.errors import install_error_handlers
from common.health import health_router
from common.logging import configure_logging
from common.request_guards import install_request_guards
from common.shutdown import BoundedRequests, ShutdownClock, watch_signals
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from client.routes import install_page_errors, router
from client.settings import Settings

STATIC_DIR = Path(__file__).parent / "static"

STRIPE_JS = "https://js.stripe.com"


def content_security_policy(settings: Settings) -> str:
    """Scripts only from this origin, plus Stripe's (and its frames) when Elements is in use."""
    script, frame, connect, style = ["'self'"], ["'none'"], ["'self'"], ["'self'"]
    if settings.stripe_js_url:
        # Stripe.js from elsewhere (make up: localstripe's stand-in) talks to its own origin.
        origin = "/".join(settings.stripe_js_url.split("/")[:3])
        script.append(origin)
        connect.append(origin)
    if settings.stripe_publishable_key and not settings.stripe_js_url:
        script.append(STRIPE_JS)
        frame = [STRIPE_JS, "https://hooks.stripe.com"]
        connect.append("https://api.stripe.com")
        # Stripe.js positions its iframes with inline styles.
        style.append("'unsafe-inline'")
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {' '.join(script)}",
            f"frame-src {' '.join(frame)}",
            f"connect-src {' '.join(connect)}",
            f"style-src {' '.join(style)}",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    policy = content_security_policy(settings)
    clock = ShutdownClock(
        budget_seconds=settings.shutdown_seconds, request_seconds=settings.shutdown_request_seconds
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        clock.reset()
        restore_signals = watch_signals(clock)
        try:
            yield
        finally:
            restore_signals()

    app = FastAPI(
        title="GitTix client", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_page_errors(app)
    # The pages take no bodies and change nothing, but the same guards keep every service alike.
    install_request_guards(app)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.url.path.startswith("/static/"):
            # Revalidate on every load (ETag makes it cheap) so pages and modules never mix
            # versions after a deploy; there is no build step to fingerprint file names.
            response.headers["Cache-Control"] = "no-cache"
        return response

    # Outermost: once shutdown begins, every request in flight gets an answer in time.
    app.add_middleware(BoundedRequests, clock=clock)
    app.include_router(health_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    return app
