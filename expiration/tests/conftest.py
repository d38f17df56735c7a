"""expiration's fixtures: the common plugin's app/client/bus, built from expiration's create_app."""

from collections.abc import Callable

import pytest
from expiration.app import create_app
from fastapi import FastAPI


@pytest.fixture
def app_factory() -> Callable[..., FastAPI]:
    return create_app
