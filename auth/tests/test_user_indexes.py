"""The constraint auth leaves to its database, asserted on the database itself (MongoDB when
MONGO_URL is set, else the embedded store): one account per email, whichever replica signs up."""

from typing import Any

import pytest
from auth.repository import USERS
from fastapi import FastAPI
from pymongo.errors import DuplicateKeyError


async def test_one_account_per_email_key_is_enforced_by_the_store(
    app: FastAPI, database: Any
) -> None:
    info = await database[USERS].index_information()
    unique = [spec for spec in info.values() if dict(spec["key"]) == {"email_key": 1}]
    assert [spec.get("unique") for spec in unique] == [True]
    await database[USERS].insert_one({"email_key": "a-key"})
    with pytest.raises(DuplicateKeyError):
        await database[USERS].insert_one({"email_key": "a-key"})
    await database[USERS].insert_one({"email_key": "another-key"})
