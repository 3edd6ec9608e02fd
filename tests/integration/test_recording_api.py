"""Recording through meeting links: the link option and the tenant default, who may
start it, the link API calls (start/stop, list, manifest, downloads with the key or a
signed URL, delete), webhooks, and a guest waiting in the lobby being told."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
import pytest
from api_client import ApiClient
from media import COLOURS, ColourTrack, ToneTrack
from recording_helpers import recording_event
from server_helpers import event, make_config, slug_of, start_server, webhook_sink

from mediaserver.app_keys import CONFIG, LINKS
from mediaserver.client.sdk import ClientError
from mediaserver.config import RecordingConfig

pytestmark = pytest.mark.integration


@pytest.fixture
async def srv(tmp_path: Path):
    base = make_config()
    server = await start_server(
        dataclasses.replace(base, recording=RecordingConfig(directory=str(tmp_path / "rec")))
    )
    try:
        yield server
    finally:
        await server.runner.cleanup()


async def _frames_recorded(srv, link_id: str) -> None:
    """Until the running recording has written audio and video frames."""
    for _ in range(400):
        rec = srv.rooms.rooms[link_id].recording
        if rec is not None and len(rec.tracks) == 2 and all(t.frames for t in rec.tracks.values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no frames were recorded")


async def test_link_api_starts_lists_downloads_and_deletes_recordings(srv, clients):
    _, key = await srv.app[LINKS].create_tenant("Acme", recording="host")
    _, other_key = await srv.app[LINKS].create_tenant("Other")
    api, other = ApiClient(srv.http_url, key), ApiClient(srv.http_url, other_key)
    try:
        hooks: list = []
        async with webhook_sink(hooks) as hook_url:
            await api.post("/v1/webhooks", {"url": hook_url})
            _, link, _ = await api.post("/v1/links", {"event": event("r1")})
            assert link["options"]["recording"] == "host"  # the tenant's default
            lid = link["id"]
            code, _, _ = await api.post(f"/v1/links/{lid}/recording", {"active": True})
            assert code == 409  # no meeting running yet
            host = srv.client("Hana")
            clients.append(host)
            await host.connect()
            joined = await host.request(
                {"type": "join", "link": slug_of(link["host_url"]), "name": "Hana"}
            )
            assert joined["recording"] == {"active": False, "policy": "host", "recording_id": None}
            await host.publish([ToneTrack(), ColourTrack(COLOURS[2])])
            code, state, _ = await api.post(f"/v1/links/{lid}/recording", {"active": True})
            assert code == 200 and state["active"] is True
            rid = state["recording_id"]
            assert (await recording_event(host, 1))["recording_id"] == rid
            await _frames_recorded(srv, lid)
            code, live, _ = await api.get(f"/v1/recordings/{rid}")  # while it records
            assert code == 200 and live["state"] == "recording" and len(live["tracks"]) == 2
            code, _, _ = await api.delete(f"/v1/recordings/{rid}")
            assert code == 409  # not while it records
            code, state, _ = await api.post(f"/v1/links/{lid}/recording", {"active": False})
            assert code == 200 and state == {"active": False, "recording_id": rid}
            assert (await recording_event(host, 2))["reason"] == "stopped_by_api"
            pubs = list(srv.rooms.rooms[lid].participants.values())[0].publications.values()
            assert len(pubs) == 2 and all(p.recording_source().recorder is None for p in pubs)

            code, listed, _ = await api.get(f"/v1/links/{lid}/recordings")
            assert code == 200 and [r["id"] for r in listed["recordings"]] == [rid]
            code, manifest, _ = await api.get(f"/v1/recordings/{rid}")
            assert code == 200 and manifest["state"] == "ready" and "tenant_id" not in manifest
            assert manifest["link_id"] == lid and len(manifest["tracks"]) == 2
            assert (await other.get(f"/v1/recordings/{rid}"))[0] == 404  # another tenant's
            assert (await other.get(f"/v1/links/{lid}/recordings"))[0] == 404
            name = manifest["tracks"][0]["file"]
            async with aiohttp.ClientSession() as s:
                url = f"{srv.http_url}/v1/recordings/{rid}/files/{name}"
                async with s.get(url, headers={"Authorization": f"Bearer {key}"}) as r:
                    assert r.status == 200 and r.content_type.endswith("/webm")
                    body = await r.read()
                assert body[:4] == b"\x1a\x45\xdf\xa3"  # EBML
                async with s.get(url) as r:
                    assert r.status == 401  # no key
                code, signed, _ = await api.post(f"/v1/recordings/{rid}/files/{name}/url")
                assert code == 200 and "sig=" in signed["url"]
                async with s.get(signed["url"]) as r:
                    assert r.status == 200 and await r.read() == body
                async with s.get(signed["url"].replace("sig=", "sig=0")) as r:
                    assert r.status == 403
                bad = f"{srv.http_url}/v1/recordings/{rid}/files/..%2Fmanifest.json"
                async with s.get(bad, headers={"Authorization": f"Bearer {key}"}) as r:
                    assert r.status == 404
                # as another node of a cluster sees it: listed in the store, files elsewhere
                folder = Path(srv.app[CONFIG].recording_directory) / rid
                folder.rename(folder.with_name("elsewhere"))
                async with s.get(url, headers={"Authorization": f"Bearer {key}"}) as r:
                    problem = await r.json(content_type=None)
                    assert r.status == 404 and "not on this node" in problem["detail"]
                async with s.get(signed["url"]) as r:
                    assert r.status == 404
                assert (await api.get(f"/v1/recordings/{rid}"))[0] == 200
                folder.with_name("elsewhere").rename(folder)
            code, deleted, _ = await api.delete(f"/v1/recordings/{rid}")
            assert code == 200 and deleted["id"] == rid
            assert (await api.get(f"/v1/recordings/{rid}"))[0] == 404
            # webhooks: recording.started, then recording.ready with the manifest
            for _ in range(200):
                _, deliveries, _ = await api.get("/v1/webhooks/deliveries")
                types = [d["type"] for d in deliveries["deliveries"]]
                if "recording.ready" in types:
                    break
                await asyncio.sleep(0.05)
            assert "recording.started" in types and "recording.ready" in types
            for _ in range(100):  # the bodies: the recording's manifest as it was then
                got = {h["type"]: h["data"] for h in hooks if h["type"].startswith("recording.")}
                if len(got) == 2:
                    break
                await asyncio.sleep(0.05)
            assert got["recording.started"]["recording"]["state"] == "recording"
            ready = got["recording.ready"]["recording"]
            assert ready["id"] == rid and ready["state"] == "ready" and len(ready["tracks"]) == 2
    finally:
        await api.close()
        await other.close()


async def test_recording_off_refuses_hosts_and_the_api(srv, clients):
    _, key = await srv.app[LINKS].create_tenant("Acme")  # default: off
    api = ApiClient(srv.http_url, key)
    try:
        _, link, _ = await api.post("/v1/links", {"event": event("r2")})
        assert link["options"]["recording"] == "off"
        host = srv.client("Hana")
        clients.append(host)
        await host.connect()
        await host.request({"type": "join", "link": slug_of(link["host_url"]), "name": "Hana"})
        with pytest.raises(ClientError) as info:
            await host.request({"type": "set_recording", "active": True})
        assert info.value.code == "forbidden"
        code, problem, _ = await api.post(f"/v1/links/{link['id']}/recording", {"active": True})
        assert code == 409 and "off" in problem["detail"]
    finally:
        await api.close()


async def test_always_records_from_the_first_join_and_the_lobby_is_told(srv, clients):
    _, key = await srv.app[LINKS].create_tenant("Acme")
    api = ApiClient(srv.http_url, key)
    try:
        _, link, _ = await api.post(
            "/v1/links", {"event": event("r3"), "options": {"recording": "always"}}
        )
        host = srv.client("Hana")
        clients.append(host)
        await host.connect()
        joined = await host.request(
            {"type": "join", "link": slug_of(link["host_url"]), "name": "Hana"}
        )
        # joined carries the state as of joining; the start follows at once
        assert joined["recording"]["policy"] == "always"
        assert (await recording_event(host, 1))["active"] is True
        rec = srv.rooms.rooms[link["id"]].recording
        assert rec is not None and rec.active
        guest = srv.client("Gus")
        clients.append(guest)
        await guest.connect()
        reply = await guest.request(
            {"type": "join", "link": slug_of(link["join_url"]), "name": "Gus"}
        )
        assert reply["type"] == "lobby" and reply["recording"] is True
        with pytest.raises(ClientError) as info:
            await host.request({"type": "set_recording", "active": False})
        assert info.value.code == "forbidden"
        # a host stopping it through the API: the waiting guest is told too
        code, _, _ = await api.post(f"/v1/links/{link['id']}/recording", {"active": False})
        assert code == 200
        assert (await recording_event(guest, 1))["active"] is False
    finally:
        await api.close()


async def test_cli_sets_the_tenants_recording_default(tmp_path: Path) -> None:
    import subprocess
    import sys

    from server_helpers import ROOT, clean_env

    from mediaserver.state.sqlite import SqliteStore

    config = tmp_path / "c.toml"
    config.write_text(f'[state]\ndata_dir = "{tmp_path / "data"}"\n')
    argv = [sys.executable, "-m", "mediaserver", "tenant", "create", "Acme", "--config"]
    done = subprocess.run(
        [*argv, str(config), "--recording", "always"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    bad = subprocess.run(
        [*argv, str(config), "--recording", "sometimes"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=60,
    )
    assert bad.returncode == 2 and "--recording" in bad.stderr
    store = SqliteStore(str(tmp_path / "data" / "mediaserver.db"))
    await store.open()
    try:
        (tenant,) = await store.list_tenants()
        assert tenant.recording == "always"
    finally:
        await store.close()


async def test_two_hosts_starting_at_once_make_one_recording(srv, clients):
    _, key = await srv.app[LINKS].create_tenant("Acme", recording="host")
    api = ApiClient(srv.http_url, key)
    try:
        _, link, _ = await api.post("/v1/links", {"event": event("r4")})
        hosts = []
        for name in ("Hana", "Hugo"):
            host = srv.client(name)
            clients.append(host)
            await host.connect()
            await host.request({"type": "join", "link": slug_of(link["host_url"]), "name": name})
            hosts.append(host)
        await asyncio.gather(
            *(h.request({"type": "set_recording", "active": True}) for h in hosts),
            api.post(f"/v1/links/{link['id']}/recording", {"active": True}),
        )
        started = await recording_event(hosts[0], 1)
        await asyncio.sleep(0)  # (any second start would have been broadcast by now)
        events = [e for e in hosts[1].events if e.get("type") == "recording"]
        assert [e["recording_id"] for e in events] == [started["recording_id"]]
        assert srv.metrics.recordings._value.get() == 1
        await api.post(f"/v1/links/{link['id']}/recording", {"active": False})
        assert srv.metrics.recordings._value.get() == 0
        _, listed, _ = await api.get(f"/v1/links/{link['id']}/recordings")
        assert [r["id"] for r in listed["recordings"]] == [started["recording_id"]]
    finally:
        await api.close()


async def test_retention_in_config_deletes_old_recordings_when_the_server_starts(
    tmp_path: Path,
) -> None:
    import json
    import time

    root = tmp_path / "rec"
    for rec_id, state, age_days in [
        ("RE00000000000000a1", "ready", 10),
        ("RE00000000000000a2", "interrupted", 10),
        ("RE00000000000000a3", "ready", 1),
        ("RE00000000000000a4", "recording", 1),
        ("RE00000000000000a5", "recording", 10),
    ]:
        (root / rec_id).mkdir(parents=True)
        manifest = {"id": rec_id, "state": state, "started_at": time.time() - age_days * 86400}
        (root / rec_id / "manifest.json").write_text(json.dumps(manifest))
    config = dataclasses.replace(
        make_config(), recording=RecordingConfig(directory=str(root), retention_days=7)
    )
    server = await start_server(config)
    try:
        for _ in range(100):  # the first sweep runs as the server starts
            left = sorted(p.name for p in root.iterdir())
            if len(left) == 2:
                break
            await asyncio.sleep(0.05)
        # old finished ones are gone, recent ones stay; those a crash cut are marked
        # interrupted at start-up first, then expire from their own start like the others
        assert left == ["RE00000000000000a3", "RE00000000000000a4"]
        cut = json.loads((root / "RE00000000000000a4" / "manifest.json").read_text())
        assert cut["state"] == "interrupted"
    finally:
        await server.runner.cleanup()


def test_only_started_tracks_have_a_file_to_download(tmp_path: Path) -> None:
    from linkapi.problems import ApiProblem
    from linkapi.recordings import _file_of

    manifest = {
        "tracks": [
            {"file": "a.webm", "start_offset_seconds": 0.5},
            {"file": "v.webm", "start_offset_seconds": None},  # never got a keyframe
        ]
    }
    assert _file_of(tmp_path, manifest, "a.webm") == tmp_path / "a.webm"
    for name in ("v.webm", "manifest.json", "../a.webm"):
        with pytest.raises(ApiProblem) as info:
            _file_of(tmp_path, manifest, name)
        assert info.value.status == 404
