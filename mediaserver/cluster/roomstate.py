"""A room's state that must survive a move to another node.

The hosting node writes a snapshot of each room it hosts to ``{p}room:{room}:state``
(JSON) at every heartbeat when it changed, fenced by its lease (a stale host cannot
overwrite it); a node that starts hosting the room reads it together with the lease
and applies it to the new :class:`Room` before the first join is decided. So a moved
meeting keeps its settings from the link, its guest policy (the waiting room: guests
who were waiting knock again on the new node), lock, media locks, its removal bar
(lobby/identity.py: barred client ids, users, names, invites, the host-URL suspension)
and the speaking totals of everyone (by participant-key client id: clients present
their key again when they rejoin on the new node). A room
that closes for good (empty, ended, revoked) deletes its state; one closed because it
moved (fenced, lease lost) or because its node drains keeps it for its next host.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..lobby.identity import Bar

if TYPE_CHECKING:
    from ..sfu.room import Room

__all__ = ["KEEP_STATE_REASONS", "STATE_TTL_MS", "apply", "snapshot"]

#: Close reasons after which the meeting goes on elsewhere.
KEEP_STATE_REASONS = frozenset({"moved", "server_shutdown"})
#: A state nobody hosts any more (every node died) is dropped after a day.
STATE_TTL_MS = 86_400_000

_SETTINGS = (
    "link_id",
    "tenant_id",
    "max_participants",
    "max_guests",
    "guest_policy",
    "share_url",
    "title",
    "locked",
    "recording_policy",
)


def snapshot(room: Room) -> str:
    """The room's state as canonical JSON (equal JSON: nothing to write)."""
    speaking = dict(room.speaking_carried)
    for p in room.participants.values():
        speaking[p.identity.client_id] = round(p.speaking_seconds, 2)
    state: dict[str, Any] = {name: getattr(room, name) for name in _SETTINGS}
    state["media_locks"] = sorted(room.media_locks)
    state["bar"] = room.bar.to_json()
    state["speaking"] = speaking
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def apply(room: Room, raw: str | bytes) -> None:
    """Restore a snapshot on a new room (no participant has joined it yet)."""
    state = json.loads(raw)
    for name in _SETTINGS:
        if name in state:
            setattr(room, name, state[name])
    room.media_locks = set(state.get("media_locks", ()))
    room.bar = Bar.from_json(state.get("bar") or {})
    room.speaking_carried = {str(k): float(v) for k, v in state.get("speaking", {}).items()}
