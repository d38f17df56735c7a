"""The constraints orders leaves to its database, asserted on the database itself (MongoDB when
MONGO_URL is set, else the embedded store): the indexes the service creates on start, and what
they refuse. The routes' tests show the same through the API; these show the store enforces it
even for two replicas racing, where no application check could."""

from typing import Any

import pytest
from bson import ObjectId
from fastapi import FastAPI
from orders.repository import ORDERS
from pymongo.errors import DuplicateKeyError


async def indexes_by_name(collection: Any) -> dict[str, dict[str, Any]]:
    info = await collection.index_information()
    return {name: {**spec, "key": dict(spec["key"])} for name, spec in info.items()}


async def test_orders_creates_its_partial_unique_indexes_on_start(
    app: FastAPI, database: Any
) -> None:
    indexes = await indexes_by_name(database[ORDERS])
    active = indexes["one_active_order_per_ticket"]
    assert active["key"] == {"ticket_id": 1}
    assert active["unique"] is True
    assert active["partialFilterExpression"] == {"active": True}
    slot = indexes["one_unpaid_order_per_buyer_slot"]
    assert slot["key"] == {"user_id": 1, "buyer_slot": 1}
    assert slot["unique"] is True
    assert slot["partialFilterExpression"] == {"holds_slot": True}


async def test_one_active_order_per_ticket_is_enforced_by_the_store(
    app: FastAPI, database: Any
) -> None:
    orders = database[ORDERS]
    ticket = ObjectId()
    # Any number of orders that no longer hold the ticket.
    await orders.insert_one({"ticket_id": ticket, "active": False, "status": "cancelled"})
    await orders.insert_one({"ticket_id": ticket, "active": False, "status": "cancelled"})
    first = await orders.insert_one({"ticket_id": ticket, "active": True, "status": "created"})
    with pytest.raises(DuplicateKeyError):
        await orders.insert_one({"ticket_id": ticket, "active": True, "status": "created"})
    # Another ticket is not held by it.
    await orders.insert_one({"ticket_id": ObjectId(), "active": True, "status": "created"})
    # Once the first stops holding the ticket, the ticket can be ordered again.
    await orders.update_one(
        {"_id": first.inserted_id}, {"$set": {"active": False, "status": "cancelled"}}
    )
    await orders.insert_one({"ticket_id": ticket, "active": True, "status": "created"})
    assert await orders.count_documents({"ticket_id": ticket, "active": True}) == 1


async def test_a_buyer_slot_holds_one_unpaid_order(app: FastAPI, database: Any) -> None:
    orders = database[ORDERS]
    buyer = "64c000000000000000000002"
    await orders.insert_one({"user_id": buyer, "buyer_slot": 0, "holds_slot": True})
    with pytest.raises(DuplicateKeyError):
        await orders.insert_one({"user_id": buyer, "buyer_slot": 0, "holds_slot": True})
    await orders.insert_one({"user_id": buyer, "buyer_slot": 1, "holds_slot": True})
    # Released slots (paid or cancelled orders) pile up freely.
    await orders.insert_one({"user_id": buyer, "buyer_slot": 0, "holds_slot": False})
    await orders.insert_one({"user_id": buyer, "buyer_slot": 0, "holds_slot": False})
