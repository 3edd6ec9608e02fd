"""A participant: its publisher and subscriber peer connections, its publications and
its subscriptions, and the subscriber's renegotiation."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpSender
from aiortc.sdp import candidate_from_sdp

from ..limits import TokenBucket
from ..lobby.identity import Identity
from ..logthrottle import LogThrottle
from ..telemetry import get_logger
from . import rtcp
from .base import Refused, SendMessage, new_id
from .layerswitch import SimulcastLayers, bind_by_rid
from .negotiation import NegotiatedTrack, parse_sdp
from .peer import PublisherPeer, RtpHandler, SubscriberPeer
from .publication import Publication, Subscription
from .sdp_limits import check_sdp_bounds
from .simulcast import munge_answer, parse_simulcast_offer
from .turns import in_turn

if TYPE_CHECKING:
    from .room import Room

__all__ = ["MAX_INACTIVE_MLINES", "Participant"]

#: Ended tracks leave inactive m-lines in the subscriber's description; past this many
#: the subscriber connection is renegotiated from scratch (`restart` in the offer).
MAX_INACTIVE_MLINES = 16
#: A replaced subscriber connection forwards until media flows on every track of its
#: successor, or this long.
RETIRE_SECONDS = 10.0
_ssrc_at = struct.Struct("!I")


@dataclass
class _Negotiation:
    revision: int = 0
    outstanding: bool = False
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    track_map: dict[str, dict[str, Any]] = field(default_factory=dict)


class Participant:
    def __init__(self, room: Room, name: str, send: SendMessage) -> None:
        self.id = new_id("PA")
        self.name = name
        self.role = "guest"  # host | member | guest
        self.user_id: str | None = None
        self.invite_id: str | None = None
        #: What a removal of this participant bars (lobby/identity.py).
        self.identity = Identity("")
        self.locked_kinds: set[str] = set()  # kinds a host muted and locked
        self.disconnect: Callable[[], Awaitable[None]] | None = None
        self.speaking_seconds = 0.0
        self.recent_speech = 0.0
        self.room = room
        self.send = send
        self.metrics = room.manager.metrics
        self.rtcp_ssrc = secrets.randbits(32) or 1
        self.publisher: PublisherPeer | None = None
        self.subscriber: SubscriberPeer | None = None
        self.publications: dict[str, Publication] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.outputs_by_ssrc: dict[int, Subscription] = {}
        self.ended_mids: set[str] = set()
        #: m-lines left inactive on the current subscriber connection (aiortc cannot
        #: reuse them): past MAX_INACTIVE_MLINES the connection is replaced.
        self.inactive_mlines = 0
        self._restart_pending = False
        #: replaced subscriber connections still forwarding until the new one connects
        self._retiring: list[tuple[SubscriberPeer, list[Subscription]]] = []
        self._force_restart = False
        self.negotiation = _Negotiation()
        sig = room.manager.config.signalling
        #: publish offers (publication changes): each re-offers every other subscriber
        self.publish_bucket = TokenBucket(sig.publishes_per_minute / 60.0, sig.publish_burst)
        self.closed = False
        self.joined_at = time.time()
        self.log = get_logger(room=room.id, participant=self.id)
        self.throttled_log = LogThrottle(self.log)  # for warnings a client can trigger
        self._tasks: set[asyncio.Task[Any]] = set()
        #: rendered size per publication id (``video_size``; absent: DEFAULT_SIZE)
        self.video_sizes: dict[str, tuple[int, int]] = {}
        #: the latest REMB this participant sent for its subscriber connection
        self.downlink_estimate: int | None = None
        self.downlink_estimate_at = 0.0
        #: last-N (rooms.last_n): whose camera video this participant gets (None: all)
        self.video_from: frozenset[str] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "publications": [p.describe() for p in self.publications.values()],
        }

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("participant task failed", exc_info=task.exception())

    def send_to_publisher(self, data: bytes) -> None:
        """Send RTCP to the publisher now (SRTCP + sendto), without awaiting; before
        the send path resolves, through aiortc's coroutine in a task."""
        publisher = self.publisher
        if publisher is not None and not publisher.send_rtcp_now(data):
            self._spawn(publisher.send_rtp(data))

    # --- publishing -----------------------------------------------------------------

    async def publish(
        self, offer_sdp: str, restart: bool = False, sources: dict[str, str] | None = None
    ) -> tuple[str, list[Publication]]:
        """Answer a publish offer; new m-lines become publications. ``restart``: the
        offer is for a fresh connection (media recovery) that replaces the current one;
        publications whose mid, kind and codec it repeats carry on (see ``_rebind``)."""
        cfg = self.room.manager.config
        check_sdp_bounds(offer_sdp, self.room.manager.sdp_limits)  # before aiortc sees it
        if restart and self.publisher is not None:
            old, self.publisher = self.publisher, None
            with contextlib.suppress(Exception):
                await old.close()
        offer = parse_sdp(offer_sdp, "offer")
        known_mids = {p.track.mid for p in self.publications.values()}
        new_sending = [
            m
            for m in offer.media
            if str(m.rtp.muxId) not in known_mids and m.direction in ("sendonly", "sendrecv")
        ]
        limit = cfg.rooms.max_publications_per_participant
        if len(self.publications) + len(new_sending) > limit:
            raise Refused(
                "too_many_publications",
                f"at most {limit} publications per participant "
                f"(have {len(self.publications)}, offer adds {len(new_sending)})",
            )
        if self.publisher is None:
            self.publisher = PublisherPeer(
                self.room.manager.ice_servers,
                cfg.rtc.announced_address,
                on_rtcp=self._on_publisher_rtcp,
                on_unknown_rtp=self._route_unknown_ssrc,
            )
            if self.room.join_gate.joining(self.id):
                self._spawn(self._joined_when_connected(self.publisher))
        simulcast = parse_simulcast_offer(offer_sdp)
        try:
            answer, tracks = await self.publisher.answer(offer_sdp)
        except Exception:
            if not self.publications:  # a failed first offer leaves nothing behind
                publisher, self.publisher = self.publisher, None
                # aiortc may fail to close a half-negotiated connection (a transceiver
                # without transport): the refusal of the offer is what the client needs
                with contextlib.suppress(Exception):
                    await publisher.close()
            raise
        answer = munge_answer(answer, simulcast)
        known = {p.track.mid: p for p in self.publications.values()}
        added: list[Publication] = []
        for track in tracks:
            if "recv" not in track.direction:
                continue
            if track.mid in known:
                if restart:  # media recovery: the publication carries on
                    known[track.mid].restart(track)
                    self._route(known[track.mid], track)
                continue
            layered = track.kind == "video" and track.mid in simulcast
            pub = Publication(self, track, native=not layered)  # layers: the Python twin
            source = (sources or {}).get(track.mid)
            if source == "screen" and pub.video:
                pub.source = "screen"
            if layered:
                pub.simulcast = SimulcastLayers.of(
                    pub, simulcast[track.mid], cfg.rtc.simulcast_uplink_bitrate
                )
            if pub.kind in self.locked_kinds:  # a host locked this kind: it starts muted
                pub.set_muted(True)
            self._route(pub, track)
            self.publications[pub.id] = pub
            self.metrics.publications.labels(pub.kind).inc()
            added.append(pub)
        return answer, added

    async def _joined_when_connected(self, publisher: PublisherPeer) -> None:
        """The join is over for the room's join gate once media can flow."""
        await publisher.connected.wait()
        self.room.join_gate.finished(self.id)

    def _route(self, pub: Publication, track: NegotiatedTrack) -> None:
        assert self.publisher is not None
        if pub.simulcast is not None:
            return  # layers are bound by their rid when their packets appear
        if track.ssrc:
            pub.bind_ssrc(track.ssrc)
            self.publisher.routes[track.ssrc] = pub.on_rtp
        if track.rtx_ssrc:
            self.publisher.routes[track.rtx_ssrc] = pub.on_rtx

    def restart_subscriber(self) -> None:
        """Media recovery: the client dropped its subscriber connection; offer a fresh
        one with every live track (``restart`` in the offer)."""
        self._force_restart = True
        self.negotiation.outstanding = False  # the old offer will never be answered
        self.request_renegotiation()

    def _route_unknown_ssrc(self, data: bytes) -> RtpHandler | None:
        """An SSRC the offer did not announce: match it by payload type, once."""
        if self.publisher is None:
            return None
        pt = data[1] & 0x7F
        ssrc = _ssrc_at.unpack_from(data, 8)[0]
        bound = self._bind_layer(data, ssrc)
        if bound is not None:
            return bound
        candidates = [
            p
            for p in self.publications.values()
            if p.track.payload_type == pt and p.simulcast is None
        ]
        if len(candidates) == 1 and candidates[0].stats is None:
            pub = candidates[0]
            pub.bind_ssrc(ssrc)
            self.publisher.routes[ssrc] = pub.on_rtp
            return pub.on_rtp
        return None

    def _bind_layer(self, data: bytes, ssrc: int) -> RtpHandler | None:
        """A simulcast layer's SSRC, named by its rid (RTX: repaired-rid) extension."""
        if self.publisher is None:
            return None
        found = bind_by_rid(list(self.publications.values()), data, ssrc)
        if found is None:
            return None
        rid, rtx, handler = found
        self.publisher.routes[ssrc] = handler
        self.log.info("simulcast layer bound", rid=rid, ssrc=ssrc, rtx=rtx)
        if not rtx:
            self.metrics.simulcast_layers_bound.inc()
        return handler

    def _on_publisher_rtcp(self, data: bytes) -> None:
        try:
            items = rtcp.parse_rtcp(data)
        except ValueError:
            return
        now = asyncio.get_running_loop().time()
        for item in items:
            if isinstance(item, rtcp.SenderReport):
                for pub in self._inbound_streams():
                    if pub.ssrc == item.ssrc:
                        pub.on_sender_report(item.ntp, item.rtp_ts, now)

    # --- subscribing ----------------------------------------------------------------

    def _on_subscriber_rtcp(self, data: bytes) -> None:
        try:
            items = rtcp.parse_rtcp(data)
        except ValueError:
            return
        now = asyncio.get_running_loop().time()
        m = self.metrics
        for item in items:
            if isinstance(item, rtcp.Nack):
                m.rtcp_feedback.labels("nack").inc()
                sub = self.outputs_by_ssrc.get(item.media_ssrc)
                if sub is None or sub.output is None or self.subscriber is None:
                    continue
                for seq in item.lost:
                    pkt = sub.output.retransmission(seq)
                    if pkt is not None and self.subscriber.send_rtp_now(pkt):
                        sub.publication.rtx_sent += 1
            elif isinstance(item, (rtcp.Pli, rtcp.Fir)):
                m.rtcp_feedback.labels("pli" if isinstance(item, rtcp.Pli) else "fir").inc()
                ssrcs = (
                    [item.media_ssrc]
                    if isinstance(item, rtcp.Pli)
                    else [e[0] for e in item.entries]
                )
                for ssrc in ssrcs:
                    sub = self.outputs_by_ssrc.get(ssrc)
                    if sub is not None:
                        sub.publication.request_keyframe(now)
            elif isinstance(item, rtcp.Remb):
                m.rtcp_feedback.labels("remb").inc()
                self.downlink_estimate = item.bitrate
                self.downlink_estimate_at = now
                for ssrc in item.ssrcs:
                    sub = self.outputs_by_ssrc.get(ssrc)
                    if sub is not None:
                        sub.publication.remb.update(self.id, item.bitrate, now)

    def _sender_report(self, sender: RTCRtpSender) -> bytes | None:
        for sub in self.subscriptions.values():
            if sub.transceiver.sender is sender and sub.output is not None:
                return sub.publication.sender_report_for(
                    sub.output, asyncio.get_event_loop().time()
                )
        return None

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
            transceiver = self.subscriber.add_transceiver(
                pub.kind, pub.track, stream_id=pub.participant.id, sender_report=self._sender_report
            )
            sub = Subscription(self, pub, transceiver)
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

    async def add_ice_candidate(self, target: str, candidate: dict[str, Any] | None) -> None:
        peer = self.publisher if target == "publisher" else self.subscriber
        if peer is None:
            raise Refused("bad_state", f"no {target} connection yet")
        if peer.pc.remoteDescription is None:  # aiortc accepts it, with a warning
            self.throttled_log.warning("ice candidate before remote description", target=target)
        if candidate is None or not candidate.get("candidate"):
            await peer.pc.addIceCandidate(None)  # end of candidates
            return
        text = str(candidate["candidate"])
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        try:
            cand = candidate_from_sdp(text)
        except Exception as exc:
            raise Refused("invalid_field", f"candidate: unparseable ({exc})") from None
        cand.sdpMid = candidate.get("sdpMid")
        cand.sdpMLineIndex = candidate.get("sdpMLineIndex")
        if cand.sdpMid is None and cand.sdpMLineIndex is None:
            cand.sdpMLineIndex = 0
        try:
            await peer.pc.addIceCandidate(cand)
        except Exception as exc:
            raise Refused("invalid_field", f"candidate: rejected ({exc})") from None

    async def tick(self, now: float, report_due: bool) -> None:
        if report_due:  # the selected ICE pairs may have changed
            for peer in (self.subscriber, self.publisher):
                if peer is not None:
                    peer.refresh_fast_path()
        if self.publisher is None or not self.publications:
            return
        out = b""
        blocks: list[rtcp.ReportBlock] = []
        for pub in self.publications.values():
            out += await pub.tick(now, report_due)
        if report_due:
            blocks = [p.stats.report_block(now) for p in self._inbound_streams() if p.stats]
        if blocks:
            out = rtcp.build_rr(self.rtcp_ssrc, blocks[:31]) + out
        if out:
            await self.publisher.send_rtp(out)

    def rendered_size(self, pub: Publication) -> tuple[int, int] | None:
        """The size this subscriber draws ``pub`` at: (0, 0) for a camera outside its
        last-N, else its ``video_size`` (None: never said)."""
        allowed = self.video_from
        if allowed is not None and pub.source == "camera" and pub.participant.id not in allowed:
            return (0, 0)
        return self.video_sizes.get(pub.id)

    def _inbound_streams(self) -> list[Publication]:
        """Every stream the publisher sends: publications, and simulcast layers."""
        pubs = self.publications.values()
        return [*pubs, *(la.pub for p in pubs if p.simulcast for la in p.simulcast.layers)]

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        for pub in list(self.publications.values()):
            await pub.close()
        for sub in list(self.subscriptions.values()):
            sub._detach()
        retiring, self._retiring = self._retiring, []
        for old, subs in retiring:
            for sub in subs:
                sub._detach()
            with contextlib.suppress(Exception):
                await old.close()
        for peer in (self.publisher, self.subscriber):
            if peer is not None:
                with contextlib.suppress(Exception):
                    await peer.close()
