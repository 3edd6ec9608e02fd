"""A participant: its publisher and subscriber peer connections, its publications and
its subscriptions. The subscriber side's renegotiation is in :mod:`.subscribing`."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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
from .subscribing import Negotiation, SubscriberNegotiation

if TYPE_CHECKING:
    from .room import Room

__all__ = ["Participant"]

_ssrc_at = struct.Struct("!I")


class Participant(SubscriberNegotiation):
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
        self.negotiation = Negotiation()
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
            pub = Publication(self, track)
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
            items = rtcp.parse_rtcp(data)  # its sender reports are the publication's clock
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
            items = rtcp.parse_rtcp(data, rtcp.FEEDBACK)  # its receiver reports: unused
        except ValueError:
            return
        if not items:
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

    def tick_reports(self, now: float) -> None:
        """Sender reports to this participant, when due (sender_reports.py)."""
        if self.subscriber is not None:
            self.subscriber.reports.tick(now)
        for old, _ in self._retiring:
            old.reports.tick(now)

    async def tick(self, now: float, report_due: bool) -> None:
        """Publisher-side periodic work: NACK and keyframe retries (every tick), receiver
        reports and REMB (``report_due``: every second)."""
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
