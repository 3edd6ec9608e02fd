"""A burst of new meetings over three equal nodes spreads evenly."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from cluster_nodes import client, create_tenant, owner_of, post_link, slug

pytestmark = pytest.mark.integration


async def test_fifteen_rooms_at_once_spread_five_per_node(cluster, clients):
    redis, nodes = cluster
    key = create_tenant(nodes[0])
    links = [await post_link(nodes[0], key, f"hour-{i}") for i in range(15)]
    await asyncio.sleep(1.5)  # every node reported its (zero) load
    # all through one node (the worst case: each edge prefers itself on a tie)
    people = [client(nodes[1].ws, f"h{i}") for i in range(15)]
    clients += people
    await asyncio.gather(*(p.connect() for p in people))
    await asyncio.gather(
        *(
            p.join_with({"type": "join", "link": slug(link["host_url"]), "name": p.name})
            for p, link in zip(people, links, strict=True)
        )
    )
    per_node = Counter([await owner_of(redis, link["id"]) for link in links])
    print("rooms per node", dict(per_node))
    assert sorted(per_node) == ["node-a", "node-b", "node-c"]
    assert all(4 <= n <= 6 for n in per_node.values()), per_node
