"""Admission policy: pure functions, no IO."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "GUEST_POLICIES",
    "Admission",
    "decide_admission",
    "decide_knock",
    "effective_guest_policy",
    "link_role",
]

GUEST_POLICIES = ("allow", "lobby", "deny")


@dataclass(frozen=True)
class Admission:
    """``action`` is "admit", "lobby" or "refuse" (then ``code`` and ``message``)."""

    action: str
    code: str = ""
    message: str = ""


ADMIT = Admission("admit")
LOBBY = Admission("lobby")


def effective_guest_policy(options: dict[str, Any], tenant_default: str = "lobby") -> str:
    """A link's guest policy: its own, else the tenant's; ``waiting_room: false`` turns
    "lobby" into "allow"."""
    policy = str(options.get("guest_policy") or tenant_default)
    if policy not in GUEST_POLICIES:
        policy = "lobby"
    if policy == "lobby" and options.get("waiting_room") is False:
        return "allow"
    return policy


def decide_admission(
    *,
    role: str,
    guest_policy: str,
    locked: bool,
    barred: bool,
    guests_in_room: int,
    max_guests: int,
) -> Admission:
    """What happens to someone arriving at a room.

    Hosts and members never wait (a removed person stays out, even a member; a locked
    room still lets hosts and members in). Guests follow the room's live guest policy.
    """
    if barred:
        return Admission("refuse", "removed", "you were removed from this meeting")
    if role in ("host", "member"):
        return ADMIT
    if guest_policy == "deny":
        return Admission("refuse", "guests_denied", "this meeting does not admit guests")
    if locked:
        return Admission("refuse", "room_locked", "the host has locked this meeting")
    if max_guests and guests_in_room >= max_guests:
        return Admission(
            "refuse", "guests_full", f"this meeting admits at most {max_guests} guests"
        )
    if guest_policy == "allow":
        return ADMIT
    return LOBBY


def link_role(role: str, *, via_host_link: bool, host_link_suspended: bool) -> str:
    """The role of a join: the host URL gives no host rights once a host-URL holder was
    removed from the meeting; such a join is a guest's (who follows the guest policy)."""
    if via_host_link and host_link_suspended:
        return "guest"
    return role


def decide_knock(
    *, waiting: int, waiting_from_address: int, max_waiting: int, max_per_address: int
) -> Admission | None:
    """None if one more guest may wait, else the refusal (``lobby_full``)."""
    if waiting >= max_waiting:
        return Admission(
            "refuse", "lobby_full", f"the waiting room is full ({max_waiting} waiting)"
        )
    if max_per_address and waiting_from_address >= max_per_address:
        return Admission(
            "refuse",
            "lobby_full",
            f"too many guests from your address are waiting ({max_per_address})",
        )
    return None
