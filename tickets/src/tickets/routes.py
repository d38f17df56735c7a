"""tickets' HTTP routes under /api/tickets: create, list for sale, show, edit."""

from common.auth import RequiredUser
from common.mongo import DatabaseDep, parse_object_id
from fastapi import APIRouter, status

from tickets import service
from tickets.models import TicketBody, TicketOut
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


@router.get("", response_model=list[TicketOut])
async def list_tickets(db: DatabaseDep) -> list[TicketOut]:
    return [TicketOut.from_document(ticket) for ticket in await service.list_for_sale(db)]


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
