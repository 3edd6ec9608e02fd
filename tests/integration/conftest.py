from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from server_helpers import Server, make_config, start_server

__all__ = ["Server", "make_config", "start_server"]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = await start_server(make_config(empty_timeout_seconds=1.0))
    try:
        yield srv
    finally:
        await srv.runner.cleanup()
