"""A participant's subscriber side: offering it every other participant's tracks on
its subscriber connection, and applying its answers (docs/architecture.md).

Each change in the room (publications came or went) asks for a renegotiation;
renegotiations of one participant run one at a time (a request while one runs marks it
dirty and is served after the answer), take the room's negotiation turn
(:func:`.turns.in_turn`) and wait for joins in progress (:class:`.turns.JoinGate`). A
subscriber connection whose description has too many inactive m-lines is replaced,
make before break. :class:`SubscriberNegotiation` is mixed into
:class:`~.participant.Participant`, which holds the state it declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .base import Refused, SendMessage
from .peer import SubscriberPeer
from .publication import Subscription
from .sdp_limits import check_sdp_bounds
from .turns import in_turn

if TYPE_CHECKING:
    from .participant import Participant
    from .room import Room

__all__ = ["MAX_INACTIVE_MLINES", "RETIRE_SECONDS", "Negotiation", "SubscriberNegotiation"]

#: Ended tracks leave inactive m-lines in the subscriber's description; past this many
#: the subscriber connection is renegotiated from scratch (`restart` in the offer).
MAX_INACTIVE_MLINES = 16
#: A replaced subscriber connection forwards until media flows on every track of its
#: successor, or this long.
RETIRE_SECONDS = 10.0


def _report_for(holder: list[Subscription], sender: object) -> bytes | None:
    """The SR of the subscription whose sender asks (``holder``: filled when it is made;
    a lookup, not a scan of every subscription of the connection at every report)."""
    sub = holder[0] if holder else None
    if sub is None or sub.closed or sub.output is None:
        return None
    return sub.publication.sender_report_for(sub.output, asyncio.get_event_loop().time())


@dataclass
class Negotiation:
    """The subscriber connection's offer/answer state."""

    revision: int = 0
    outstanding: bool = False
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    track_map: dict[str, dict[str, Any]] = field(default_factory=dict)


class SubscriberNegotiation:
    """The subscriber-side methods of a participant (state held by the participant)."""

    id: str
    room: Room
    send: SendMessage
    closed: bool
    subscriber: SubscriberPeer | None
    subscriptions: dict[str, Subscription]
    outputs_by_ssrc: dict[int, Subscription]
    ended_mids: set[str]
    inactive_mlines: int
    negotiation: Negotiation
    _restart_pending: bool
    _retiring: list[tuple[SubscriberPeer, list[Subscription]]]
    _force_restart: bool
    _tasks: set[asyncio.Task[Any]]

    def _spawn(self, coro: Awaitable[Any]) -> None:
        raise NotImplementedError

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        raise NotImplementedError

    def _on_subscriber_rtcp(self, data: bytes) -> None:
        raise NotImplementedError

    def restart_subscriber(self) -> None:
        """Media recovery: the client dropped its subscriber connection; offer a fresh
        one with every live track (``restart`` in the offer)."""
        self._force_restart = True
        self.negotiation.outstanding = False  # the old offer will never be answered
        self.request_renegotiation()

    def request_renegotiation(self) -> None:
        """Publications came or went: offer the subscriber a new description."""
        if self.closed:
            return
        neg = self.negotiation
        if neg.outstanding or (neg.task is not None and not neg.task.done()):
            neg.dirty = True
            return
        neg.dirty = False
        neg.task = asyncio.ensure_future(self._renegotiate_in_turn())
        self._tasks.add(neg.task)
        neg.task.add_done_callback(self._task_done)

    async def _renegotiate_in_turn(self) -> None:
        gate = self.room.join_gate
        if not gate.joining(self.id):  # a newcomer's own offers go first (turns.py)
            await gate.quiet()
        await in_turn(self.room.negotiation_turn, self._renegotiate)

    async def _renegotiate(self) -> None:
        cfg = self.room.manager.config
        wanted = {
            pub.id: pub
            for other in self.room.participants.values()
            if other is not self and not other.closed
            for pub in other.publications.values()
            if not pub.closed
        }
        for pub_id, sub in list(self.subscriptions.items()):
            if pub_id not in wanted:
                await sub.close()
        restart = False
        adding = any(pub_id not in self.subscriptions for pub_id in wanted)
        forced, self._force_restart = self._force_restart, False
        if self.subscriber is not None and (
            forced
            or (
                self.inactive_mlines >= MAX_INACTIVE_MLINES
                and adding  # a fresh connection needs at least one track to offer
            )
        ):
            # The offer keeps growing with every track that ended: start a fresh
            # subscriber connection with only the live tracks (clients replace theirs).
            # Make before break: the old connection keeps forwarding until the new one
            # is connected (or RETIRE_SECONDS passed), so the restart costs no media.
            restart = True
            old, self.subscriber = self.subscriber, None
            retiring = list(self.subscriptions.values())
            for sub in retiring:
                sub.closed = True  # its output stays in the publication's outputs
                sub.publication.subscriptions.pop(self.id, None)
            self.subscriptions.clear()
            self.outputs_by_ssrc.clear()
            self.ended_mids.clear()
            self.inactive_mlines = 0
            self._retiring.append((old, retiring))
        if restart:
            self._restart_pending = True  # the client must replace its connection too
        new = [pub for pub_id, pub in wanted.items() if pub_id not in self.subscriptions]
        if not new and not self.ended_mids:
            return
        if self.subscriber is None:
            if not new:
                return
            self.subscriber = SubscriberPeer(
                self.room.manager.ice_servers,
                cfg.rtc.announced_address,
                on_rtcp=self._on_subscriber_rtcp,
            )
            self._spawn(self._activate_when_connected())
        for pub in new:
            holder: list[Subscription] = []
            transceiver = self.subscriber.add_transceiver(
                pub.kind,
                pub.track,
                stream_id=pub.participant.id,
                sender_report=functools.partial(_report_for, holder),
            )
            sub = Subscription(cast("Participant", self), pub, transceiver)
            holder.append(sub)
            self.subscriptions[pub.id] = sub
            pub.subscriptions[self.id] = sub
        if self.closed or self.subscriber.closed:
            return
        offer = await self.subscriber.create_offer()
        neg = self.negotiation
        neg.revision += 1
        neg.outstanding = True
        neg.track_map = {
            sub.mid: {
                "publication_id": sub.publication.id,
                "participant_id": sub.publication.participant.id,
                "kind": sub.publication.kind,
                "source": sub.publication.source,
            }
            for sub in self.subscriptions.values()
            if sub.mid is not None
        }
        self.ended_mids.clear()
        await self.send(
            {
                "type": "subscribe_offer",
                "sdp": offer,
                "revision": neg.revision,
                "tracks": neg.track_map,
                **({"restart": True} if self._restart_pending else {}),
            }
        )
        self._restart_pending = False

    async def apply_subscribe_answer(self, sdp: str, revision: int) -> None:
        neg = self.negotiation
        if not neg.outstanding or self.subscriber is None:
            raise Refused("bad_state", "no subscribe_offer is waiting for an answer")
        if revision and revision != neg.revision:
            raise Refused(
                "bad_state", f"answer is for revision {revision}, current is {neg.revision}"
            )
        offered = self.subscriber.offered_mlines or None  # the outstanding offer's
        check_sdp_bounds(sdp, self.room.manager.sdp_limits, expected_mlines=offered)
        negotiated = await in_turn(self.room.negotiation_turn, self.subscriber.apply_answer, sdp)
        neg.outstanding = False
        by_mid = {t.mid: t for t in negotiated}
        now = asyncio.get_running_loop().time()
        for sub in list(self.subscriptions.values()):
            track = by_mid.get(sub.mid or "")
            if track is None:
                continue
            output = sub.attach(track)
            if output.active and sub.publication.video:
                sub.publication.request_keyframe(now)
        if neg.dirty:
            self.request_renegotiation()

    async def _activate_when_connected(self) -> None:
        peer = self.subscriber
        assert peer is not None
        retiring, self._retiring = self._retiring, []
        try:
            if retiring:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_media_flows(peer), RETIRE_SECONDS)
        finally:
            for old, subs in retiring:  # the replaced connection: now break it
                for sub in subs:
                    sub._detach()
                with contextlib.suppress(Exception):
                    await old.close()
        await peer.connected.wait()
        await self._activate(peer)

    async def _new_media_flows(self, peer: SubscriberPeer) -> None:
        """The new subscriber connection is connected and forwards on every track (video
        from a keyframe on): only then is the one it replaces closed."""
        await peer.connected.wait()
        await self._activate(peer)
        for _ in range(int(RETIRE_SECONDS / 0.05)):  # polled: packets are counted in ints
            if self.closed or all(
                sub.output is not None and sub.output.packets for sub in self.subscriptions.values()
            ):
                return
            await asyncio.sleep(0.05)

    async def _activate(self, peer: SubscriberPeer) -> None:
        now = asyncio.get_running_loop().time()
        for sub in list(self.subscriptions.values()):
            if sub.output is not None and not sub.output.active:
                sub.output.active = True
                if sub.publication.video:
                    sub.publication.request_keyframe(now)
