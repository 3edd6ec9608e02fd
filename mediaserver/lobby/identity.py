"""Who someone is, as far as a removal is concerned: pure, no IO.

A removal bars the removed participant's *identity* for the rest of the meeting
(docs/protocol.md §13): its participant key's client id, its signed-in user id, its
self-chosen guest name (normalised), the guest invite it came through, and, for someone
who came through the host URL, host rights through the host URL.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Bar", "Identity", "normalise_name"]

# Categories removed before names are compared: format (zero-width, bidi, soft hyphen),
# control, unassigned/private use, combining marks (accents, stacked marks) and every
# kind of separator (spaces, line and paragraph separators).
_DROPPED = frozenset({"Cf", "Cc", "Cn", "Co", "Cs", "Mn", "Me", "Mc", "Zs", "Zl", "Zp"})


def normalise_name(name: str) -> str:
    """The form in which display names are compared for a bar.

    NFKC (compatibility forms: fullwidth, ligatures, superscripts), case folding, then
    decomposition and removal of combining marks, invisible/format characters and all
    whitespace. "Xe\\u200bna", fullwidth "XENA", "x e n a" and "Xe\\u0301na" all become
    "xena". Look-alikes from other scripts (Cyrillic for Latin "a") are *not* unified.
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    decomposed = unicodedata.normalize("NFKD", folded)
    kept = "".join(
        c for c in decomposed if unicodedata.category(c) not in _DROPPED and not c.isspace()
    )
    return unicodedata.normalize("NFKC", kept)


@dataclass(frozen=True)
class Identity:
    """What is known about one arriving (or present) participant."""

    #: The client id of the participant key the client presented, or a fresh one.
    client_id: str
    user_id: str | None = None
    #: normalise_name() of a name the person chose (plain join link or host URL);
    #: empty for names that come from a join token or a guest invite.
    name_key: str = ""
    invite_id: str | None = None
    #: Came through the host URL (not a host join token).
    via_host_link: bool = False


@dataclass
class Bar:
    """The identities removed from one meeting (lives and dies with the room)."""

    clients: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    invites: set[str] = field(default_factory=set)
    #: A host-URL holder was removed: the host URL gives no host rights any more.
    host_link_suspended: bool = False

    def add(self, who: Identity) -> None:
        self.clients.add(who.client_id)
        if who.user_id:
            self.users.add(who.user_id)
        if who.name_key:
            self.names.add(who.name_key)
        if who.invite_id:
            self.invites.add(who.invite_id)
        if who.via_host_link:
            self.host_link_suspended = True

    def bars(self, who: Identity) -> bool:
        return (
            who.client_id in self.clients
            or (who.user_id is not None and who.user_id in self.users)
            or (bool(who.name_key) and who.name_key in self.names)
            or (who.invite_id is not None and who.invite_id in self.invites)
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (sorted: equal bars give equal JSON)."""
        return {
            "clients": sorted(self.clients),
            "users": sorted(self.users),
            "names": sorted(self.names),
            "invites": sorted(self.invites),
            "host_link_suspended": self.host_link_suspended,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bar:
        return cls(
            clients={str(x) for x in data.get("clients", ())},
            users={str(x) for x in data.get("users", ())},
            names={str(x) for x in data.get("names", ())},
            invites={str(x) for x in data.get("invites", ())},
            host_link_suspended=bool(data.get("host_link_suspended", False)),
        )
