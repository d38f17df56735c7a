"""The query audit flags a query no declared index answers, and only such a query."""

from typing import Any

import pytest
from gittix_testing.query_audit import QueryLog, RecordingDatabase

from common import embedded_store


@pytest.mark.parametrize(
    ("query", "sort", "scan"),
    [
        ({"_id": 1}, None, False),
        ({"order_id": None}, [("created_at", -1)], False),
        ({"order_id": None, "title": "x"}, None, False),
        ({"title": "x"}, None, True),
        ({"order_id": None}, [("price", 1)], True),
        ({"order_id": {"$ne": None}}, None, True),
        ({"outbox.id": {"$exists": True}}, None, False),
        ({"state": "pending"}, None, True),
        ({"$or": [{"_id": 1}, {"order_id": "o"}]}, None, False),
        ({"$or": [{"_id": 1}, {"title": "o"}]}, None, True),
        ({}, None, False),
    ],
)
async def test_a_query_is_flagged_exactly_when_no_index_answers_it(
    query: dict[str, Any], sort: list[tuple[str, int]] | None, scan: bool
) -> None:
    raw = embedded_store.client()["audit"]
    await raw.tickets.create_index([("order_id", 1), ("created_at", -1)])
    await raw.tickets.create_index(
        [("outbox.id", 1)], partialFilterExpression={"outbox.id": {"$exists": True}}
    )
    database = RecordingDatabase(raw, QueryLog())

    namespace: dict[str, Any] = {"__name__": "tickets.repository"}
    exec(  # a function whose frame belongs to a service module, as a repository's would
        "async def issue(database, query, sort):\n"
        "    cursor = database.tickets.find(query)\n"
        "    if sort:\n"
        "        cursor = cursor.sort(sort)\n"
        "    await cursor.to_list(None)\n",
        namespace,
    )
    await namespace["issue"](database, query, sort)
    await database.tickets.find({"title": "the test's own read is not audited"}).to_list(None)

    flagged = await database.unindexed_queries()
    assert [q.filter for q in flagged] == ([query] if scan else [])
