"""Fixtures shared by common's tests."""

from typing import Any

import mongomock
import pytest


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The `_id` of each document mongomock tests against a filter, from now on."""
    tested: list[Any] = []
    applies = mongomock.filtering.filter_applies

    def counting(filter: Any, document: Any) -> bool:
        tested.append(document.get("_id"))
        return bool(applies(filter, document))

    monkeypatch.setattr("mongomock.filtering.filter_applies", counting)
    monkeypatch.setattr("mongomock.collection.filter_applies", counting)
    return tested
