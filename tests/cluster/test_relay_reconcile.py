"""The relay's per-heartbeat reconciliation: a lost ``close`` ends the participant on
the host, a session the host lost ends the client's socket with ``room_moved``."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from mediaserver.cluster.relay import EdgeConn, Relay


def stub_cluster(published: list[tuple[str, dict]]) -> Any:
    async def publish(node: str, message: dict) -> int:
        published.append((node, message))
        return 1

    async def is_alive(node: str) -> bool:
        return True

    return SimpleNamespace(
        node_id="me", relay_timeout=5.0, heartbeat=3600.0, publish=publish, is_alive=is_alive
    )


async def test_host_closes_sessions_the_edge_no_longer_has_and_names_unknown_ones():
    published: list[tuple[str, dict]] = []
    relay = Relay(stub_cluster(published), manager=None, make_session=None)  # type: ignore[arg-type]
    kept = remote_session(received=2, sent=5)
    lost = remote_session()
    short = remote_session(received=1)
    relay.remote[("edge-1", "kept")] = kept  # type: ignore[assignment]
    relay.remote[("edge-1", "lost-close")] = lost  # type: ignore[assignment]
    relay.remote[("edge-1", "lost-frame")] = short  # type: ignore[assignment]
    await relay.on_message(
        {
            "t": "conns",
            "edge": "edge-1",
            "conns": ["kept", "lost-open", "lost-frame"],
            "seq": [2, 1, 3],
        }
    )
    assert lost.queue.get_nowait() is None  # the participant leaves
    assert short.queue.get_nowait() is None  # frames 2 and 3 never arrived
    assert kept.queue.empty() and ("edge-1", "kept") in relay.remote
    await asyncio.sleep(0.05)
    assert published == [
        ("edge-1", {"t": "gone", "conns": ["lost-frame", "lost-open"], "host": "me"}),
        ("edge-1", {"t": "acks", "host": "me", "conns": ["kept"], "seq": [5]}),
    ]
    await relay.close()


def remote_session(received: int = 0, sent: int = 0) -> Any:
    return SimpleNamespace(queue=asyncio.Queue(), received=received, sent=sent)


async def test_edge_closes_a_connection_its_host_does_not_know_with_room_moved():
    relay = Relay(stub_cluster([]), manager=None, make_session=None)  # type: ignore[arg-type]
    sent: list[str] = []
    closed: list[bool] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def close() -> None:
        closed.append(True)

    relay.edges["c1"] = EdgeConn(send, close, "host-1")
    relay.edges["c2"] = EdgeConn(send, close, "host-2")
    await relay.on_message({"t": "gone", "conns": ["c1", "c2"], "host": "host-1"})
    assert [json.loads(t)["code"] for t in sent] == ["room_moved"] and closed == [True]
    assert list(relay.edges) == ["c2"]  # another host's connection is not touched
    await relay.close()


async def test_edge_moves_a_client_whose_host_messages_were_lost():
    relay = Relay(stub_cluster([]), manager=None, make_session=None)  # type: ignore[arg-type]
    sent: list[str] = []
    closed: list[str] = []

    def conn(name: str) -> EdgeConn:
        async def send(text: str) -> None:
            sent.append(f"{name}:{text}")

        async def close() -> None:
            closed.append(name)

        return EdgeConn(send, close, "host-1")

    relay.edges["gap"] = conn("gap")
    relay.edges["tail"] = conn("tail")
    relay.edges["fine"] = conn("fine")
    await relay.on_message({"t": "msg", "conn": "gap", "data": "{}", "seq": 1})
    await relay.on_message({"t": "msg", "conn": "gap", "data": "{}", "seq": 3})  # 2 lost
    await relay.on_message({"t": "msg", "conn": "fine", "data": "{}", "seq": 1})
    await relay.on_message(
        {"t": "acks", "host": "host-1", "conns": ["fine", "tail"], "seq": [1, 4]}
    )
    assert sorted(closed) == ["gap", "tail"] and list(relay.edges) == ["fine"]
    assert sum("room_moved" in t for t in sent) == 2
    await relay.close()
