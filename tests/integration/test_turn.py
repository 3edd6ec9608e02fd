"""TURN with short-lived credentials against a real coturn (Debian's turnserver)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator

import pytest
from aioice import turn
from media import COLOURS, ColourTrack, ToneTrack, receive_frames
from server_helpers import join_room, make_config, start_server
from test_udp_port import free_udp_port
from turn_server import TurnServer, running_turn

from mediaserver.client.sdk import MeetingClient
from mediaserver.sfu.peer import configure_udp_mux
from mediaserver.sfu.turn import turn_credentials

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def coturn() -> Iterator[TurnServer]:
    with running_turn() as server:
        yield server


async def _allocate(coturn: TurnServer, username: str, password: str) -> None:
    transport, _ = await turn.create_turn_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", coturn.port), username, password
    )
    transport.close()


async def test_credentials_are_checked_by_coturn(coturn):
    username, password = turn_credentials(coturn.secret, "PA_x", 600)
    await _allocate(coturn, username, password)  # fresh and rightly signed: allocated
    expired = turn_credentials(coturn.secret, "PA_x", 600, now=time.time() - 3600)
    wrong = turn_credentials("not-the-secret-of-this-server", "PA_x", 600)
    for bad in (expired, wrong):
        with pytest.raises(Exception, match="401"):
            await _allocate(coturn, *bad)


@pytest.mark.parametrize("udp_port", [False, True], ids=["port-per-connection", "one-port"])
async def test_relay_only_client_exchanges_media_through_coturn(coturn, clients, udp_port):
    config = make_config()
    rtc = dataclasses.replace(config.rtc, udp_port=free_udp_port() if udp_port else 0)
    turn_cfg = dataclasses.replace(config.turn, urls=(coturn.url(),), secret=coturn.secret)
    srv = await start_server(dataclasses.replace(config, rtc=rtc, turn=turn_cfg))
    try:
        relayed = MeetingClient(
            srv.ws_url, name="relayed", ice_addresses=["127.0.0.1"], ice_transport_policy="relay"
        )
        direct = srv.client("direct")
        clients += [relayed, direct]
        for i, c in enumerate((relayed, direct)):
            await c.connect()
            joined = await join_room(c, "turned")
            (server,) = joined["ice_servers"]
            expiry, _, participant = server["username"].partition(":")
            assert participant == c.participant_id and int(expiry) > time.time() + 3000
            await c.publish([ToneTrack(), ColourTrack(COLOURS[i])])
        for c in (relayed, direct):
            for t in await c.wait_for_tracks(2, timeout=30):
                await receive_frames(t.track, 5, timeout=15)
        for pc in (relayed.publisher, relayed.subscriber):
            assert pc is not None and pc.connectionState == "connected"
            gatherer = pc.getTransceivers()[0].sender.transport.transport.iceGatherer
            types = {cand.type for cand in gatherer.getLocalCandidates()}
            assert types == {"relay"}, types
    finally:
        await srv.runner.cleanup()
        configure_udp_mux(None)
