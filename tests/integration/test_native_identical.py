"""Real peers, native path: what a subscriber decrypts with its own SRTP keys is, byte
for byte, what the pure-Python reference builds from the same inbound packets.

From a moment in a running meeting (publisher: tone + colour video, VP8/Opus), every
inbound packet of each publication is recorded along with the state of the native
outputs at that moment; the reference ForwardingTrack/OutputStream, started from that
state, replays the packets; every packet the subscriber's aiortc receives (after SRTP)
on those outputs must equal the reference's packet with the same sequence number.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from media import ColourTrack, ToneTrack, receive_frames
from server_helpers import join_room

from mediaserver.sfu import fastpath
from mediaserver.sfu.forwarder import ForwardingTrack, OutputStream

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(fastpath.PATH != "native", reason=f"native path: {fastpath.REASON}"),
]

_STATE = ("_seq_offset", "_ts_offset", "_next_seq", "_started_at_seq", "_resync", "_rebase_ts")


def _reference_of(track: Any) -> ForwardingTrack:
    """A Python twin of a native track, in the state its outputs are in now."""
    twin = ForwardingTrack(track.codec, video=track.video, ext_ids=track.ext_ids)
    twin.muted = track.muted
    for o in track.outputs:
        t = OutputStream(o.params, o.subscriber_id, video=track.video)
        for name in (*_STATE, "active", "waiting_keyframe", "packets", "octets", "last_rtp_ts"):
            setattr(t, name, getattr(o, name))
        twin.outputs.append(t)
    return twin


async def test_subscriber_decrypts_exactly_the_reference_packets(server, clients, monkeypatch):
    recording = False
    twins: dict[int, ForwardingTrack] = {}
    expected: dict[tuple[int, int], bytes] = {}  # (output ssrc, seq) -> reference packet
    original_route = fastpath.NativeForwardingTrack.route

    def route(self: Any, data: bytes, now: float) -> Any:
        if recording:
            twin = twins.get(id(self))
            if twin is None:
                twin = twins[id(self)] = _reference_of(self)  # before this packet
            for o, pkt in twin.route(data, now)[0]:
                expected[(o.params.ssrc, struct.unpack_from("!H", pkt, 2)[0])] = pkt
        return original_route(self, data, now)

    monkeypatch.setattr(fastpath.NativeForwardingTrack, "route", route)

    received: list[bytes] = []
    hooked: set[int] = set()

    def hook(pc: Any) -> None:
        for t in pc.getTransceivers():
            dtls = t.receiver.transport
            if dtls is None or id(dtls) in hooked:
                continue
            hooked.add(id(dtls))
            original = dtls._handle_rtp_data

            async def handle(data: bytes, arrival_time_ms: int, original: Any = original) -> None:
                if recording:
                    received.append(data)  # clear RTP: SRTP removed with the client's keys
                await original(data, arrival_time_ms)

            dtls._handle_rtp_data = handle

    publisher, subscriber = server.client("pub"), server.client("sub")
    clients += [publisher, subscriber]
    subscriber.subscriber_hook = hook
    for c in (publisher, subscriber):
        await c.connect()
        await join_room(c, "same")
    await publisher.publish([ToneTrack(440), ColourTrack((200, 30, 30))])
    tracks = await subscriber.wait_for_tracks(2, timeout=20)
    for t in tracks:
        await receive_frames(t.track, 5, timeout=10)  # media flows, natively by now
    sent_before = fastpath.status()["native_packets"]

    recording = True
    await asyncio.sleep(2.0)
    recording = False
    await asyncio.sleep(0.2)  # the last packets in flight

    assert int(str(fastpath.status()["native_packets"])) > int(str(sent_before))
    matched = 0
    for pkt in received:
        key = (struct.unpack_from("!I", pkt, 8)[0], struct.unpack_from("!H", pkt, 2)[0])
        if key in expected:
            assert pkt == expected[key], f"packet {key} differs from the reference"
            matched += 1
    kinds = {key[0] for key in expected}
    assert len(kinds) == 2, "audio and video outputs were both compared"
    # Nearly everything the reference built arrived (loopback) and was compared.
    assert matched >= 0.9 * len(expected) > 100, (matched, len(expected), len(received))
