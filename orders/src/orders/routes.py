"""orders' HTTP routes under /api/orders: reserve a ticket, list, show and cancel orders."""

from typing import cast

from bson import ObjectId
from common.auth import RequiredUser
from common.mongo import DatabaseDep, parse_object_id
from common.pagination import LINK_HEADER_DOC, PageDep, link_next
from fastapi import APIRouter, Response, status

from orders import service
from orders.models import OrderBody, OrderDocument, OrderOut
from orders.runtime import RuntimeDep

router = APIRouter(prefix="/api/orders", tags=["orders"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OrderOut)
async def create_order(
    body: OrderBody, user: RequiredUser, db: DatabaseDep, runtime: RuntimeDep
) -> OrderOut:
    order = await service.place_order(
        db, runtime.outbox, runtime.settings, ticket_id=ObjectId(body.ticket_id), user_id=user.id
    )
    return OrderOut.from_document(order)


@router.get("", response_model=list[OrderOut], responses=LINK_HEADER_DOC)
async def list_orders(
    user: RequiredUser, db: DatabaseDep, page: PageDep, response: Response
) -> list[OrderOut]:
    """The caller's orders, newest first, a page at a time (the next one in the Link header)."""
    found = await service.list_orders(db, user_id=user.id, limit=page.limit, after=page.after)
    link_next(response, page, found.next_cursor)
    return [OrderOut.from_document(cast(OrderDocument, order)) for order in found.documents]


@router.get("/{order_id}", response_model=OrderOut)
async def show_order(order_id: str, user: RequiredUser, db: DatabaseDep) -> OrderOut:
    # A malformed id names no order: 404, like any other id that does not exist.
    order = await service.show_order(
        db, order_id=parse_object_id(order_id, missing_is_404=True), user_id=user.id
    )
    return OrderOut.from_document(order)


@router.delete("/{order_id}", status_code=status.HTTP_204_NO_CONTENT)
async def cancel_order(
    order_id: str, user: RequiredUser, db: DatabaseDep, runtime: RuntimeDep
) -> Response:
    await service.cancel_by_buyer(
        db,
        runtime.outbox,
        order_id=parse_object_id(order_id, missing_is_404=True),
        user_id=user.id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
