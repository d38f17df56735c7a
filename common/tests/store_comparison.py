"""For comparing the embedded store with mongomock's own code: the methods it patches for reads,
and a block that runs mongomock's originals instead."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from mongomock.collection import Collection, Cursor

# The embedded store's read shortcuts (common.embedded_store.install).
READS: list[tuple[Any, str]] = [
    (Collection, "_iter_documents"),
    (Collection, "find_one"),
    (Cursor, "_compute_results"),
]


@contextmanager
def mongomock_own(methods: Iterable[tuple[Any, str]] = READS) -> Iterator[None]:
    """Inside the block, each of `methods` is mongomock's own (the function the store wrapped)."""
    with pytest.MonkeyPatch.context() as patch:
        for owner, name in methods:
            patch.setattr(owner, name, getattr(owner, name).__wrapped__)
        yield


def in_order(value: Any) -> Any:
    """A value with each document's keys in their order (== on dicts alone ignores it)."""
    if isinstance(value, dict):
        return [(key, in_order(item)) for key, item in value.items()]
    if isinstance(value, list | tuple):
        return [in_order(item) for item in value]
    return value
