"""Hostile clients against admission (issue 10 §1), each against a real `mediaserver
serve` process: the revoke race, getting back in after a removal, and knock floods.

The attackers are raw WebSocket clients (no media), some of them from other loopback
source addresses (127.0.0.2, ...) to stand for other machines.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from server_helpers import (
    clean_env,
    cli_tenant_key,
    event,
    free_port,
    slug_of,
    spawn_server,
    stop_process,
)

pytestmark = pytest.mark.integration


class Proc:
    """A `mediaserver serve` process on SQLite with a tenant, and its API key."""

    def __init__(self, workdir: Path, rooms: dict[str, Any]) -> None:
        self.port = free_port()
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws"
        self.log = workdir / "server.log"
        self.config = workdir / "config.toml"
        room_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in rooms.items())
        self.config.write_text(
            f"""
[server]
port = {self.port}
shutdown_grace_seconds = 3.0
[rooms]
{room_lines}
[rtc]
ice_addresses = ["127.0.0.1"]
[state]
data_dir = "{workdir / "data"}"
[linkapi]
allow_private_webhook_urls = true
[signalling]
# the revoke race opens 100 guest sockets from 127.0.0.1 (the per-address caps are
# tested in test_signalling_attacks.py)
max_connections_per_address = 0
join_burst_per_address = 0
"""
        )
        self.env = clean_env()
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""
        self.links = 0

    async def start(self) -> None:
        self.key = cli_tenant_key(self.config, self.env)
        self.proc = spawn_server(self.config, self.log, self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                await self.health()
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        raise AssertionError("server did not start")

    def stop(self) -> None:
        stop_process(self.proc)

    async def health(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(self.http + "/healthz") as r:
            return dict(await r.json())

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.http + path, json=body, headers=headers) as r,
        ):
            assert r.status < 300, (r.status, await r.text())
            return await r.json() if r.content_length != 0 else None

    async def link(self, **options: Any) -> dict[str, Any]:
        self.links += 1  # one event per link (the same event gives the same link)
        body = {"event": event(f"evt-{self.links}"), "options": options}
        return dict(await self.api("POST", "/v1/links", body))


class Raw:
    """A signalling client without media, optionally from another source address."""

    def __init__(self, url: str, source: str = "127.0.0.1") -> None:
        self.url = url
        self.source = source
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self._ids = 0

    async def open(self) -> Raw:
        connector = aiohttp.TCPConnector(local_addr=(self.source, 0))
        self.session = aiohttp.ClientSession(connector=connector)
        self.ws = await self.session.ws_connect(self.url)
        self.reader = asyncio.ensure_future(self._read())
        await self.request({"type": "hello", "version": 1})
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                self.seen.append(data)
                await self.inbox.put(data)
        await self.inbox.put({"type": "_closed"})

    async def send(self, message: dict[str, Any]) -> Any:
        self._ids += 1
        await self.ws.send_json({**message, "id": self._ids})
        return self._ids

    async def request(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        ref = await self.send(message)
        return await self.wait(lambda m: m.get("ref") == ref, timeout)

    async def wait(self, pred: Any, timeout: float = 10.0) -> dict[str, Any]:
        async def loop() -> dict[str, Any]:
            while True:
                m = await self.inbox.get()
                if pred(m) or m["type"] == "_closed":
                    return m

        return await asyncio.wait_for(loop(), timeout)

    async def wait_type(self, mtype: str, timeout: float = 10.0) -> dict[str, Any]:
        return await self.wait(lambda m: m["type"] == mtype, timeout)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        await self.session.close()


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[Any]:
    procs: list[Proc] = []

    async def make(**rooms: Any) -> Proc:
        workdir = tmp_path / f"s{len(procs)}"
        workdir.mkdir()
        p = Proc(workdir, rooms)
        procs.append(p)
        await p.start()
        return p

    yield make
    for p in procs:
        p.stop()


@pytest.fixture
async def raws() -> AsyncIterator[Any]:
    made: list[Raw] = []

    async def make(url: str, source: str = "127.0.0.1") -> Raw:
        r = Raw(url, source)
        made.append(r)
        return await r.open()

    yield make
    for r in made:
        await r.close()


async def _host(raws: Any, srv: Proc, link: dict[str, Any], name: str = "Hana") -> Raw:
    host = await raws(srv.ws)
    reply = await host.request({"type": "join", "link": slug_of(link["host_url"]), "name": name})
    assert reply["type"] == "joined" and reply["role"] == "host", reply
    return host


async def _guest(raws: Any, srv: Proc, link: dict[str, Any], name: str, **kw: Any) -> Any:
    source = kw.pop("source", "127.0.0.1")
    g = await raws(srv.ws, source)
    reply = await g.request({"type": "join", "link": slug_of(link["join_url"]), "name": name, **kw})
    return g, reply


async def _admit(host: Raw, guest_reply: dict[str, Any], guest: Raw) -> str:
    assert guest_reply["type"] == "lobby", guest_reply
    await host.request({"type": "admit", "knock_id": guest_reply["knock_id"]})
    return str((await guest.wait_type("joined"))["participant_id"])


async def _remove(host: Raw, participant_id: str) -> None:
    done = await host.request({"type": "remove_participant", "participant_id": participant_id})
    assert done["type"] == "done", done


# --- the revoke race -------------------------------------------------------------------


async def test_revoke_race_leaves_no_room_open(make_server, raws):
    """With a host inside, 100 invite guests join in a burst while DELETE
    /v1/links/{id} runs: afterwards no room is open, nobody is in one, and every guest
    was refused or got room_closed. Three rounds (a race: one round may miss it)."""
    srv = await make_server(max_participants=200, empty_timeout_seconds=30.0)
    for _ in range(3):
        await _revoke_race_round(srv, raws)


async def _revoke_race_round(srv: Proc, raws: Any) -> None:
    link = await srv.link(guest_policy="allow")
    invite = await srv.api("POST", f"/v1/links/{link['id']}/guest-invites", {"max_guests": 100})
    token = parse_qs(urlsplit(invite["url"]).query)["invite"][0]
    host = await _host(raws, srv, link)
    guests = await asyncio.gather(*(raws(srv.ws) for _ in range(100)))
    slug = slug_of(link["join_url"])

    async def burst() -> None:  # a dense stream of joins over the ~20 ms the DELETE takes
        for i, g in enumerate(guests):
            await g.send({"type": "join", "link": slug, "invite": token})
            if i % 5 == 4:
                await asyncio.sleep(0.0005)

    await asyncio.gather(burst(), srv.api("DELETE", f"/v1/links/{link['id']}"))
    assert (await host.wait_type("room_closed"))["reason"] == "link_revoked"

    async def outcome(g: Raw) -> str:
        first = await g.wait(lambda m: m["type"] in ("joined", "error", "refused"))
        if first["type"] != "joined":
            return f"refused:{first.get('code')}"
        try:
            closed = await g.wait_type("room_closed", timeout=3.0)
        except TimeoutError:
            return "joined, never closed"
        return f"closed:{closed.get('reason')}"

    outcomes = Counter(await asyncio.gather(*(outcome(g) for g in guests)))
    assert set(outcomes) <= {"refused:link_revoked", "closed:link_revoked"}, outcomes
    health = await srv.health()
    assert (health["rooms"], health["participants"]) == (0, 0), health
    late = await raws(srv.ws)
    reply = await late.request({"type": "join", "link": slug, "invite": token})
    assert reply.get("code") == "link_revoked"
    assert (await srv.health())["rooms"] == 0
    for g in [*guests, host, late]:
        await g.close()


# --- the removal bar --------------------------------------------------------------------


@pytest.mark.parametrize("admit_with", ["admit_all", "set_guest_policy"])
async def test_second_gus_is_not_let_in_after_the_first_is_removed(make_server, raws, admit_with):
    srv = await make_server()
    link = await srv.link(guest_policy="lobby")
    host = await _host(raws, srv, link)
    gus1, reply = await _guest(raws, srv, link, "Gus")
    gus1_id = await _admit(host, reply, gus1)
    gus2, reply2 = await _guest(raws, srv, link, "Gus")
    assert reply2["type"] == "lobby"
    await _remove(host, gus1_id)
    if admit_with == "admit_all":
        await host.request({"type": "admit_all"})
    else:
        await host.request({"type": "set_guest_policy", "policy": "allow"})
    end = await gus2.wait(lambda m: m["type"] in ("joined", "refused", "error"))
    assert (end["type"], end.get("code")) == ("refused", "removed"), end
    assert (await srv.health())["participants"] == 1


@pytest.mark.parametrize(
    ("how", "name", "source", "keep_key"),
    [
        ("another name, same key, another address", "Someone Else", "127.0.0.2", True),
        ("zero-width look-alike name, no key, another address", "Xe\u200bna", "127.0.0.3", False),
        ("fullwidth look-alike name, no key", "\uff38\uff45\uff4e\uff41", "127.0.0.1", False),
    ],
)
async def test_removed_guest_cannot_come_back(make_server, raws, how, name, source, keep_key):
    srv = await make_server()
    link = await srv.link(guest_policy="lobby")
    host = await _host(raws, srv, link)
    xena, reply = await _guest(raws, srv, link, "Xena")
    key = reply["key"]
    await _remove(host, await _admit(host, reply, xena))
    _, back = await _guest(
        raws, srv, link, name, source=source, **({"key": key} if keep_key else {})
    )
    assert (back["type"], back.get("code")) == ("error", "removed"), (how, back)


async def test_removed_invite_guest_cannot_reuse_the_invite(make_server, raws):
    srv = await make_server()
    link = await srv.link(guest_policy="allow")
    invite = await srv.api("POST", f"/v1/links/{link['id']}/guest-invites", {"max_guests": 5})
    token = parse_qs(urlsplit(invite["url"]).query)["invite"][0]
    host = await _host(raws, srv, link)
    first = await raws(srv.ws)
    joined = await first.request(
        {"type": "join", "link": slug_of(link["join_url"]), "invite": token}
    )
    assert joined["type"] == "joined"
    await _remove(host, joined["participant_id"])
    again = await raws(srv.ws, "127.0.0.4")
    reply = await again.request(
        {"type": "join", "link": slug_of(link["join_url"]), "invite": token}
    )
    assert reply.get("code") == "removed", reply


async def test_allow_policy_turns_to_lobby_after_a_removal(make_server, raws):
    """Whoever comes back under a wholly new identity must pass the waiting room."""
    srv = await make_server()
    link = await srv.link(guest_policy="allow")
    host = await _host(raws, srv, link)
    _, joined = await _guest(raws, srv, link, "Mallory")
    assert joined["type"] == "joined"
    await _remove(host, joined["participant_id"])
    _, back = await _guest(raws, srv, link, "Totally New", source="127.0.0.5")
    assert back["type"] == "lobby", back


async def test_removed_host_url_holder_does_not_get_host_rights_back(make_server, raws):
    srv = await make_server()
    link = await srv.link(guest_policy="lobby")
    tok = await srv.api(
        "POST",
        f"/v1/links/{link['id']}/join-tokens",
        {"user_id": "u-owner", "name": "Owner", "role": "host"},
    )
    owner = await raws(srv.ws)
    joined = await owner.request(
        {"type": "join", "link": slug_of(link["join_url"]), "token": tok["token"]}
    )
    assert joined["role"] == "host"
    rogue = await _host(raws, srv, link, "Rogue")
    rogue_joined = next(m for m in rogue.seen if m["type"] == "joined")
    await _remove(owner, rogue_joined["participant_id"])
    host_slug = slug_of(link["host_url"])
    # the same browser (its key), under another name: removed
    again = await raws(srv.ws, "127.0.0.6")
    reply = await again.request(
        {"type": "join", "link": host_slug, "name": "Not Rogue", "key": rogue_joined["key"]}
    )
    assert reply.get("code") == "removed", reply
    # a private window (no key), another name, another address: a guest, who waits
    fresh = await raws(srv.ws, "127.0.0.7")
    reply = await fresh.request({"type": "join", "link": host_slug, "name": "Innocent"})
    assert reply["type"] == "lobby", reply
    bounced = await fresh.request(
        {"type": "remove_participant", "participant_id": joined["participant_id"]}
    )
    assert bounced.get("code") == "not_admitted"
    knock = await owner.wait_type("knock")
    await owner.request({"type": "admit", "knock_id": knock["knock"]["id"]})
    assert (await fresh.wait_type("joined"))["role"] == "guest"
    denied = await fresh.request(
        {"type": "remove_participant", "participant_id": joined["participant_id"]}
    )
    assert denied.get("code") == "forbidden"


# --- knock floods -----------------------------------------------------------------------


async def test_knock_flood_is_capped_per_address_and_per_room(make_server, raws):
    srv = await make_server(lobby_max_waiting=12, lobby_max_per_address=5)
    link = await srv.link(guest_policy="lobby")
    replies = []
    for i in range(24):  # 8 each from three addresses
        _, reply = await _guest(raws, srv, link, f"Bot {i}", source=f"127.0.1.{i % 3 + 1}")
        replies.append(reply)
    waiting = [r for r in replies if r["type"] == "lobby"]
    full = [r for r in replies if r.get("code") == "lobby_full"]
    assert (len(waiting), len(full)) == (12, 12), [r.get("code", r["type"]) for r in replies]
    # one address alone cannot fill the room's waiting room
    _, one_more = await _guest(raws, srv, link, "Bot x", source="127.0.1.1")
    assert one_more.get("code") == "lobby_full"
    host = await _host(raws, srv, link)
    joined = next(m for m in host.seen if m["type"] == "joined")
    assert joined["lobby_waiting"] == 12 and len(joined["lobby"]) <= 20
    assert len(json.dumps(joined)) < 8192
