"""orders' HTTP routes under /api/orders: reserve a ticket, list, show and cancel orders."""

from datetime import timedelta
from typing import Annotated

from bson import ObjectId
from common.auth import RequiredUser
from common.domain_errors import Forbidden, NotFound
from common.mongo import DatabaseDep, parse_object_id
from common.types import ceil_to_millisecond, utc_now
from fastapi import APIRouter, Depends, Request, Response, status

from orders import buyer_limits, repository
from orders.models import OrderBody, OrderOut
from orders.runtime import RuntimeDep
from orders.settings import Settings

router = APIRouter(prefix="/api/orders", tags=["orders"])


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OrderOut)
async def create_order(
    body: OrderBody,
    user: RequiredUser,
    db: DatabaseDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> OrderOut:
    await buyer_limits.count_reserve_attempt(db, settings, user_id=user.id)
    ticket = await repository.find_ticket(db, ticket_id=ObjectId(body.ticket_id))
    if ticket is None:
        raise NotFound("Ticket not found")
    buyer_limits.refuse_own_ticket(ticket, user_id=user.id)
    # Up to a whole millisecond: what is stored, returned and published is then the same
    # instant, and never earlier than the full lock.
    expires_at = ceil_to_millisecond(
        utc_now() + timedelta(seconds=settings.order_expiration_seconds)
    )
    order = await buyer_limits.create_order_within_limit(
        db,
        runtime.outbox,
        ticket=ticket,
        user_id=user.id,
        expires_at=expires_at,
        limit=settings.orders_max_active_per_user,
    )
    return OrderOut.from_document(order)


@router.get("", response_model=list[OrderOut])
async def list_orders(user: RequiredUser, db: DatabaseDep) -> list[OrderOut]:
    orders = await repository.list_orders(db, user_id=user.id)
    return [OrderOut.from_document(order) for order in orders]


@router.get("/{order_id}", response_model=OrderOut)
async def show_order(order_id: str, user: RequiredUser, db: DatabaseDep) -> OrderOut:
    # A malformed id names no order: 404, like any other id that does not exist.
    order = await repository.find_order(db, order_id=parse_object_id(order_id, missing_is_404=True))
    if order is None:
        raise NotFound("Order not found")
    if order["user_id"] != user.id:
        raise Forbidden("This order belongs to someone else")
    return OrderOut.from_document(order)


@router.delete("/{order_id}", status_code=status.HTTP_204_NO_CONTENT)
async def cancel_order(
    order_id: str, user: RequiredUser, db: DatabaseDep, runtime: RuntimeDep
) -> Response:
    await repository.cancel_by_buyer(
        db,
        runtime.outbox,
        order_id=parse_object_id(order_id, missing_is_404=True),
        user_id=user.id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
