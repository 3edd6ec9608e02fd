"""Anonymous abuse of ad-hoc rooms, against a real `mediaserver serve` process.

Issue 10, "Open media relay": a join by room id used to create and use a room without
any credential. Now ad-hoc rooms are off by default, and when they are on every join
by room needs a room token signed with the server's key. Every refusal here must have
its precise code and must not create a room (the /healthz room count stays the same).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from server_helpers import (
    ADHOC_ENV,
    clean_env,
    event,
    free_port,
    room_token,
    spawn_server,
    stop_process,
    wait_healthy,
)

from linkapi.secrets_ import RoomClaims, sign_room_token
from mediaserver.client.sdk import ClientError, MeetingClient

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """`mediaserver serve` on a free port with its own SQLite store."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws"
        self.config = workdir / "config.toml"
        self.config.write_text(
            f"[server]\nport = {self.port}\nshutdown_grace_seconds = 2.0\n"
            f'[rtc]\nice_addresses = ["127.0.0.1"]\n'
            f"[rooms]\nempty_timeout_seconds = 300.0\n"  # rooms made here stay countable
            f'[state]\ndata_dir = "{workdir / "data"}"\n'
        )
        self.env = clean_env(env)
        self.proc = spawn_server(self.config, workdir / "server.log", self.env)
        asyncio.run(wait_healthy(self.http, self.proc))

    def cli(self, *args: str) -> str:
        """``mediaserver <args> --config <this server's config>``: its last line."""
        out = subprocess.run(
            [sys.executable, "-m", "mediaserver", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]

    async def rooms(self) -> int:
        async with aiohttp.ClientSession() as s, s.get(self.http + "/healthz") as r:
            return int((await r.json())["rooms"])

    async def api(self, key: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            aiohttp.ClientSession(headers=headers) as s,
            s.post(self.http + "/v1" + path, json=body) as r,
        ):
            return r.status, await r.json(content_type=None)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The shipped defaults: no ad-hoc rooms."""
    srv = ServerProcess(tmp_path_factory.mktemp("default"), {})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def adhoc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """rooms.adhoc on, tokens signed with the tests' key (server_helpers.TOKEN_SECRET)."""
    srv = ServerProcess(tmp_path_factory.mktemp("adhoc"), ADHOC_ENV)
    yield srv
    srv.stop()


async def join(url: str, message: dict[str, Any]) -> dict[str, Any]:
    """Connect, hello, send ``message`` (a join); the reply (joined) or raise."""
    c = MeetingClient(url, name="mallory", ice_addresses=["127.0.0.1"])
    try:
        await c.connect()
        return await c.join_with(message)
    finally:
        await c.close()


async def refused(srv: ServerProcess, message: dict[str, Any], code: str) -> str:
    """``message`` is refused with ``code`` and no room comes into existence."""
    before = await srv.rooms()
    with pytest.raises(ClientError) as exc:
        await join(srv.ws, {"type": "join", **message})
    assert exc.value.code == code, exc.value
    assert await srv.rooms() == before, "a refused join created a room"
    return exc.value.message


async def test_anonymous_join_is_refused_by_default(default_server: ServerProcess):
    assert await default_server.rooms() == 0
    await refused(default_server, {"room": "relay", "name": "mallory"}, "adhoc_disabled")
    # a well-signed token changes nothing while ad-hoc rooms are off
    await refused(
        default_server, {"room": "relay", "token": room_token("relay", "m")}, "adhoc_disabled"
    )
    assert await default_server.rooms() == 0
    # and the link API mints no room tokens
    key = default_server.cli("tenant", "create", "Calendar")
    status, body = await default_server.api(
        key, "/rooms/relay/tokens", {"user_id": "u", "name": "U", "role": "member"}
    )
    assert (status, body["type"].rsplit("/", 1)[-1]) == (409, "adhoc-disabled")


async def test_adhoc_join_without_token_is_refused(adhoc_server: ServerProcess):
    await refused(adhoc_server, {"room": "relay", "name": "mallory"}, "token_required")


async def test_forged_room_token_is_refused(adhoc_server: ServerProcess):
    forged = sign_room_token(
        b"not-the-server-key-" * 3,
        RoomClaims("relay", "", "mallory", "mallory", "host", 4e9, "x"),
    )
    message = await refused(adhoc_server, {"room": "relay", "token": forged}, "invalid_token")
    assert "bad signature" in message
    # a genuine member token with its claims rewritten to host under the same MAC
    kind, _, mac = room_token("relay", "mallory").split(".")
    body = forged.split(".")[1]
    await refused(adhoc_server, {"room": "relay", "token": f"{kind}.{body}.{mac}"}, "invalid_token")
    await refused(adhoc_server, {"room": "relay", "token": "mrt1.garbage"}, "invalid_token")


async def test_expired_room_token_is_refused(adhoc_server: ServerProcess):
    expired = room_token("relay", "mallory", ttl=-5)
    await refused(adhoc_server, {"room": "relay", "token": expired}, "token_expired")


async def test_room_token_for_another_room_is_refused(adhoc_server: ServerProcess):
    other = room_token("standup", "mallory")
    message = await refused(adhoc_server, {"room": "relay", "token": other}, "invalid_token")
    assert "another room" in message


async def test_link_join_token_is_not_a_room_token(adhoc_server: ServerProcess):
    key = adhoc_server.cli("tenant", "create", "Calendar")
    status, link = await adhoc_server.api(key, "/links", {"event": event("evt-attack")})
    assert status == 201
    status, minted = await adhoc_server.api(
        key, f"/links/{link['id']}/join-tokens", {"user_id": "u1", "name": "Ada", "role": "host"}
    )
    assert status == 201 and minted["token"].startswith("mjt1.")
    for room in ("relay", link["id"].replace("lnk_", "x_")):
        await refused(adhoc_server, {"room": room, "token": minted["token"]}, "invalid_token")
    # and the other way round: a room token is no join token for the link
    room = room_token(link["id"].replace("lnk_", "x_"), "Ada", role="host")
    slug = link["join_url"].rsplit("/", 1)[-1]
    await refused(adhoc_server, {"link": slug, "token": room}, "invalid_token")


async def test_valid_tokens_join_and_tenants_do_not_share_rooms(adhoc_server: ServerProcess):
    """The positive control: CLI and link-API tokens work; two tenants' tokens for the
    same room name lead to two different rooms, and neither is the operator's."""
    before = await adhoc_server.rooms()
    keys = [adhoc_server.cli("tenant", "create", name) for name in ("A", "B")]
    cli_token = adhoc_server.cli("room-token", "standup", "--name", "Op", "--role", "host")
    people = []
    try:
        op = MeetingClient(adhoc_server.ws, name="op", ice_addresses=["127.0.0.1"])
        people.append(op)
        await op.connect()
        joined = await op.join("standup", cli_token)
        assert (joined["room"], joined["role"]) == ("standup", "host")
        rooms = {"standup"}
        for key in keys:
            status, minted = await adhoc_server.api(
                key, "/rooms/standup/tokens", {"user_id": "u", "name": "Ada", "role": "member"}
            )
            assert status == 201 and minted["room"] == "standup"
            c = MeetingClient(adhoc_server.ws, name="ada", ice_addresses=["127.0.0.1"])
            people.append(c)
            await c.connect()
            joined = await c.join("standup", minted["token"])
            assert joined["room"] == minted["room_id"] and joined["participants"] == []
            rooms.add(joined["room"])
        assert len(rooms) == 3
        assert await adhoc_server.rooms() == before + 3
    finally:
        for c in people:
            await c.close()
