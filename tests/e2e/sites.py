"""A running server with a tenant and link API client, for the browser tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from api_client import ApiClient
from media import COLOURS, ColourTrack, ToneTrack
from server_helpers import event, slug_of, start_server

from mediaserver.app_keys import LINKS
from mediaserver.config import Config


class Site:
    def __init__(self, srv, api) -> None:
        self.srv = srv
        self.api = api

    async def link(self, **options):
        body = {"event": event(options.pop("event_id", "e2e"), **options.pop("event", {}))}
        if options:
            body["options"] = options
        status, link, _ = await self.api.post("/v1/links", body)
        assert status == 201, link
        return link

    async def token_url(self, link, role: str, name: str, user_id: str) -> str:
        _, tok, _ = await self.api.post(
            f"/v1/links/{link['id']}/join-tokens", {"user_id": user_id, "name": name, "role": role}
        )
        return tok["join_url"]

    async def token(self, link, role: str, name: str, user_id: str) -> str:
        url = await self.token_url(link, role, name, user_id)
        return url.split("token=", 1)[1]

    async def bot(self, link, name: str, colour: int, role: str = "member"):
        """An SDK participant that joins with a token and publishes audio + video."""
        c = self.srv.client(name)
        await c.connect()
        tok = await self.token(link, role, name, f"bot-{name}")
        await c.request({"type": "join", "link": slug_of(link["join_url"]), "token": tok})
        await c.publish([ToneTrack(500), ColourTrack(COLOURS[colour])])
        return c


@contextlib.asynccontextmanager
async def running_site(config: Config) -> AsyncIterator[Site]:
    srv = await start_server(config)
    _, key = await srv.app[LINKS].create_tenant("Acme")
    api = ApiClient(srv.http_url, key)
    try:
        yield Site(srv, api)
    finally:
        await api.close()
        await srv.runner.cleanup()


def find_publication(site: Site, predicate):
    """The first publication on the site's server for which ``predicate`` holds."""
    for room in site.srv.rooms.rooms.values():
        for p in room.participants.values():
            for pub in p.publications.values():
                if predicate(pub):
                    return pub
    return None


async def join_as_guest(page, url: str, name: str) -> None:
    await page.goto(url)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Join meeting").click()
