"""A bot's publish that retries ``busy`` as docs/protocol.md asks clients to.

At full room 25 every arrival makes the 24 earlier subscribers renegotiate, and their
answers queue for the node's SDP slots (``signalling.max_concurrent_sdp``/
``max_queued_sdp``); a newcomer's ``publish`` arriving then is refused with ``busy``
("try again in a moment"). The client SDK does not retry; a bot that gave up would end
the whole scenario, so it retries the same offer with a growing pause (the join time
includes the retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiortc import MediaStreamTrack, RTCSessionDescription

from mediaserver.client.sdk import ClientError, MeetingClient

__all__ = ["BUSY_RETRIES", "publish_retrying"]

BUSY_RETRIES = 12


async def publish_retrying(client: MeetingClient, tracks: Sequence[MediaStreamTrack]) -> int:
    """``client.publish(tracks)``; returns how many ``busy`` replies it had to retry."""
    try:
        await client.publish(tracks)
        return 0
    except ClientError as exc:
        if exc.code != "busy":
            raise
    pc = client.publisher
    assert pc is not None and pc.localDescription is not None
    offer = pc.localDescription.sdp
    for attempt in range(1, BUSY_RETRIES + 1):
        await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
        try:
            reply = await client.request({"type": "publish", "sdp": offer})
        except ClientError as exc:
            if exc.code != "busy":
                raise
            continue
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        client.publications = list(reply["publications"])
        return attempt
    raise TimeoutError(f"publish: still busy after {BUSY_RETRIES} retries")
