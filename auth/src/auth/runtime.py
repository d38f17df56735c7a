"""auth's runtime: what its routes are given, with its own settings typed."""

from typing import Annotated

from common.service import ServiceRuntime, get_runtime
from fastapi import Depends

from auth.settings import Settings


class AuthRuntime(ServiceRuntime[Settings]):
    """auth holds nothing beyond what every service holds."""


RuntimeDep = Annotated[AuthRuntime, Depends(get_runtime)]
