"""Three real node processes and a real redis-server (started here on a free port)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest
from cluster_nodes import (
    ROOT,
    Node,
    client,
    create_tenant,
    mint_link,
    owner_of,
    post_link,
    sees_colour,
    slug,
)
from media import COLOURS, ColourTrack, ToneTrack
from redis_server import RedisServer
from server_helpers import ADHOC_ENV, join_room, room_token

from mediaserver.client.sdk import ClientError

pytestmark = pytest.mark.integration


async def test_clients_on_two_nodes_meet_on_a_third(cluster, clients):
    redis, (a, b, c) = cluster
    # some load on a and b: the least-loaded node (c) gets the new room
    for node in (a, b):
        filler = client(node.ws, "filler")
        clients.append(filler)
        await filler.connect()
        await join_room(filler, f"filler-{node.name}")
    await asyncio.sleep(1.2)  # heartbeats carry the load
    # joins without a valid room token are refused before placement: no lease anywhere
    probe = client(a.ws, "mallory")
    clients.append(probe)
    await probe.connect()
    for token, code in ((None, "token_required"), (room_token("other", "m"), "invalid_token")):
        with pytest.raises(ClientError) as exc:
            await probe.join_with({"type": "join", "room": "meet", "name": "m", "token": token})
        assert exc.value.code == code
    assert await owner_of(redis, "meet") == ""
    x = client(a.ws, "via-a")
    y = client(b.ws, "via-b")
    clients += [x, y]
    for i, cl in enumerate((x, y)):
        await cl.connect()
        joined = await join_room(cl, "meet")
        assert joined["room"] == "meet"
        await cl.publish([ToneTrack(), ColourTrack(COLOURS[i])])
    assert await owner_of(redis, "meet") == "node-c"
    await sees_colour(x, 1)
    await sees_colour(y, 0)
    health = {n.name: await n.health() for n in (a, b, c)}
    assert health["node-c"]["participants"] == 2  # the room and its media are on c


async def test_concurrent_first_joins_end_in_one_room(cluster, clients):
    redis, (a, b, _) = cluster
    people = [client((a if i % 2 else b).ws, f"p{i}") for i in range(50)]
    clients += people
    await asyncio.gather(*(p.connect() for p in people))
    replies = await asyncio.gather(*(join_room(p, "race") for p in people))
    assert all(r["room"] == "race" for r in replies)
    owner = await owner_of(redis, "race")
    health = {n.name: await n.health() for n in cluster[1]}
    assert health[owner]["participants"] == 50
    assert sum(h["participants"] for h in health.values()) == 50


async def test_owner_killed_media_resumes(cluster, clients):
    redis, (a, b, c) = cluster
    for node in (a, b):
        filler = client(node.ws, "filler")
        clients.append(filler)
        await filler.connect()
        await join_room(filler, f"filler-{node.name}")
    await asyncio.sleep(1.2)
    x = client(a.ws, "x", reconnect_seconds=30)
    y = client(b.ws, "y", reconnect_seconds=30)
    clients += [x, y]
    for i, cl in enumerate((x, y)):
        await cl.connect()
        await cl.join_with(
            {"type": "join", "room": "moving", "token": room_token("moving", cl.name)}
        )
        await cl.publish_with(lambda i=i: [ToneTrack(), ColourTrack(COLOURS[i])])
    assert await owner_of(redis, "moving") == "node-c"
    await sees_colour(x, 1)
    killed_at = time.monotonic()
    c.kill()
    await x.wait_for(lambda: x.reconnects >= 1, timeout=20)
    await y.wait_for(lambda: y.reconnects >= 1, timeout=20)
    await sees_colour(x, 1, timeout=15)
    await sees_colour(y, 0, timeout=15)
    assert time.monotonic() - killed_at < 10, "media took longer than 10 s to come back"
    assert await owner_of(redis, "moving") in ("node-a", "node-b")


async def test_redis_outage_keeps_media_and_refuses_joins_clearly(cluster, clients):
    redis, (a, b, _) = cluster
    x = client(a.ws, "x")
    y = client(a.ws, "y")
    z = client(b.ws, "z")  # relayed through b to the room on a
    clients += [x, y, z]
    for i, cl in enumerate((x, y, z)):
        await cl.connect()
        await join_room(cl, "steady")
        await cl.publish([ToneTrack(), ColourTrack(COLOURS[i])])
    await sees_colour(x, 1)
    video = next(t for t in x.live_tracks() if t.kind == "video")
    relayed_video = next(t for t in await z.wait_for_tracks(4) if t.kind == "video")
    redis.stop()
    outage_started = time.monotonic()
    frames = 0
    # relayed signalling sent during the outage waits and is answered afterwards
    pinged = asyncio.ensure_future(z.request({"type": "ping"}, timeout=30))
    late = client(b.ws, "late")
    clients.append(late)
    await late.connect()
    with pytest.raises(ClientError) as err:
        await join_room(late, "steady")
    assert err.value.code == "unavailable"
    # shorter than the lease (3 s): the host keeps its room (a longer outage fences it)
    while time.monotonic() - outage_started < 2:
        await asyncio.wait_for(video.track.recv(), 2)  # media never stops
        await asyncio.wait_for(relayed_video.track.recv(), 2)  # for relayed clients too
        frames += 1
    assert frames > 20
    redis.start()
    assert (await pinged)["type"] == "pong"
    await asyncio.sleep(2.0)  # heartbeats and leases come back
    again = client(b.ws, "again")
    clients.append(again)
    await again.connect()
    joined = await join_room(again, "steady")
    assert joined["room"] == "steady" and len(joined["participants"]) == 3
    assert z.errors == [] and not any(e["type"] == "room_closed" for e in z.events)


async def test_lobby_across_nodes(cluster, clients):
    _, (a, b, _) = cluster
    link = await mint_link(a, "x-node")
    slug = link["join_url"].split("/j/")[1]
    host_slug = link["host_url"].split("/j/")[1]
    host = client(a.ws, "Hana")
    guest = client(b.ws, "Gus")
    clients += [host, guest]
    await host.connect()
    await guest.connect()
    await host.request({"type": "join", "link": host_slug, "name": "Hana"})
    waiting = await guest.request({"type": "join", "link": slug, "name": "Gus"})
    assert waiting["type"] == "lobby" and waiting["host_present"] is True
    await host.wait_for(lambda: any(e["type"] == "knock" for e in host.events), timeout=10)
    knock = next(e for e in host.events if e["type"] == "knock")
    await host.request({"type": "admit", "knock_id": knock["knock"]["id"]})
    await guest.wait_for(lambda: any(e["type"] == "joined" for e in guest.events), timeout=10)
    joined = next(e for e in guest.events if e["type"] == "joined")
    assert joined["role"] == "guest" and [p["name"] for p in joined["participants"]] == ["Hana"]
    assert json.dumps(joined)  # a plain JSON message travelled node to node


async def test_invite_revoked_on_another_node_sends_its_waiting_guest_away(cluster, clients):
    """DELETE of a guest invite on a node that does not host the meeting: the owner
    sends away the guest waiting through it (docs/linkapi.md §9), the host is told."""
    redis, nodes = cluster
    a, b, _ = nodes
    key = create_tenant(a)
    link = await post_link(a, key, "x-node-invite")
    auth = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=auth) as s:
        async with s.post(f"{a.http}/v1/links/{link['id']}/guest-invites", json={}) as r:
            assert r.status == 201
            invite = await r.json()
    host = client(a.ws, "Hana")
    guest = client(b.ws, "Gus")
    clients += [host, guest]
    await host.connect()
    await guest.connect()
    await host.request({"type": "join", "link": slug(link["host_url"]), "name": "Hana"})
    token = invite["url"].split("invite=", 1)[1]
    waiting = await guest.request(
        {"type": "join", "link": slug(link["join_url"]).split("?")[0], "invite": token}
    )
    assert waiting["type"] == "lobby"
    owner = await owner_of(redis, link["id"])
    other = next(n for n in nodes if n.name != owner)
    async with aiohttp.ClientSession(headers=auth) as s:
        path = f"{other.http}/v1/links/{link['id']}/guest-invites/{invite['id']}"
        async with s.delete(path) as r:
            assert r.status == 200 and (await r.json())["status"] == "revoked"
    await guest.wait_for(lambda: any(e["type"] == "refused" for e in guest.events), timeout=10)
    refused = next(e for e in guest.events if e["type"] == "refused")
    assert refused["code"] == "invalid_invite"
    await host.wait_for(lambda: any(e["type"] == "knock_resolved" for e in host.events), timeout=10)


async def test_workers_share_the_port_as_cluster_nodes(tmp_path):
    import redis.asyncio as aioredis

    redis = RedisServer(tmp_path / "redis")
    redis.start()
    node = Node("multi", redis.url, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASERVER_")} | ADHOC_ENV
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mediaserver",
            "serve",
            "--workers",
            "2",
            "--config",
            str(node.config),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    node.proc = proc
    try:
        await node.ready()
        r = aioredis.from_url(redis.url)
        try:
            for _ in range(50):
                alive = [k async for k in r.scan_iter("ms:node:*")]
                if len(alive) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await r.aclose()
        assert sorted(k.decode() for k in alive) == ["ms:node:multi-w0", "ms:node:multi-w1"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.get_running_loop().run_in_executor(None, proc.wait, 20) == 0
    finally:
        node.stop()
        redis.kill()
        redis.close()


async def test_host_keeps_role_after_its_node_dies(cluster, clients):
    redis, (a, b, _) = cluster
    link = await mint_link(a, "failover")
    host_slug = link["host_url"].split("/j/")[1]
    host = client(a.ws, "Hana", reconnect_urls=[b.ws], reconnect_seconds=30)
    clients.append(host)
    await host.connect()
    joined = await host.join_with({"type": "join", "link": host_slug, "name": "Hana"})
    assert joined["role"] == "host"
    owner = await owner_of(redis, link["id"])
    assert owner == "node-a"  # the least-loaded tie goes to the node the join came through
    a.kill()
    await host.wait_for(lambda: host.reconnects >= 1, timeout=20)
    rejoined = [e for e in host.events if e["type"] == "joined"][-1]
    assert rejoined["role"] == "host"
    assert await owner_of(redis, link["id"]) in ("node-b", "node-c")
