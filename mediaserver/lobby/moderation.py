"""Host moderation of a room (the caller checks that the requester is a host)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .policy import GUEST_POLICIES

if TYPE_CHECKING:
    from ..sfu.participant import Participant
    from ..sfu.publication import Publication
    from ..sfu.room import Room

__all__ = [
    "end_meeting",
    "lock_room",
    "mute_all",
    "remove_participant",
    "set_guest_policy",
    "stop_screen_share",
    "unlock_media",
]


async def mute_all(room: Room, by: Participant, kind: str, *, lock: bool) -> int:
    """Stop forwarding every ``kind`` publication of everyone but ``by``; tell their
    publishers. With ``lock`` they cannot turn it back on until unlocked."""
    count = 0
    if lock:
        room.media_locks.add(kind)  # also for people who join or publish later
    for p in list(room.participants.values()):
        if p is by:
            continue
        if lock and p.role != "host":
            p.locked_kinds.add(kind)
        for pub in p.publications.values():
            if pub.kind != kind or pub.muted:
                continue
            await _mute(room, by, p, pub)
            count += 1
        with contextlib.suppress(Exception):
            await p.send(
                {"type": "moderated", "action": "muted", "kind": kind, "locked": lock, "by": by.id}
            )
    return count


async def stop_screen_share(room: Room, by: Participant, target: Participant) -> int:
    """Mute ``target``'s screen publications (a ``publication_muted`` broadcast each) and
    tell it (``moderated`` with action ``screen_share_stopped``): its page ends the share."""
    count = 0
    for pub in list(target.publications.values()):
        if pub.source != "screen" or pub.muted:
            continue
        await _mute(room, by, target, pub)
        count += 1
    with contextlib.suppress(Exception):
        await target.send({"type": "moderated", "action": "screen_share_stopped", "by": by.id})
    return count


async def _mute(room: Room, by: Participant, owner: Participant, pub: Publication) -> None:
    pub.set_muted(True)
    await room.broadcast(
        {
            "type": "publication_muted",
            "participant_id": owner.id,
            "publication_id": pub.id,
            "muted": True,
            "by": by.id,
        }
    )
    if pub.source == "screen":
        await room.apply_last_n()  # no longer sharing: its camera is under last-N again


async def unlock_media(room: Room, by: Participant, kind: str) -> None:
    room.media_locks.discard(kind)
    for p in list(room.participants.values()):
        if kind in p.locked_kinds:
            p.locked_kinds.discard(kind)
            with contextlib.suppress(Exception):
                await p.send({"type": "moderated", "action": "unlocked", "kind": kind, "by": by.id})


async def remove_participant(room: Room, by: Participant, target: Participant) -> None:
    """Remove ``target`` and bar its identity for the rest of this meeting (§13): the
    bar is recorded first, so no admission step can let it back in from here on."""
    room.bar.add(target.identity)
    room.manager.metrics.removals.inc()
    with contextlib.suppress(Exception):
        await target.send(
            {"type": "removed", "by": by.id, "message": "a host removed you from the meeting"}
        )
    await room.leave(target, "removed")
    if target.disconnect is not None:
        await target.disconnect()
    await room.lobby.refuse_barred()  # e.g. the same name knocking again meanwhile
    if room.guest_policy == "allow" and room.link_id is not None:
        # Whoever comes back under a new identity must pass the waiting room.
        await set_guest_policy(room, by, "lobby")


async def lock_room(room: Room, by: Participant, locked: bool) -> None:
    room.locked = locked
    await room.broadcast({"type": "room_locked", "locked": locked, "by": by.id})


async def set_guest_policy(room: Room, by: Participant, policy: str) -> None:
    """Change the guest policy live: "allow" admits everyone waiting, "deny" refuses them."""
    assert policy in GUEST_POLICIES
    room.guest_policy = policy
    await room.broadcast({"type": "guest_policy", "policy": policy, "by": by.id})
    if policy == "allow":
        await room.lobby.admit_all()
    elif policy == "deny":
        await room.lobby.refuse_all("this meeting no longer admits guests", "guests_denied")


async def end_meeting(room: Room, by: Participant) -> None:
    await room.manager.close_room(room, "ended_by_host")
