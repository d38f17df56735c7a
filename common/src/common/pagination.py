"""Cursor pagination for lists that grow: ?limit= and ?cursor=, the next page in a Link header.

A page is the newest documents first (`created_at`, then `_id`, both descending); the cursor is
the position of the last document shown, opaque to clients (base64url of its created_at and
_id). The body stays a JSON array; the next page is announced by `Link: <...>; rel="next"`
(RFC 8288), absent on the last page. The query stays on an index that ends in
(created_at, _id): the filter's own fields, then those two.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from bson import ObjectId
from bson.errors import InvalidId
from fastapi import Depends, Query, Request, Response

from common.domain_errors import Invalid
from common.mongo import Collection, Document

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
SORT = [("created_at", -1), ("_id", -1)]


@dataclass(frozen=True)
class Position:
    """Where the previous page ended."""

    created_at: datetime
    id: ObjectId


def encode_cursor(document: Document) -> str:
    raw = json.dumps([document["created_at"].isoformat(), str(document["_id"])])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; Invalid (400) for anything this module did not write."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, document_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return Position(datetime.fromisoformat(created_at), ObjectId(document_id))
    except (binascii.Error, ValueError, TypeError, InvalidId, UnicodeDecodeError):
        raise Invalid(
            "cursor is not valid (use the Link header's next URL)", field="cursor"
        ) from None


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
            max_length=200,
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
