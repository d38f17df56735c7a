"""The constraint payments leaves to its database, asserted on the database itself (MongoDB when
MONGO_URL is set, else the embedded store): at most one live charge per order, whichever replica
writes it."""

from typing import Any

import pytest
from bson import ObjectId
from fastapi import FastAPI
from payments.repository import CHARGES
from pymongo.errors import DuplicateKeyError


async def test_payments_creates_its_indexes_on_start(app: FastAPI, database: Any) -> None:
    info = await database[CHARGES].index_information()
    live = info["one_live_charge"]
    assert dict(live["key"]) == {"order_id": 1}
    assert live["unique"] is True
    assert live["partialFilterExpression"] == {"live": True}
    sparse = [spec for spec in info.values() if dict(spec["key"]) == {"refund_due": 1}]
    assert [spec.get("sparse") for spec in sparse] == [True]


async def test_one_live_charge_per_order_is_enforced_by_the_store(
    app: FastAPI, database: Any
) -> None:
    charges = database[CHARGES]
    order = str(ObjectId())
    await charges.insert_one({"order_id": order, "live": False, "status": "failed"})
    await charges.insert_one({"order_id": order, "live": False, "status": "failed"})
    live = await charges.insert_one({"order_id": order, "live": True, "status": "pending"})
    with pytest.raises(DuplicateKeyError):
        await charges.insert_one({"order_id": order, "live": True, "status": "pending"})
    await charges.update_one({"_id": live.inserted_id}, {"$set": {"live": False}})
    await charges.insert_one({"order_id": order, "live": True, "status": "pending"})
