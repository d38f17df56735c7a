"""Cursor pagination for lists that grow: ?limit= and ?cursor=, the next page in a Link header.

A page is the newest documents first (`created_at`, then `_id`, both descending); the cursor is
the position of the last document shown, opaque to clients (its created_at in epoch
milliseconds and its _id). The body stays a JSON array; the next page is announced by
`Link: <...>; rel="next"` (RFC 8288), absent on the last page. The query stays on an index
that ends in (created_at, _id): the filter's own fields, then those two.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from bson import ObjectId
from fastapi import Depends, Query, Request, Response

from common.domain_errors import Invalid
from common.mongo import Collection, Document

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
SORT = [("created_at", -1), ("_id", -1)]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Milliseconds since the epoch (up to the year 2286) and the document's id: every string of this
# shape names a position, so a client (or a fuzzer) that follows the documented pattern never gets
# a 400 for a well-formed cursor.
CURSOR_PATTERN = r"[0-9]{1,13}-[0-9a-f]{24}"


@dataclass(frozen=True)
class Position:
    """Where the previous page ended."""

    created_at: datetime
    id: ObjectId


def encode_cursor(document: Document) -> str:
    created_at: datetime = document["created_at"]
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    # Stored datetimes keep milliseconds (MongoDB's precision), so this is exact.
    milliseconds = (created_at - EPOCH) // timedelta(milliseconds=1)
    return f"{milliseconds}-{document['_id']}"


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; Invalid (400) for anything this module did not write."""
    match = re.fullmatch(CURSOR_PATTERN, cursor)
    if match is None:
        raise Invalid("cursor is not valid (use the Link header's next URL)", field="cursor")
    milliseconds, document_id = cursor.split("-")
    return Position(EPOCH + timedelta(milliseconds=int(milliseconds)), ObjectId(document_id))


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: Position | None
    request: Request


def page_request(
    request: Request,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1-{MAX_LIMIT})."),
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            pattern=f"^{CURSOR_PATTERN}$",
            description="Where the next page starts: copied from the `Link` header's "
            '`rel="next"` URL, opaque to clients.',
        ),
    ] = None,
) -> PageRequest:
    return PageRequest(limit, decode_cursor(cursor) if cursor is not None else None, request)


PageDep = Annotated[PageRequest, Depends(page_request)]

# What the OpenAPI says about the Link header of a paginated list.
LINK_HEADER_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {
                "description": 'The next page, as `<url>; rel="next"` (RFC 8288); absent on '
                "the last page.",
                "schema": {"type": "string"},
            }
        }
    }
}


@dataclass(frozen=True)
class Page:
    documents: list[Document]
    next_cursor: str | None  # None on the last page


async def read_page(
    collection: Collection,
    filter: Document,
    *,
    limit: int,
    after: Position | None,
    projection: Document | None = None,
) -> Page:
    """Up to `limit` of `filter`'s documents after `after`, newest first (storage only)."""
    query = dict(filter)
    if after is not None:
        query["$or"] = [
            {"created_at": {"$lt": after.created_at}},
            {"created_at": after.created_at, "_id": {"$lt": after.id}},
        ]
    cursor = collection.find(query, projection).sort(SORT).limit(limit + 1)
    documents = [document async for document in cursor]
    if len(documents) <= limit:
        return Page(documents, None)
    return Page(documents[:limit], encode_cursor(documents[limit - 1]))


def link_next(response: Response, page: PageRequest, next_cursor: str | None) -> None:
    """Announce the next page in the Link header (RFC 8288); nothing on the last page."""
    if next_cursor is None:
        return
    params = urlencode({"limit": page.limit, "cursor": next_cursor})
    response.headers["Link"] = f'<{page.request.url.path}?{params}>; rel="next"'
