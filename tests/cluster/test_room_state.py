"""A meeting that moves to another node (its host node killed) keeps its guest policy,
lock and removal bars; the state round trip keeps speaking totals too."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from cluster_nodes import client, mint_link, owner_of, slug

from mediaserver.client.sdk import ClientError
from mediaserver.cluster import roomstate
from mediaserver.lobby.identity import Bar, Identity


async def refused(c, message: dict) -> str:
    with pytest.raises(ClientError) as err:
        await c.request(message)
    return err.value.code


@pytest.mark.integration
async def test_moved_room_keeps_policy_lock_and_bars(cluster, clients):
    redis, (a, b, c) = cluster
    link = await mint_link(a, "kept")
    host_join = {"type": "join", "link": slug(link["host_url"]), "name": "Hana"}
    guest = {"type": "join", "link": slug(link["join_url"])}
    host = client(a.ws, "Hana", reconnect_seconds=60, reconnect_urls=[b.ws, c.ws])
    clients.append(host)
    await host.connect()
    joined = await host.join_with(host_join)
    assert joined["guest_policy"] == "lobby" and await owner_of(redis, link["id"]) == "node-a"
    await host.request({"type": "set_guest_policy", "policy": "allow"})
    gus = client(b.ws, "Gus")
    clients.append(gus)
    await gus.connect()
    admitted = await gus.request({**guest, "name": "Gus"})  # allow: no waiting room
    await host.request({"type": "remove_participant", "participant_id": admitted["participant_id"]})
    await host.request({"type": "lock_room", "locked": True})
    # a removal turns "allow" into "lobby" (docs/protocol.md §13); the host opens it again
    await host.request({"type": "set_guest_policy", "policy": "allow"})
    await asyncio.sleep(1.5)  # a heartbeat writes the room's state

    a.kill()
    await host.wait_for(lambda: host.reconnects >= 1, timeout=30)
    rejoined = [e for e in host.events if e["type"] == "joined"][-1]
    assert await owner_of(redis, link["id"]) in ("node-b", "node-c")
    assert rejoined["locked"] is True and rejoined["guest_policy"] == "allow"

    again = client(c.ws, "Gus")  # barred: removed for the rest of the meeting
    newcomer = client(b.ws, "Nina")
    clients += [again, newcomer]
    await again.connect()
    await newcomer.connect()
    assert await refused(again, {**guest, "name": "Gus"}) == "removed"
    assert await refused(newcomer, {**guest, "name": "Nina"}) == "room_locked"
    await host.request({"type": "lock_room", "locked": False})
    joined = await newcomer.request({**guest, "name": "Nina"})
    assert joined["type"] == "joined"  # "allow" still: admitted without waiting


def test_state_round_trip_keeps_settings_bars_and_speaking_totals():
    def fake_room(**kw):
        base = {
            "link_id": "lnk_1",
            "tenant_id": "tn_1",
            "max_participants": 0,
            "max_guests": 3,
            "guest_policy": "lobby",
            "share_url": "https://x/j/s",
            "title": "Standup",
            "locked": False,
            "recording_policy": "off",
            "media_locks": set(),
            "bar": Bar(),
            "speaking_carried": {},
            "participants": {},
        }
        return SimpleNamespace(**{**base, **kw})

    speaker = SimpleNamespace(identity=Identity("c1"), speaking_seconds=12.345)
    bar = Bar()
    bar.add(Identity("c9", user_id="u9", name_key="gus", invite_id="inv1", via_host_link=True))
    old = fake_room(
        locked=True,
        guest_policy="deny",
        recording_policy="always",
        media_locks={"audio"},
        bar=bar,
        speaking_carried={"c2": 3.0},
        participants={"p1": speaker},
    )
    new = fake_room(link_id=None, title="")
    roomstate.apply(new, roomstate.snapshot(old))
    assert new.locked is True and new.guest_policy == "deny" and new.title == "Standup"
    assert new.link_id == "lnk_1" and new.max_guests == 3 and new.media_locks == {"audio"}
    assert new.bar == bar and new.bar.host_link_suspended
    assert new.bar.bars(Identity("other", name_key="gus")) and not new.bar.bars(Identity("x"))
    assert new.speaking_carried == {"c1": 12.35, "c2": 3.0}
    assert new.recording_policy == "always"  # a moved meeting keeps its recording option
