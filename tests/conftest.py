from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from collections.abc import AsyncIterator

import pytest

from mediaserver.client.sdk import MeetingClient


@pytest.fixture
async def clients() -> AsyncIterator[list[MeetingClient]]:
    made: list[MeetingClient] = []
    yield made
    for c in made:
        await c.close()
