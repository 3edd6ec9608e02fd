"""Two aioice agents introduced to each other as signalling would (credentials and
every gathered candidate), over this machine's IPv4 host candidates (aioice leaves
loopback out): local traffic, no network."""

from __future__ import annotations

import aioice.ice


async def introduce(a: aioice.ice.Connection, b: aioice.ice.Connection) -> None:
    """Gather both agents' candidates and give each the other's; then ``connect()``."""
    for conn in (a, b):
        await conn.gather_candidates()
    for me, other in ((a, b), (b, a)):
        me.remote_username, me.remote_password = other.local_username, other.local_password
        for candidate in other.local_candidates:
            await me.add_remote_candidate(candidate)
        await me.add_remote_candidate(None)
