"""The management calls of the link API (issue 17) end to end: real HTTP against an
in-process server (memory and Redis stores), responses checked against the OpenAPI
document, real signalling joins, a real webhook receiver; and a tenant's own rate limit
changed with the CLI while the server runs (a SQLite file)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from api_client import ApiClient
from server_helpers import cli_tenant_key, event, make_config, serving, slug_of
from test_linkapi import api_server
from test_webhooks import Receiver

from mediaserver.app_keys import STORE
from mediaserver.client.sdk import ClientError
from mediaserver.state.models import to_dict

pytestmark = pytest.mark.integration
__all__ = ["api_server"]  # test_linkapi's fixture: a server, two tenants, a client


# --- 6. listing: cursor pagination and updated_since -------------------------------------
@pytest.mark.parametrize("api_server", ["memory", "redis"], indirect=True)
async def test_listing_pages_and_reconciles_with_updated_since(api_server):
    _srv, api = api_server
    made = []
    for i in range(7):
        status, link, _ = await api.post("/v1/links", {"event": event(f"page-{i}")})
        assert status == 201
        made.append(link["id"])
    # every link exactly once, newest first, three at a time
    seen, cursor, pages = [], None, 0
    while True:
        status, body, _ = await api.get(
            "/v1/links?limit=3" + (f"&cursor={cursor}" if cursor else "")
        )
        assert status == 200
        pages += 1
        seen.extend(ln["id"] for ln in body["links"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1] and pages == 3
    # the calendar takes its time T before reading, then: one moved, one cancelled
    await asyncio.sleep(0.01)  # T after the creations' stamps, before the changes'
    since = time.time()
    await asyncio.sleep(0.01)
    status, _moved, _ = await api.patch(f"/v1/links/{made[2]}", {"event": {"summary": "Moved"}})
    assert status == 200
    status, _cancelled, _ = await api.delete(f"/v1/links/{made[5]}")
    assert status == 200
    stamp = datetime.fromtimestamp(since, UTC).isoformat().replace("+00:00", "Z")
    status, body, _ = await api.get(f"/v1/links?updated_since={stamp}")
    assert status == 200 and body["next_cursor"] is None
    assert [(ln["id"], ln["status"]) for ln in body["links"]] == [
        (made[5], "revoked"),  # cancellations are listed too
        (made[2], "active"),
    ]
    # with a cursor, a page at a time
    status, body, _ = await api.get(f"/v1/links?updated_since={stamp}&limit=1")
    assert [ln["id"] for ln in body["links"]] == [made[5]] and body["next_cursor"]
    status, body, _ = await api.get(
        f"/v1/links?updated_since={stamp}&limit=1&cursor={body['next_cursor']}"
    )
    assert [ln["id"] for ln in body["links"]] == [made[2]] and body["next_cursor"] is None
    # another tenant sees none of them
    status, body, _ = await api.get("/v1/links", key=api.other_key)
    assert status == 200 and body == {"links": [], "next_cursor": None}


@pytest.mark.parametrize("api_server", ["memory", "redis"], indirect=True)
async def test_listing_refuses_malformed_parameters(api_server):
    _, api = api_server
    for cursor, message in [
        ("abc", "not a cursor from this API"),
        ("c1.!!!!", "corrupted (not base64url JSON)"),
        ("c1.WzEsMl0", "corrupted (not a link position)"),  # [1,2]
        ("c1.eyJhIjoxfQ", "corrupted (not a link position)"),  # {"a":1}
    ]:
        status, body, _ = await api.get(f"/v1/links?cursor={cursor}")
        assert status == 422, cursor
        assert body["errors"][0]["field"] == "cursor"
        assert body["errors"][0]["message"].startswith(message), body
    for since in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00"):
        status, body, _ = await api.get(f"/v1/links?updated_since={since}")
        assert status == 422 and body["errors"][0]["field"] == "updated_since", since
    status, body, _ = await api.get("/v1/links?limit=501")
    assert status == 422 and body["errors"][0]["field"] == "limit"


# --- 7. guest invites: list and revoke ----------------------------------------------------
@pytest.mark.parametrize("api_server", ["memory", "redis"], indirect=True)
async def test_guest_invites_listed_and_revoked_invite_admits_no_one(api_server, clients):
    srv, api = api_server
    _, link, _ = await api.post("/v1/links", {"event": event("inv")})
    _, other_link, _ = await api.post("/v1/links", {"event": event("inv-2")})
    _, first, _ = await api.post(f"/v1/links/{link['id']}/guest-invites", {"max_guests": 2})
    _, second, _ = await api.post(f"/v1/links/{link['id']}/guest-invites", {"max_guests": 2})
    status, body, _ = await api.get(f"/v1/links/{link['id']}/guest-invites")
    assert status == 200
    assert [(i["id"], i["status"]) for i in body["guest_invites"]] == [
        (first["id"], "active"),
        (second["id"], "active"),
    ]
    status, revoked, _ = await api.delete(f"/v1/links/{link['id']}/guest-invites/{first['id']}")
    assert status == 200 and revoked["status"] == "revoked" and revoked["revoked_at"]
    status, again, _ = await api.delete(f"/v1/links/{link['id']}/guest-invites/{first['id']}")
    assert status == 200 and again["revoked_at"] == revoked["revoked_at"]
    _, body, _ = await api.get(f"/v1/links/{link['id']}/guest-invites")
    assert [i["status"] for i in body["guest_invites"]] == ["revoked", "active"]
    # refusals: unknown invite, another link's path, another tenant
    for path, key in [
        (f"/v1/links/{link['id']}/guest-invites/gi_nope", "default"),
        (f"/v1/links/{other_link['id']}/guest-invites/{second['id']}", "default"),
        (f"/v1/links/{link['id']}/guest-invites/{second['id']}", api.other_key),
    ]:
        status, _problem, _ = await api.delete(path, key=key)
        assert status == 404, path
    status, _, _ = await api.get(f"/v1/links/{link['id']}/guest-invites", key=api.other_key)
    assert status == 404
    # the join path: the revoked invite admits no one, the other one still does
    slug = slug_of(link["join_url"])
    refused, admitted = srv.client("x"), srv.client("y")
    clients.extend([refused, admitted])
    await refused.connect()
    await admitted.connect()
    with pytest.raises(ClientError) as err:
        await refused.request(
            {"type": "join", "link": slug, "invite": first["url"].split("invite=", 1)[1]}
        )
    assert err.value.code == "invalid_invite"
    waiting = await admitted.request(
        {"type": "join", "link": slug, "invite": second["url"].split("invite=", 1)[1]}
    )
    assert waiting["type"] == "lobby"
    # revoking the invite sends away the guest already waiting through it
    status, _, _ = await api.delete(f"/v1/links/{link['id']}/guest-invites/{second['id']}")
    assert status == 200
    await admitted.wait_for(lambda: any(e["type"] == "refused" for e in admitted.events))
    sent_away = next(e for e in admitted.events if e["type"] == "refused")
    assert sent_away["code"] == "invalid_invite"
    assert sent_away["message"] == "this guest invite was revoked"
    (room,) = [r for r in srv.rooms.rooms.values() if r.id == link["id"]]
    assert room.lobby.knocks == {}


# --- 7. webhooks: change, disable/enable, ping ----------------------------------------------
@pytest.mark.parametrize("api_server", ["memory", "redis"], indirect=True)
async def test_webhook_patch_disable_enable_and_ping(api_server):
    _srv, api = api_server
    receiver = Receiver()
    await receiver.start()
    try:
        _, hook, _ = await api.post("/v1/webhooks", {"url": receiver.url + "?old"})
        receiver.secret = hook["secret"]
        # ping an endpoint whose URL is changed first: it reaches the new URL, signed
        status, changed, _ = await api.patch(
            f"/v1/webhooks/{hook['id']}", {"url": receiver.url, "events": ["link.revoked"]}
        )
        assert status == 200 and changed["url"] == receiver.url
        assert changed["events"] == ["link.revoked"] and "secret" not in changed
        status, ping, _ = await api.post(f"/v1/webhooks/{hook['id']}/ping")
        assert status == 202 and ping["webhook_id"] == hook["id"]
        await receiver.wait_for(1)
        assert receiver.bad_signatures == 0
        assert [(e["type"], e["id"]) for e in receiver.events] == [
            ("webhook.ping", ping["event_id"])
        ]
        # the result is visible in the deliveries listing
        _, body, _ = await api.get("/v1/webhooks/deliveries")
        entry = next(d for d in body["deliveries"] if d["id"] == ping["delivery_id"])
        while not entry["delivered_at"]:  # recorded just after the receiver answered
            await asyncio.sleep(0.02)
            _, body, _ = await api.get("/v1/webhooks/deliveries")
            entry = next(d for d in body["deliveries"] if d["id"] == ping["delivery_id"])
        assert entry["type"] == "webhook.ping" and entry["attempts"][0]["status"] == 204
        # the events filter as changed: link.created is not sent, link.revoked is
        _, link, _ = await api.post("/v1/links", {"event": event("wh")})
        await api.delete(f"/v1/links/{link['id']}")
        await receiver.wait_for(2)
        assert [e["type"] for e in receiver.events] == ["webhook.ping", "link.revoked"]
        # disabled: no ping (409); enabled again: pings and events flow
        status, off, _ = await api.patch(f"/v1/webhooks/{hook['id']}", {"active": False})
        assert status == 200 and off["active"] is False
        status, problem, _ = await api.post(f"/v1/webhooks/{hook['id']}/ping")
        assert status == 409 and problem["type"].endswith("/webhook-disabled")
        status, on, _ = await api.patch(
            f"/v1/webhooks/{hook['id']}", {"active": True, "secret": "s" * 32}
        )
        assert status == 200 and on["active"] is True
        receiver.secret = "s" * 32  # the new secret signs from now on
        status, ping, _ = await api.post(f"/v1/webhooks/{hook['id']}/ping")
        assert status == 202
        await receiver.wait_for(3)
        assert receiver.events[-1]["id"] == ping["event_id"] and receiver.bad_signatures == 0
        # refusals
        assert (await api.patch(f"/v1/webhooks/{hook['id']}", {}))[0] == 422
        status, problem, _ = await api.patch(f"/v1/webhooks/{hook['id']}", {"url": "ftp://x"})
        assert status == 422 and problem["errors"][0]["field"] == "url"
        for path in (f"/v1/webhooks/{hook['id']}", "/v1/webhooks/wh_nope"):
            status, _, _ = await api.patch(path, {"active": False}, key=api.other_key)
            assert status == 404
            status, _, _ = await api.post(path + "/ping", key=api.other_key)
            assert status == 404
        _, hooks, _ = await api.get("/v1/webhooks")
        assert hooks["webhooks"][0]["active"] is True
    finally:
        await receiver.stop()


# --- 7. API keys with an admin scope ---------------------------------------------------------
@pytest.mark.parametrize("api_server", ["memory", "redis"], indirect=True)
async def test_api_keys_created_listed_revoked_by_admin_keys(api_server, capsys, caplog):
    srv, api = api_server
    store = srv.app[STORE]
    # the CLI-made key is an admin key
    status, body, _ = await api.get("/v1/api-keys")
    assert status == 200 and [k["scopes"] for k in body["api_keys"]] == [["admin"]]
    (cli_key,) = body["api_keys"]
    assert "key" not in cli_key
    # a key for a calendar sync: links only; its secret is shown once
    status, made, _ = await api.post("/v1/api-keys", {"name": "sync"})
    assert status == 201 and made["scopes"] == ["links"] and made["key"].startswith("msk_")
    stored = await store.get_api_key(made["id"])
    assert made["key"].split("_", 2)[2] not in json.dumps(to_dict(stored))  # only a hash
    _, body, _ = await api.get("/v1/api-keys")
    assert [k["id"] for k in body["api_keys"]] == [cli_key["id"], made["id"]]
    assert all("key" not in k for k in body["api_keys"])
    # the links key works for links, not for keys (403)
    assert (await api.get("/v1/links", key=made["key"]))[0] == 200
    assert (await api.get("/v1/api-keys", key=made["key"]))[0] == 403
    assert (await api.post("/v1/api-keys", {}, key=made["key"]))[0] == 403
    status, problem, _ = await api.delete(f"/v1/api-keys/{cli_key['id']}", key=made["key"])
    assert status == 403 and problem["type"].endswith("/forbidden")
    # the last admin key cannot be revoked through the API
    status, problem, _ = await api.delete(f"/v1/api-keys/{cli_key['id']}")
    assert status == 409 and problem["type"].endswith("/last-admin-key")
    assert (await api.get("/v1/api-keys"))[0] == 200
    # another admin key first: then the old one can go (even by itself)
    status, admin, _ = await api.post("/v1/api-keys", {"scopes": ["admin"], "name": "ops"})
    assert status == 201
    status, gone, _ = await api.delete(f"/v1/api-keys/{cli_key['id']}")
    assert status == 200 and gone["status"] == "revoked"
    assert (await api.get("/v1/links"))[0] == 401
    status, problem, _ = await api.delete(f"/v1/api-keys/{admin['id']}", key=admin["key"])
    assert status == 409
    status, _, _ = await api.delete(f"/v1/api-keys/{made['id']}", key=admin["key"])
    assert status == 200
    assert (await api.get("/v1/links", key=made["key"]))[0] == 401
    # refusals: another tenant's key, unknown keys, bad bodies
    status, body, _ = await api.get("/v1/api-keys", key=api.other_key)
    assert status == 200
    other_id = body["api_keys"][0]["id"]
    assert (await api.delete(f"/v1/api-keys/{other_id}", key=admin["key"]))[0] == 404
    assert (await api.delete("/v1/api-keys/nope", key=admin["key"]))[0] == 404
    status, problem, _ = await api.post("/v1/api-keys", {"scopes": ["root"]}, key=admin["key"])
    assert status == 422 and problem["errors"][0]["field"] == "scopes.0"
    status, problem, _ = await api.post("/v1/api-keys", {"scopes": []}, key=admin["key"])
    assert status == 422
    # no secret in what the server logged (its log goes to stdout, aiohttp's to logging)
    logged = capsys.readouterr()
    for secret in (k["key"].split("_", 2)[2] for k in (made, admin)):
        assert secret not in logged.out + logged.err + caplog.text


# --- 8. a tenant's own rate limit, changed while the server runs --------------------------
def _cli(config_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediaserver", "tenant", *args, "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


async def test_rate_limit_of_an_existing_tenant_changed_with_the_cli(tmp_path):
    """An integrator about to import a calendar gets a bigger limit and burst for its
    existing tenant (same key, same links), at once on the running server; 0 gives
    back the configured numbers."""
    data = tmp_path / "data"
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'[state]\nbackend = "sqlite"\ndata_dir = "{data}"\n'
        "[linkapi]\nrate_limit_per_minute = 60\nrate_limit_burst = 3\n"
    )
    config = make_config()
    config = dataclasses.replace(
        config,
        state=dataclasses.replace(config.state, backend="sqlite", data_dir=str(data)),
        linkapi=dataclasses.replace(config.linkapi, rate_limit_per_minute=60, rate_limit_burst=3),
    )
    key = cli_tenant_key(toml)
    async with serving(config, "sqlite") as srv:
        api = ApiClient(srv.http_url, key)
        try:
            tenant_id = (await srv.app[STORE].get_api_key(key.split("_")[1])).tenant_id
            codes = [(await api.get("/v1/links"))[0] for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            out = _cli(toml, "set-rate-limit", tenant_id, "--rate-limit", "6000", "--burst", "100")
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == f"tenant {tenant_id}: rate limit 6000/min, burst 100"
            code, _, headers = await api.get("/v1/links")
            assert code == 200 and headers["RateLimit-Limit"] == "100"
            codes = [(await api.get("/v1/links"))[0] for _ in range(20)]
            assert codes == [200] * 20
            listed = _cli(toml, "list").stdout
            assert f"{tenant_id}\tAcme\t1 active key(s)\trate limit 6000/min, burst 100" in listed
            # only the burst given: the limit stays; 0: the configured numbers again
            out = _cli(toml, "set-rate-limit", tenant_id, "--burst", "50")
            assert out.stdout.strip().endswith("rate limit 6000/min, burst 50"), out
            out = _cli(toml, "set-rate-limit", tenant_id, "--rate-limit", "0", "--burst", "0")
            assert out.stdout.strip().endswith(
                "rate limit 60/min (configured), burst 3 (configured)"
            ), out
            code, _, headers = await api.get("/v1/links")
            assert headers["RateLimit-Limit"] == "3"
            # refusals: out of range, nothing given, no such tenant
            for args, rc in [
                (("--rate-limit", "-1"), 2),
                (("--burst", "1000001"), 2),
                ((), 2),
            ]:
                out = _cli(toml, "set-rate-limit", tenant_id, *args)
                assert out.returncode == rc, (args, out)
            out = _cli(toml, "set-rate-limit", "tn_nope", "--burst", "5")
            assert out.returncode == 1 and "no tenant tn_nope" in out.stderr
        finally:
            await api.close()
