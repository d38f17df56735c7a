"""The pages: HTML shells whose module scripts call the APIs at /api/* from the browser."""

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

router = APIRouter(include_in_schema=False)

# MongoDB ObjectId hex: any other id cannot name a ticket or an order, so it is a 404 at once.
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")


def render(request: Request, template: str, *, title: str, script: str, **context: Any) -> Response:
    settings = request.app.state.settings
    return templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "script": script,
            "stripe_publishable_key": settings.stripe_publishable_key,
            "stripe_js": settings.stripe_js,
            **context,
        },
    )


def _object_id(value: str) -> str:
    if not OBJECT_ID.match(value):
        raise StarletteHTTPException(status_code=404)
    return value.lower()


@router.get("/", response_class=HTMLResponse)
async def landing(request: Request) -> Response:
    return render(request, "landing.html", title="Tickets for sale", script="landing")


@router.get("/signup", response_class=HTMLResponse)
async def signup(request: Request) -> Response:
    return render(request, "signup.html", title="Sign up", script="signup")


@router.get("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    return render(request, "signin.html", title="Sign in", script="signin")


@router.get("/signout", response_class=HTMLResponse)
async def signout(request: Request) -> Response:
    return render(request, "signout.html", title="Sign out", script="signout")


@router.get("/tickets/new", response_class=HTMLResponse)
async def sell_ticket(request: Request) -> Response:
    return render(request, "sell.html", title="Sell a ticket", script="sell")


@router.get("/tickets/mine", response_class=HTMLResponse)
async def my_tickets(request: Request) -> Response:
    return render(request, "my_tickets.html", title="My tickets", script="my-tickets")


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
async def ticket_page(request: Request, ticket_id: str) -> Response:
    return render(
        request, "ticket.html", title="Ticket", script="ticket", ticket_id=_object_id(ticket_id)
    )


@router.get("/tickets/{ticket_id}/edit", response_class=HTMLResponse)
async def edit_ticket(request: Request, ticket_id: str) -> Response:
    return render(
        request,
        "edit_ticket.html",
        title="Edit ticket",
        script="edit-ticket",
        ticket_id=_object_id(ticket_id),
    )


@router.get("/orders", response_class=HTMLResponse)
async def my_orders(request: Request) -> Response:
    return render(request, "my_orders.html", title="My orders", script="my-orders")


@router.get("/orders/{order_id}", response_class=HTMLResponse)
async def order_page(request: Request, order_id: str) -> Response:
    return render(
        request, "order.html", title="Your order", script="order", order_id=_object_id(order_id)
    )


def install_page_errors(app: FastAPI) -> None:
    """Unknown pages get an HTML 404 page; unknown /api/* paths keep the JSON error format."""

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        if exc.status_code != 404 or path.startswith(("/api/", "/static/")) or path == "/api":
            messages = {404: "Not found", 405: "Method not allowed"}
            message = messages.get(exc.status_code) or str(exc.detail)
            return JSONResponse(
                status_code=exc.status_code,
                content={"errors": [{"message": message}]},
                headers=getattr(exc, "headers", None),
            )
        page = render(request, "not_found.html", title="Page not found", script="not-found")
        page.status_code = 404
        return page

    # Registered after install_error_handlers, so it replaces the JSON-only HTTP error handler.
    app.add_exception_handler(StarletteHTTPException, not_found)
