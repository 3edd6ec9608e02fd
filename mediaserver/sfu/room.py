"""Rooms, participants, publications and subscriptions: the SFU's ownership tree.

    RoomManager ─ Room ─ Participant ─┬─ Publication   (a track the participant sends us)
                                      └─ Subscription  (a Publication forwarded to it)

A child is created by its parent, removes itself from the parent when it closes, and a
closing parent closes its children. Media never goes through asyncio queues: the
publisher connection calls :meth:`Publication.on_rtp`, which writes to the subscriber
connections directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.sdp import candidate_from_sdp

from ..config import Config
from ..telemetry import Metrics, get_logger
from . import rtcp
from .forwarder import ForwardingTrack, InboundExtIds, OutputParams, OutputStream, unwrap_rtx
from .negotiation import NegotiatedTrack, parse_sdp
from .peer import PublisherPeer, RtpHandler, SubscriberPeer

__all__ = [
    "JoinRefused",
    "Participant",
    "Publication",
    "Refused",
    "Room",
    "RoomManager",
    "Subscription",
]

SendMessage = Callable[[dict[str, Any]], Awaitable[None]]
TICK_SECONDS = 0.05
#: RFC 6464 levels at or below this (-dBov) count as speech.
SPEAKING_LEVEL = 50
#: Ended tracks leave inactive m-lines in the subscriber's description; past this many
#: the subscriber connection is renegotiated from scratch (`restart` in the offer).
MAX_INACTIVE_MLINES = 16
SPEAKER_INTERVAL = 0.5
STATS_INTERVAL = 2.0
REPORT_INTERVAL = 1.0
KEYFRAME_RETRY_SECONDS = 0.5
_seq_ts = struct.Struct("!HI")
_ssrc_at = struct.Struct("!I")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(9)}"


class Refused(Exception):
    """A request the server will not carry out; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details  # extra fields of the error reply (e.g. opens_at)


class JoinRefused(Refused):
    pass


class Publication:
    """One inbound track: receive statistics, NACKs and keyframe requests toward the
    publisher, and the forwarding state toward every subscriber."""

    def __init__(self, participant: Participant, track: NegotiatedTrack) -> None:
        self.id = new_id("PU")
        self.participant = participant
        self.track = track
        self.kind = track.kind
        self.video = track.kind == "video"
        self.forwarding = ForwardingTrack(
            track.codec,
            video=self.video,
            ext_ids=InboundExtIds(
                audio_level=track.audio_level_ext_id, abs_send_time=track.abs_send_time_ext_id
            ),
        )
        self.ssrc = track.ssrc
        self.stats: rtcp.InboundStreamStats | None = None
        self.nacks = rtcp.NackTracker() if self.video else None
        self.keyframes = rtcp.KeyframeRequestThrottle(min_interval=0.3)
        self.remb = rtcp.RembAggregator()
        self.clock = rtcp.SenderReportClock()
        self.muted = False
        self.closed = False
        self.subscriptions: dict[str, Subscription] = {}
        # Counters flushed to Prometheus by the room ticker (never per packet).
        self.received = 0
        self.forwarded_packets = 0
        self.forwarded_octets = 0
        self.rtx_sent = 0
        self.last_keyframe_retry = 0.0
        self.last_remb_sent: int | None = None
        self._last_level_ts: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "participant_id": self.participant.id,
            "kind": self.kind,
            "codec": self.track.codec,
            "muted": self.muted,
        }

    def bind_ssrc(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.stats = rtcp.InboundStreamStats(ssrc, self.track.clock_rate)

    async def on_rtp(self, data: bytes, now: float) -> None:
        """Hot path: one inbound packet from the publisher."""
        if self.stats is None:
            self.bind_ssrc(_ssrc_at.unpack_from(data, 8)[0])
        if data[1] & 0x7F != self.track.payload_type:
            return  # another codec than negotiated, or padding-only probes
        seq, ts = _seq_ts.unpack_from(data, 2)
        self.received += 1
        stats = self.stats
        assert stats is not None
        stats.on_packet(seq, ts, now)
        nacks = self.nacks
        if nacks is not None:
            lost = nacks.on_packet(seq, now)
            if lost:
                await self.participant.send_to_publisher(
                    rtcp.build_nack(self.participant.rtcp_ssrc, self.ssrc, lost)
                )
                self.participant.metrics.nacks_sent.inc(len(lost))
        try:
            out, _ = self.forwarding.route(data, now)
        except ValueError:
            return
        level = self.forwarding.level
        if level >= 0:
            self._account_speech(ts, level)
        for output, pkt in out:
            drop = output.drop_filter
            if drop is not None and drop(seq):
                continue
            sink = output.sink
            if sink is not None and sink(pkt):
                self.forwarded_packets += 1
                self.forwarded_octets += len(pkt)

    def _account_speech(self, ts: int, level: int) -> None:
        """Speaking time from the RFC 6464 audio level (no decoding)."""
        last = self._last_level_ts
        self._last_level_ts = ts
        if last is None:
            return
        delta = ((ts - last) & 0xFFFFFFFF) / self.track.clock_rate
        if delta <= 0 or delta > 0.2:  # reordering or a gap: count nothing
            return
        if level <= SPEAKING_LEVEL and not self.muted:
            self.participant.speaking_seconds += delta
            self.participant.recent_speech += delta

    async def on_rtx(self, data: bytes, now: float) -> None:
        """A retransmission from the publisher (answer to our NACK): unwrap, forward."""
        if data[1] & 0x7F != self.track.rtx_payload_type:
            return
        original = unwrap_rtx(data, self.ssrc, self.track.payload_type)
        if original is not None:
            await self.on_rtp(original, now)

    def on_sender_report(self, ntp: int, rtp_ts: int, now: float) -> None:
        if self.stats is not None:
            self.stats.on_sender_report(ntp, now)
        self.clock.on_sender_report(ntp, rtp_ts, now)

    async def request_keyframe(self, now: float) -> None:
        if not self.video or not self.ssrc:
            return
        if self.keyframes.should_send(now):
            await self.participant.send_to_publisher(
                rtcp.build_pli(self.participant.rtcp_ssrc, self.ssrc)
            )
            self.participant.metrics.keyframe_requests.inc()

    def sender_report_for(self, output: OutputStream, now: float) -> bytes | None:
        if not self.clock.has_reference or output.packets == 0:
            return None
        rtp_ts = output.output_ts(self.clock.rtp_at(now, self.track.clock_rate))
        return rtcp.build_sr(
            output.params.ssrc,
            self.clock.ntp_at(now),
            rtp_ts,
            output.packets & 0xFFFFFFFF,
            output.octets & 0xFFFFFFFF,
        )

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        self.forwarding.muted = muted
        if muted:
            self.forwarding.pause_outputs()

    async def tick(self, now: float, report_due: bool) -> bytes:
        """Periodic work; returns RTCP bytes to append to the publisher's report."""
        out = b""
        if self.nacks is not None and self.ssrc:
            due = self.nacks.due(now)
            if due:
                out += rtcp.build_nack(self.participant.rtcp_ssrc, self.ssrc, due)
                self.participant.metrics.nacks_sent.inc(len(due))
        if (
            self.video
            and not self.muted
            and now - self.last_keyframe_retry >= KEYFRAME_RETRY_SECONDS
            and any(o.active and o.waiting_keyframe for o in self.forwarding.outputs)
        ):
            self.last_keyframe_retry = now
            await self.request_keyframe(now)
        if report_due and self.ssrc:
            bitrate = self.remb.minimum(now)
            if bitrate is not None:
                out += rtcp.build_remb(self.participant.rtcp_ssrc, bitrate, [self.ssrc])
                self.last_remb_sent = bitrate
        return out

    def flush_metrics(self, metrics: Metrics) -> None:
        metrics.flush_forwarding(
            self.kind, self.forwarded_packets, self.forwarded_octets, self.received
        )
        if self.rtx_sent:
            metrics.rtx_sent.inc(self.rtx_sent)
        self.forwarded_packets = self.forwarded_octets = self.received = self.rtx_sent = 0

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sub in list(self.subscriptions.values()):
            await sub.close()
        self.participant.metrics.publications.labels(self.kind).dec()


class Subscription:
    """One publication forwarded to one participant, on one transceiver."""

    def __init__(
        self, subscriber: Participant, publication: Publication, transceiver: RTCRtpTransceiver
    ) -> None:
        self.subscriber = subscriber
        self.publication = publication
        self.transceiver = transceiver
        self.output: OutputStream | None = None
        self.closed = False

    @property
    def mid(self) -> str | None:
        mid = self.transceiver.mid
        return None if mid is None else str(mid)

    def attach(self, negotiated: NegotiatedTrack) -> OutputStream:
        """The subscriber answered: start forwarding with what it negotiated."""
        params = OutputParams(
            ssrc=negotiated.ssrc or int(self.transceiver.sender._ssrc),
            payload_type=negotiated.payload_type,
            mid=negotiated.mid,
            mid_ext_id=negotiated.mid_ext_id,
            audio_level_ext_id=negotiated.audio_level_ext_id,
            abs_send_time_ext_id=negotiated.abs_send_time_ext_id,
            rtx_ssrc=negotiated.rtx_ssrc,
            rtx_payload_type=negotiated.rtx_payload_type if negotiated.rtx_ssrc else 0,
        )
        if self.output is not None and self.output.params == params:
            return self.output
        if self.output is not None:
            self._detach()
        output = OutputStream(params, self.subscriber.id, video=self.publication.video)
        peer = self.subscriber.subscriber
        assert peer is not None
        output.sink = peer.send_rtp_now
        output.active = peer.connected.is_set()
        self.output = output
        self.publication.forwarding.outputs.append(output)
        self.subscriber.outputs_by_ssrc[params.ssrc] = self
        return output

    def _detach(self) -> None:
        output = self.output
        if output is None:
            return
        with contextlib.suppress(ValueError):
            self.publication.forwarding.outputs.remove(output)
        self.subscriber.outputs_by_ssrc.pop(output.params.ssrc, None)
        self.publication.remb.remove(self.subscriber.id)
        self.output = None

    async def close(self) -> None:
        """Stop forwarding and end the track on the subscriber's side."""
        if self.closed:
            return
        self.closed = True
        self._detach()
        self.publication.subscriptions.pop(self.subscriber.id, None)
        self.subscriber.subscriptions.pop(self.publication.id, None)
        self.subscriber.ended_mids.add(self.mid or "")
        self.subscriber.inactive_mlines += 1
        self.transceiver.direction = "inactive"
        with contextlib.suppress(Exception):
            await self.transceiver.sender.stop()  # sends RTCP BYE: the remote track ends
        self.subscriber.request_renegotiation()


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
        self.bar_key = ""  # identity barred if a host removes this participant
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
        self.negotiation = _Negotiation()
        self.closed = False
        self.joined_at = time.time()
        self.log = get_logger(room=room.id, participant=self.id)
        self._tasks: set[asyncio.Task[Any]] = set()

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

    async def send_to_publisher(self, data: bytes) -> None:
        if self.publisher is not None:
            await self.publisher.send_rtp(data)

    # --- publishing -----------------------------------------------------------------

    async def publish(self, offer_sdp: str) -> tuple[str, list[Publication]]:
        """Answer a publish offer; new m-lines become publications."""
        cfg = self.room.manager.config
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
        try:
            answer, tracks = await self.publisher.answer(offer_sdp)
        except Exception:
            if not self.publications:  # a failed first offer leaves nothing behind
                publisher, self.publisher = self.publisher, None
                await publisher.close()
            raise
        known = {p.track.mid: p for p in self.publications.values()}
        added: list[Publication] = []
        for track in tracks:
            if track.mid in known or "recv" not in track.direction:
                continue
            pub = Publication(self, track)
            if pub.kind in self.locked_kinds:  # a host locked this kind: it starts muted
                pub.set_muted(True)
            if track.ssrc:
                pub.bind_ssrc(track.ssrc)
                self.publisher.routes[track.ssrc] = pub.on_rtp
            if track.rtx_ssrc:
                self.publisher.routes[track.rtx_ssrc] = pub.on_rtx
            self.publications[pub.id] = pub
            self.metrics.publications.labels(pub.kind).inc()
            added.append(pub)
        return answer, added

    def _route_unknown_ssrc(self, data: bytes) -> RtpHandler | None:
        """An SSRC the offer did not announce: match it by payload type, once."""
        if self.publisher is None:
            return None
        pt = data[1] & 0x7F
        ssrc = _ssrc_at.unpack_from(data, 8)[0]
        candidates = [p for p in self.publications.values() if p.track.payload_type == pt]
        if len(candidates) == 1 and candidates[0].stats is None:
            pub = candidates[0]
            pub.bind_ssrc(ssrc)
            self.publisher.routes[ssrc] = pub.on_rtp
            return pub.on_rtp
        return None

    async def _on_publisher_rtcp(self, data: bytes) -> None:
        try:
            items = rtcp.parse_rtcp(data)
        except ValueError:
            return
        now = asyncio.get_running_loop().time()
        for item in items:
            if isinstance(item, rtcp.SenderReport):
                for pub in self.publications.values():
                    if pub.ssrc == item.ssrc:
                        pub.on_sender_report(item.ntp, item.rtp_ts, now)

    # --- subscribing ----------------------------------------------------------------

    async def _on_subscriber_rtcp(self, data: bytes) -> None:
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
                        await sub.publication.request_keyframe(now)
            elif isinstance(item, rtcp.Remb):
                m.rtcp_feedback.labels("remb").inc()
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
        neg.task = asyncio.ensure_future(self._renegotiate())
        self._tasks.add(neg.task)
        neg.task.add_done_callback(self._task_done)

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
        if (
            self.subscriber is not None
            and self.inactive_mlines >= MAX_INACTIVE_MLINES
            and adding  # a fresh connection needs at least one track to offer
        ):
            # The offer keeps growing with every track that ended: start a fresh
            # subscriber connection with only the live tracks (clients replace theirs).
            restart = True
            old, self.subscriber = self.subscriber, None
            for sub in list(self.subscriptions.values()):
                sub._detach()
                sub.closed = True
                sub.publication.subscriptions.pop(self.id, None)
            self.subscriptions.clear()
            self.outputs_by_ssrc.clear()
            self.ended_mids.clear()
            self.inactive_mlines = 0
            with contextlib.suppress(Exception):
                await old.close()
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
        negotiated = await self.subscriber.apply_answer(sdp)
        neg.outstanding = False
        by_mid = {t.mid: t for t in negotiated}
        now = asyncio.get_running_loop().time()
        for sub in list(self.subscriptions.values()):
            track = by_mid.get(sub.mid or "")
            if track is None:
                continue
            output = sub.attach(track)
            if output.active and sub.publication.video:
                await sub.publication.request_keyframe(now)
        if neg.dirty:
            self.request_renegotiation()

    async def _activate_when_connected(self) -> None:
        peer = self.subscriber
        assert peer is not None
        await peer.connected.wait()
        now = asyncio.get_running_loop().time()
        for sub in list(self.subscriptions.values()):
            if sub.output is not None and not sub.output.active:
                sub.output.active = True
                if sub.publication.video:
                    await sub.publication.request_keyframe(now)

    async def add_ice_candidate(self, target: str, candidate: dict[str, Any] | None) -> None:
        peer = self.publisher if target == "publisher" else self.subscriber
        if peer is None:
            raise Refused("bad_state", f"no {target} connection yet")
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
        if report_due and self.subscriber is not None:
            self.subscriber.refresh_fast_path()
        if self.publisher is None or not self.publications:
            return
        out = b""
        blocks = []
        for pub in self.publications.values():
            out += await pub.tick(now, report_due)
            if report_due and pub.stats is not None:
                blocks.append(pub.stats.report_block(now))
        if blocks:
            out = rtcp.build_rr(self.rtcp_ssrc, blocks[:31]) + out
        if out:
            await self.publisher.send_rtp(out)

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
        for peer in (self.publisher, self.subscriber):
            if peer is not None:
                with contextlib.suppress(Exception):
                    await peer.close()


class Room:
    def __init__(self, manager: RoomManager, room_id: str) -> None:
        self.manager = manager
        self.id = room_id
        self.participants: dict[str, Participant] = {}
        self.closed = False
        self.empty_since: float | None = asyncio.get_event_loop().time()
        self.log = get_logger(room=room_id)
        self._last_report = 0.0
        self.link_id: str | None = None
        self.tenant_id: str | None = None
        self.max_participants = 0  # 0: rooms.max_participants
        self.max_guests = 0  # 0: no separate cap on guests
        self.guest_policy = "allow"  # rooms joined by id admit everyone
        self.share_url: str | None = None  # the guest join URL of a link's room
        self.title = ""  # the event summary of a link's room
        self.locked = False
        self.media_locks: set[str] = set()  # kinds a host muted and locked for everyone
        self.barred: set[str] = set()
        self.started = False
        self.opened_at = time.time()
        self.attendance: dict[str, dict[str, Any]] = {}
        self.active_speaker: str | None = None
        self._last_speaker = 0.0
        self._last_stats = 0.0
        self._stats_sent: dict[str, float] = {}
        from ..lobby.lobby import Lobby

        self.lobby = Lobby(self, manager.config.rooms.lobby_timeout_seconds)
        self._ticker = asyncio.ensure_future(self._run())

    async def broadcast(self, message: dict[str, Any], *, exclude: str | None = None) -> None:
        for p in list(self.participants.values()):
            if p.id != exclude and not p.closed:
                with contextlib.suppress(Exception):
                    await p.send(message)

    async def join(
        self,
        name: str,
        send: SendMessage,
        ref: str | int | None = None,
        *,
        role: str = "guest",
        user_id: str | None = None,
        invite_id: str | None = None,
        invite_limit: int = 0,
        bar_key: str = "",
    ) -> Participant:
        if self.closed:
            raise JoinRefused("bad_state", "room is closing")
        limit = self.max_participants or self.manager.config.rooms.max_participants
        if len(self.participants) >= limit:
            raise JoinRefused("room_full", f"room is full ({limit} participants)")
        if role == "guest" and self.max_guests:
            guests = sum(1 for p in self.participants.values() if p.role == "guest")
            if guests >= self.max_guests:
                raise JoinRefused(
                    "guests_full", f"this meeting admits at most {self.max_guests} guests"
                )
        if invite_id is not None:
            via = sum(1 for p in self.participants.values() if p.invite_id == invite_id)
            if via >= invite_limit:
                raise JoinRefused(
                    "invite_full", f"this guest invite admits {invite_limit} guests at once"
                )
        participant = Participant(self, name, send)
        participant.role = role
        participant.user_id = user_id
        participant.invite_id = invite_id
        participant.bar_key = bar_key
        if role != "host":
            participant.locked_kinds = set(self.media_locks)
        others = [p.describe() for p in self.participants.values()]
        first = not self.started
        self.participants[participant.id] = participant
        self.empty_since = None
        self.manager.metrics.participants.inc()
        await send(
            {
                "type": "joined",
                "room": self.id,
                "participant_id": participant.id,
                "role": role,
                "participants": others,
                "ice_servers": self.manager.ice_servers_for_clients,
                "guest_policy": self.guest_policy,
                "locked": self.locked,
                "share_url": self.share_url,
                "title": self.title,
                "active_speaker": self.active_speaker,
                **(
                    {"lobby": [k.describe() for k in self.lobby.knocks.values()]}
                    if role == "host"
                    else {}
                ),
                "ref": ref,
            }
        )
        self.attendance[participant.id] = {
            "participant_id": participant.id,
            "name": name,
            "role": role,
            "user_id": user_id,
            "joined_at": time.time(),
            "left_at": None,
            "speaking_seconds": 0.0,
        }
        if role == "host":
            await self.lobby.host_arrived(participant)
        await self.broadcast(
            {"type": "participant_joined", "participant": participant.describe()},
            exclude=participant.id,
        )
        participant.request_renegotiation()
        participant.log.info("participant joined", name_length=len(name), role=role)
        if first:
            self.started = True
            self.opened_at = time.time()  # the meeting starts with its first participant
            self.manager.emit(self, "room.started", {})
        self.manager.emit(
            self,
            "participant.joined",
            {"participant": {"id": participant.id, "name": name, "role": role, "user_id": user_id}},
        )
        return participant

    async def published(self, participant: Participant, pubs: list[Publication]) -> None:
        if not pubs:
            return
        await self.broadcast(
            {
                "type": "publications_added",
                "participant_id": participant.id,
                "publications": [p.describe() for p in pubs],
            },
            exclude=participant.id,
        )
        for other in self.participants.values():
            if other is not participant:
                other.request_renegotiation()

    async def leave(self, participant: Participant, reason: str = "left") -> None:
        if self.participants.pop(participant.id, None) is None:
            return
        self.manager.metrics.participants.dec()
        await self.broadcast(
            {"type": "participant_left", "participant_id": participant.id, "reason": reason}
        )
        await participant.close()
        for other in self.participants.values():
            other.request_renegotiation()
        if participant.role == "host":
            await self.lobby.host_left()
        record = self.attendance.get(participant.id)
        if record is not None:
            record["left_at"] = time.time()
            record["speaking_seconds"] = round(participant.speaking_seconds, 2)
        if not self.participants:
            self.empty_since = asyncio.get_running_loop().time()
        participant.log.info("participant left", reason=reason)
        self.manager.emit(
            self,
            "participant.left",
            {
                "participant": {
                    "id": participant.id,
                    "name": participant.name,
                    "role": participant.role,
                    "user_id": participant.user_id,
                },
                "reason": reason,
            },
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        metrics = self.manager.metrics
        timeout = self.manager.config.rooms.empty_timeout_seconds
        while not self.closed:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            if (
                self.empty_since is not None
                and not self.lobby.knocks
                and now - self.empty_since >= timeout
            ):
                await self.manager.close_room(self, "empty")
                return
            if now - self._last_speaker >= SPEAKER_INTERVAL:
                self._last_speaker = now
                await self._speakers(now)
            report_due = now - self._last_report >= REPORT_INTERVAL
            if report_due:
                self._last_report = now
            for p in list(self.participants.values()):
                try:
                    await p.tick(now, report_due)
                except Exception:
                    p.log.exception("tick failed")
                for pub in p.publications.values():
                    pub.flush_metrics(metrics)

    async def _speakers(self, now: float) -> None:
        """Active-speaker signal and speaking-time statistics, to admitted people only."""
        loudest = max(self.participants.values(), key=lambda p: p.recent_speech, default=None)
        speaker = loudest.id if loudest is not None and loudest.recent_speech >= 0.15 else None
        for p in self.participants.values():
            p.recent_speech *= 0.5
        if speaker != self.active_speaker and (speaker is not None or self.active_speaker):
            self.active_speaker = speaker
            await self.broadcast({"type": "active_speaker", "participant_id": speaker})
        if now - self._last_stats >= STATS_INTERVAL:
            self._last_stats = now
            stats = {p.id: round(p.speaking_seconds, 2) for p in self.participants.values()}
            if stats and stats != self._stats_sent:
                self._stats_sent = stats
                await self.broadcast({"type": "speaking_stats", "speaking_seconds": stats})

    def report(self, reason: str) -> dict[str, Any]:
        """Attendance and speaking time of this meeting."""
        now = time.time()
        for p in self.participants.values():
            record = self.attendance.get(p.id)
            if record is not None:
                record["speaking_seconds"] = round(p.speaking_seconds, 2)
        return {
            "room_id": self.id,
            "link_id": self.link_id,
            "started_at": self.opened_at,
            "finished_at": now,
            "reason": reason,
            "participants": [
                {**r, "left_at": r["left_at"] or now} for r in self.attendance.values()
            ],
        }

    async def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        await self.lobby.close(reason)
        for p in list(self.participants.values()):
            with contextlib.suppress(Exception):
                await p.send({"type": "room_closed", "reason": reason})
            await self.leave(p, reason)
        if self._ticker is not asyncio.current_task():
            self._ticker.cancel()
        self.log.info("room closed", reason=reason)
        if self.started:
            report = self.report(reason)
            self.manager.emit(
                self,
                "room.finished",
                {
                    "reason": reason,
                    "duration_seconds": round(time.time() - self.opened_at, 3),
                    "report": report,
                },
            )


class RoomManager:
    """The node's rooms (memory state backend: rooms are ephemeral by design)."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.rooms: dict[str, Room] = {}
        self.accepting = True
        self.ice_servers: list[dict[str, Any]] = [
            {"urls": list(s.urls), "username": s.username, "credential": s.credential}
            for s in config.rtc.ice_servers
        ]
        self.ice_servers_for_clients = [{k: v for k, v in s.items() if v} for s in self.ice_servers]
        #: Called with (room, event type, data) for rooms that belong to a link.
        self.on_event: Callable[[Room, str, dict[str, Any]], None] | None = None
        #: Called after a room closed (the cluster releases the room's lease).
        self.on_room_closed: Callable[[Room], Awaitable[None]] | None = None

    def emit(self, room: Room, etype: str, data: dict[str, Any]) -> None:
        if room.link_id is not None and self.on_event is not None:
            try:
                self.on_event(room, etype, data)
            except Exception:
                room.log.exception("room event hook failed", event_type=etype)

    def room(self, room_id: str) -> Room:
        if not self.accepting:
            raise JoinRefused("shutting_down", "server is shutting down")
        room = self.rooms.get(room_id)
        if room is None or room.closed:
            room = Room(self, room_id)
            self.rooms[room_id] = room
            self.metrics.rooms.inc()
            room.log.info("room opened")
        return room

    async def close_room(self, room: Room, reason: str) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            self.metrics.rooms.dec()
        await room.close(reason)
        if self.on_room_closed is not None:
            try:
                await self.on_room_closed(room)
            except Exception:
                room.log.exception("room close hook failed")

    async def shutdown(self, reason: str = "server_shutdown") -> None:
        self.accepting = False
        for room in list(self.rooms.values()):
            await self.close_room(room, reason)
