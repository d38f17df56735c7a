"""tickets' HTTP routes under /api/tickets: create, list for sale, the seller's own, show, edit."""

from typing import cast

from common.auth import RequiredUser
from common.mongo import DatabaseDep, parse_object_id
from common.pagination import LINK_HEADER_DOC, PageDep, link_next
from fastapi import APIRouter, Response, status

from tickets import service
from tickets.models import OwnTicketOut, TicketBody, TicketDocument, TicketOut
from tickets.runtime import RuntimeDep

router = APIRouter(prefix="/api/tickets", tags=["tickets"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TicketOut)
async def create_ticket(
    body: TicketBody, user: RequiredUser, db: DatabaseDep, runtime: RuntimeDep
) -> TicketOut:
    ticket = await service.create_ticket(
        db, runtime.outbox, title=body.title, price=body.price, user_id=user.id
    )
    return TicketOut.from_document(ticket)


@router.get("", response_model=list[TicketOut], responses=LINK_HEADER_DOC)
async def list_tickets(db: DatabaseDep, page: PageDep, response: Response) -> list[TicketOut]:
    """Tickets for sale, newest first, a page at a time (the next one in the Link header)."""
    found = await service.list_for_sale(db, limit=page.limit, after=page.after)
    link_next(response, page, found.next_cursor)
    return [TicketOut.from_document(cast(TicketDocument, ticket)) for ticket in found.documents]


@router.get("/mine", response_model=list[OwnTicketOut], responses=LINK_HEADER_DOC)
async def list_my_tickets(
    user: RequiredUser, db: DatabaseDep, page: PageDep, response: Response
) -> list[OwnTicketOut]:
    """The caller's own tickets with their state (for sale, reserved, sold), newest first."""
    found = await service.list_own(db, user_id=user.id, limit=page.limit, after=page.after)
    link_next(response, page, found.next_cursor)
    return [
        OwnTicketOut.from_own_document(cast(TicketDocument, ticket)) for ticket in found.documents
    ]


@router.get("/{ticket_id}", response_model=TicketOut)
async def show_ticket(ticket_id: str, db: DatabaseDep) -> TicketOut:
    # A malformed id names no ticket: 404, like any other id that does not exist.
    ticket = await service.show_ticket(
        db, ticket_id=parse_object_id(ticket_id, missing_is_404=True)
    )
    return TicketOut.from_document(ticket)


@router.put("/{ticket_id}", response_model=TicketOut)
async def edit_ticket(
    ticket_id: str, body: TicketBody, user: RequiredUser, db: DatabaseDep, runtime: RuntimeDep
) -> TicketOut:
    ticket = await service.edit_ticket(
        db,
        runtime.outbox,
        ticket_id=parse_object_id(ticket_id, missing_is_404=True),
        user_id=user.id,
        title=body.title,
        price=body.price,
    )
    return TicketOut.from_document(ticket)
