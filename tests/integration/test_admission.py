"""Admission with real SDK clients: roles, guest policy, waiting room, moderation,
speaking-time statistics and the meeting report."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from api_client import ApiClient
from media import COLOURS, ColourTrack, ToneTrack, closest_colour, mean_colour, receive_frames
from server_helpers import event, make_config, slug_of, start_server

from mediaserver.app_keys import LINKS, STORE
from mediaserver.client.sdk import ClientError

pytestmark = pytest.mark.integration

ROOM_MESSAGES = {
    "joined",
    "participant_joined",
    "participant_left",
    "publications_added",
    "subscribe_offer",
    "publication_muted",
    "active_speaker",
    "speaking_stats",
}


class Meeting:
    def __init__(self, srv, api, link, clients) -> None:
        self.srv = srv
        self.api = api
        self.link = link
        self.clients = clients
        self.slug = slug_of(link["join_url"])
        self.host_slug = slug_of(link["host_url"])

    @property
    def room(self):
        return self.srv.rooms.rooms.get(self.link["id"])

    async def connect(self, name: str = "x"):
        c = self.srv.client(name)
        self.clients.append(c)
        await c.connect()
        return c

    async def host(self, name: str = "Hana"):
        c = await self.connect(name)
        reply = await c.request({"type": "join", "link": self.host_slug, "name": name})
        assert reply["type"] == "joined" and reply["role"] == "host"
        return c, reply

    async def guest(self, name: str):
        c = await self.connect(name)
        reply = await c.request({"type": "join", "link": self.slug, "name": name})
        return c, reply

    async def token(self, role: str, user_id: str, name: str) -> str:
        _, tok, _ = await self.api.post(
            f"/v1/links/{self.link['id']}/join-tokens",
            {"user_id": user_id, "name": name, "role": role},
        )
        return tok["token"]


@pytest.fixture
async def meeting(request, clients):
    overrides = getattr(request, "param", {})
    config = make_config()
    config = dataclasses.replace(
        config,
        rooms=dataclasses.replace(config.rooms, **overrides.get("rooms", {})),
    )
    srv = await start_server(config)
    _, key = await srv.app[LINKS].create_tenant("Acme")
    api = ApiClient(srv.http_url, key)
    _, link, _ = await api.post(
        "/v1/links", {"event": event("m1"), "options": overrides.get("options", {})}
    )
    try:
        yield Meeting(srv, api, link, clients)
    finally:
        await api.close()
        await srv.runner.cleanup()


async def _message(client, mtype: str, timeout: float = 5.0) -> dict:
    for e in client.events + client.errors:
        if e.get("type") == mtype or (mtype.startswith("error:") and e.get("code") == mtype[6:]):
            return e
    if mtype.startswith("error:"):
        code = mtype[6:]
        for _ in range(int(timeout / 0.05)):
            for e in client.errors:
                if e.get("code") == code:
                    return e
            await asyncio.sleep(0.05)
        raise AssertionError(f"no error {code}: {client.errors}")
    return await client.wait_message(mtype, timeout)


async def test_guest_waits_then_host_admits_and_media_flows(meeting):
    host, _ = await meeting.host()
    await host.publish([ToneTrack(), ColourTrack(COLOURS[0])])
    guest, reply = await meeting.guest("Gus")
    assert reply["type"] == "lobby" and reply["host_present"] is True
    knock = await _message(host, "knock")
    assert knock["knock"]["name"] == "Gus"
    # before admission: nothing about the room, and no way in through the back door
    with pytest.raises(ClientError) as err:
        await guest.publish([ColourTrack(COLOURS[1])])
    assert err.value.code == "not_admitted"
    for msg in (
        {"type": "subscribe_answer", "sdp": "v=0"},
        {"type": "mute", "publication_id": "PU_x", "muted": True},
        {"type": "admit", "knock_id": knock["knock"]["id"]},
        {"type": "ice_candidate", "target": "subscriber", "candidate": None},
    ):
        with pytest.raises(ClientError) as err:
            await guest.request(msg)
        assert err.value.code == "not_admitted"
    with pytest.raises(ClientError) as err:  # claiming host in a message
        await guest.request({"type": "join", "link": meeting.slug, "name": "Gus", "role": "host"})
    assert err.value.code == "unknown_field"
    await asyncio.sleep(0.3)
    assert not {e["type"] for e in guest.events} & ROOM_MESSAGES
    assert len(meeting.room.participants) == 1
    guest.publisher = None  # the refused publish left a local pc behind; start afresh
    # admit
    await host.request({"type": "admit", "knock_id": knock["knock"]["id"]})
    joined = await _message(guest, "joined")
    assert joined["role"] == "guest" and [p["name"] for p in joined["participants"]] == ["Hana"]
    await guest.publish([ToneTrack(), ColourTrack(COLOURS[1])])
    for c, other in ((host, 1), (guest, 0)):
        tracks = await c.wait_for_tracks(2, timeout=15)
        video = next(t for t in tracks if t.kind == "video")
        frames = await receive_frames(video.track, 5, timeout=10)
        assert closest_colour(mean_colour(frames[-1])) == other
    resolved = await _message(host, "knock_resolved")
    assert resolved["outcome"] == "admitted"
    metrics = meeting.srv.metrics
    assert metrics.knocks._value.get() == 1 and metrics.admits._value.get() == 1


async def test_refusal_closes_the_connection(meeting):
    host, _ = await meeting.host()
    guest, reply = await meeting.guest("Rex")
    knock_id = reply["knock_id"]
    await host.request({"type": "refuse", "knock_id": knock_id, "message": "Private meeting"})
    refused = await _message(guest, "refused")
    assert refused["message"] == "Private meeting"
    await asyncio.wait_for(guest.closed.wait(), 5)
    with pytest.raises((ConnectionError, ClientError, RuntimeError)):
        await guest.request({"type": "join", "link": meeting.slug, "name": "Rex"}, timeout=2)
    assert len(meeting.room.participants) == 1 and not meeting.room.lobby.knocks
    # refused once is not refused next time: a new connection knocks again
    _, reply = await meeting.guest("Rex")
    assert reply["type"] == "lobby"
    assert meeting.srv.metrics.refusals._value.get() == 1


async def test_admit_all(meeting):
    host, _ = await meeting.host()
    guests = [await meeting.guest(n) for n in ("A", "B", "C")]
    assert all(r["type"] == "lobby" for _, r in guests)
    await host.request({"type": "admit_all"})
    for g, _ in guests:
        assert (await _message(g, "joined"))["role"] == "guest"
    assert sorted(p.name for p in meeting.room.participants.values()) == ["A", "B", "C", "Hana"]


async def test_wait_for_host_then_host_arrives(meeting):
    guest, reply = await meeting.guest("Early")
    assert reply["type"] == "lobby" and reply["host_present"] is False
    host, joined = await meeting.host()
    assert [k["name"] for k in joined["lobby"]] == ["Early"]
    update = await _message(guest, "lobby")
    assert update is reply or update["host_present"] is True
    await host.request({"type": "admit", "knock_id": joined["lobby"][0]["id"]})
    assert (await _message(guest, "joined"))["role"] == "guest"


@pytest.mark.parametrize("meeting", [{"rooms": {"lobby_timeout_seconds": 1.0}}], indirect=True)
async def test_lobby_timeout(meeting):
    guest, reply = await meeting.guest("Slow")
    assert reply["timeout_seconds"] == 1.0
    err = await _message(guest, "error:lobby_timeout", timeout=5)
    assert "no host" in err["message"]
    await asyncio.wait_for(guest.closed.wait(), 5)
    assert meeting.srv.metrics.lobby_timeouts._value.get() == 1


async def test_knock_withdrawn_when_the_guest_leaves(meeting):
    host, _ = await meeting.host()
    guest, reply = await meeting.guest("Shy")
    await _message(host, "knock")
    await guest.close()
    withdrawn = await _message(host, "knock_withdrawn")
    assert withdrawn["knock_id"] == reply["knock_id"] and not meeting.room.lobby.knocks


@pytest.mark.parametrize("meeting", [{"options": {"guest_policy": "deny"}}], indirect=True)
async def test_policies_members_and_live_changes(meeting):
    # deny: guests are refused outright; members and hosts come straight in
    guest = await meeting.connect("g")
    with pytest.raises(ClientError) as err:
        await guest.request({"type": "join", "link": meeting.slug, "name": "G"})
    assert err.value.code == "guests_denied"
    member = await meeting.connect()
    tok = await meeting.token("member", "u-9", "Mia")
    joined = await member.request({"type": "join", "link": meeting.slug, "token": tok})
    assert joined["role"] == "member"
    with pytest.raises(ClientError) as err:  # members cannot moderate
        await member.request({"type": "lock_room", "locked": True})
    assert err.value.code == "forbidden"
    host, _ = await meeting.host()
    # lobby, then allow: the waiting guest is let in automatically
    await host.request({"type": "set_guest_policy", "policy": "lobby"})
    g2, reply = await meeting.guest("Gia")
    assert reply["type"] == "lobby"
    await host.request({"type": "set_guest_policy", "policy": "allow"})
    assert (await _message(g2, "joined"))["role"] == "guest"
    _, reply = await meeting.guest("Gil")
    assert reply["type"] == "joined"
    # locked: no new guests or knocks; members still come in
    await host.request({"type": "lock_room", "locked": True})
    late = await meeting.connect()
    with pytest.raises(ClientError) as err:
        await late.request({"type": "join", "link": meeting.slug, "name": "Lou"})
    assert err.value.code == "room_locked"
    member2 = await meeting.connect()
    tok2 = await meeting.token("member", "u-10", "Mo")
    assert (await member2.request({"type": "join", "link": meeting.slug, "token": tok2}))[
        "role"
    ] == "member"


@pytest.mark.parametrize("meeting", [{"options": {"guest_policy": "allow"}}], indirect=True)
async def test_moderation_takes_effect_on_media(meeting):
    host, _ = await meeting.host()
    guest, reply = await meeting.guest("Gus")
    assert reply["type"] == "joined"
    await guest.publish([ToneTrack(), ColourTrack(COLOURS[1])])
    await host.wait_for_tracks(2, timeout=15)
    pubs = {
        pub.kind: pub
        for p in meeting.room.participants.values()
        if p.name == "Gus"
        for pub in p.publications.values()
    }
    for _ in range(100):
        if pubs["audio"].forwarding.outputs:
            break
        await asyncio.sleep(0.05)
    audio_out = pubs["audio"].forwarding.outputs[0]
    await asyncio.sleep(0.5)
    assert audio_out.packets > 0
    # mute every microphone, locked
    await host.request({"type": "mute_all", "kind": "audio", "lock": True})
    moderated = await _message(guest, "moderated")
    assert moderated["action"] == "muted" and moderated["kind"] == "audio" and moderated["locked"]
    await asyncio.sleep(0.2)
    sent = audio_out.packets
    await asyncio.sleep(0.8)
    assert audio_out.packets == sent, "a host-muted microphone still reached the host"
    with pytest.raises(ClientError) as err:
        await guest.request({"type": "mute", "publication_id": pubs["audio"].id, "muted": False})
    assert err.value.code == "locked_by_host"
    # unlock: the guest may turn it back on
    await host.request({"type": "unlock_media", "kind": "audio"})
    await guest.request({"type": "ping"})
    await guest.send({"type": "mute", "publication_id": pubs["audio"].id, "muted": False})
    for _ in range(40):
        if audio_out.packets > sent:
            break
        await asyncio.sleep(0.05)
    assert audio_out.packets > sent
    # cameras off without a lock: the guest may turn theirs back on at once
    await host.request({"type": "mute_all", "kind": "video", "lock": False})
    assert pubs["video"].muted
    await guest.send({"type": "mute", "publication_id": pubs["video"].id, "muted": False})
    await guest.request({"type": "ping"})
    assert not pubs["video"].muted


@pytest.mark.parametrize("meeting", [{"options": {"guest_policy": "allow"}}], indirect=True)
async def test_remove_bars_for_this_meeting_and_end_meeting(meeting):
    host, _ = await meeting.host()
    guest, _ = await meeting.guest("Troll")
    member = await meeting.connect()
    tok = await meeting.token("member", "u-1", "Mel")
    joined = await member.request({"type": "join", "link": meeting.slug, "token": tok})
    guest_id = next(p.id for p in meeting.room.participants.values() if p.name == "Troll")
    await host.request({"type": "remove_participant", "participant_id": guest_id})
    removed = await _message(guest, "removed")
    assert "removed" in removed["message"]
    await asyncio.wait_for(guest.closed.wait(), 5)
    left = await _message(member, "participant_left")
    assert left["participant_id"] == guest_id and left["reason"] == "removed"
    # coming back is refused for the rest of this meeting
    back = await meeting.connect()
    with pytest.raises(ClientError) as err:
        await back.request({"type": "join", "link": meeting.slug, "name": "Troll"})
    assert err.value.code == "removed"
    # a removed member cannot come back with a fresh token either
    await host.request({"type": "remove_participant", "participant_id": joined["participant_id"]})
    again = await meeting.connect()
    tok2 = await meeting.token("member", "u-1", "Mel")
    with pytest.raises(ClientError) as err:
        await again.request({"type": "join", "link": meeting.slug, "token": tok2})
    assert err.value.code == "removed"
    assert meeting.srv.metrics.removals._value.get() == 2
    # end the meeting for everyone
    await host.request({"type": "end_meeting"})
    closed = await _message(host, "room_closed")
    assert closed["reason"] == "ended_by_host"
    assert meeting.link["id"] not in meeting.srv.rooms.rooms


@pytest.mark.parametrize("meeting", [{"options": {"guest_policy": "allow"}}], indirect=True)
async def test_speaking_time_and_report(meeting):
    host, _ = await meeting.host()
    await host.publish([ToneTrack(amplitude=9000)])
    guest, _ = await meeting.guest("Quiet")
    await guest.publish([ToneTrack(amplitude=0)])
    host_id = next(p.id for p in meeting.room.participants.values() if p.role == "host")
    speaker = await _message(guest, "active_speaker", timeout=10)
    assert speaker["participant_id"] == host_id  # guests get the live signal too
    for _ in range(100):
        stats = [e for e in guest.events if e["type"] == "speaking_stats"]
        if stats and stats[-1]["speaking_seconds"].get(host_id, 0) >= 1.0:
            break
        await asyncio.sleep(0.1)
    seconds = stats[-1]["speaking_seconds"]
    assert seconds[host_id] >= 1.0
    guest_id = next(pid for pid in seconds if pid != host_id)
    assert seconds[guest_id] < 0.2  # silence is not speech
    await host.request({"type": "end_meeting"})
    for _ in range(50):
        status, body, _ = await meeting.api.get(f"/v1/links/{meeting.link['id']}/report")
        if body["reports"]:
            break
        await asyncio.sleep(0.1)
    assert status == 200 and len(body["reports"]) == 1
    report = body["reports"][0]
    people = {p["name"]: p for p in report["participants"]}
    assert people["Hana"]["role"] == "host" and people["Hana"]["speaking_seconds"] >= 1.0
    assert people["Quiet"]["role"] == "guest" and people["Quiet"]["speaking_seconds"] < 0.2
    assert report["reason"] == "ended_by_host"
    assert await meeting.srv.app[STORE].list_meeting_reports(meeting.link["id"])


@pytest.mark.parametrize("meeting", [{"options": {"max_guests": 1}}], indirect=True)
async def test_guest_cap_holds_when_admitting(meeting):
    host, _ = await meeting.host()
    a, _ = await meeting.guest("A")
    b, _ = await meeting.guest("B")
    await host.request({"type": "admit_all"})
    assert (await _message(a, "joined"))["role"] == "guest"
    err = await _message(b, "error:guests_full")
    assert "at most 1" in err["message"]
    assert sorted(p.name for p in meeting.room.participants.values()) == ["A", "Hana"]


@pytest.mark.parametrize("meeting", [{"options": {"guest_policy": "allow"}}], indirect=True)
async def test_media_lock_covers_later_publications_and_joiners(meeting):
    host, _ = await meeting.host()
    await host.request({"type": "mute_all", "kind": "audio", "lock": True})
    late, reply = await meeting.guest("Late")
    assert reply["type"] == "joined"
    pubs = await late.publish([ToneTrack()])
    assert pubs[0]["muted"] is True  # starts muted: the lock holds
    with pytest.raises(ClientError) as err:
        await late.request({"type": "mute", "publication_id": pubs[0]["id"], "muted": False})
    assert err.value.code == "locked_by_host"


async def test_waiting_guests_are_told_when_the_last_host_leaves(meeting):
    host, _ = await meeting.host()
    guest, reply = await meeting.guest("Gus")
    assert reply["host_present"] is True
    await host.leave()
    for _ in range(100):
        updates = [e for e in guest.events if e["type"] == "lobby"]
        if updates and updates[-1]["host_present"] is False:
            break
        await asyncio.sleep(0.05)
    assert updates[-1]["host_present"] is False
