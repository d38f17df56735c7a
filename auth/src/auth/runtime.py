"""auth's runtime: what its routes are given, with its own settings typed."""

from dataclasses import dataclass, field
from typing import Annotated

from common.service import ServiceRuntime, get_runtime
from fastapi import Depends

from auth.passwords import PasswordHasher
from auth.settings import Settings


@dataclass
class AuthRuntime(ServiceRuntime[Settings]):
    # Created by the app's setup, sized from the container's memory, before any request.
    hasher: PasswordHasher = field(init=False)


RuntimeDep = Annotated[AuthRuntime, Depends(get_runtime)]
