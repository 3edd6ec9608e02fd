"""Publications (tracks a participant sends us) and subscriptions (a publication
forwarded to one participant). Media never goes through asyncio queues: the publisher
connection calls :meth:`Publication.on_rtp`, which writes to the subscriber connections
directly."""

from __future__ import annotations

import contextlib
import struct
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpTransceiver

from ..telemetry import Metrics
from . import fastpath, rtcp, rtcp_state
from .base import new_id
from .forwarder import InboundExtIds, OutputParams, OutputStream, unwrap_rtx
from .negotiation import NegotiatedTrack

if TYPE_CHECKING:
    from ..recording.track import TrackRecorder
    from .layerswitch import SimulcastLayers
    from .participant import Participant

__all__ = ["KEYFRAME_RETRY_SECONDS", "SPEAKING_LEVEL", "Publication", "Subscription"]

#: RFC 6464 levels at or below this (-dBov) count as speech.
SPEAKING_LEVEL = 50
KEYFRAME_RETRY_SECONDS = 0.5
_seq_ts = struct.Struct("!HI")
_ssrc_at = struct.Struct("!I")


class Publication:
    """One inbound track: receive statistics, NACKs and keyframe requests toward the
    publisher, and the forwarding state toward every subscriber."""

    def __init__(self, participant: Participant, track: NegotiatedTrack) -> None:
        self.id = new_id("PU")
        self.participant = participant
        self.track = track
        self.kind = track.kind
        self.video = track.kind == "video"
        #: camera | microphone | screen (``publish.sources``; by kind when not given)
        self.source = "camera" if self.video else "microphone"
        self.forwarding = fastpath.new_forwarding_track(
            track.codec,
            video=self.video,
            ext_ids=InboundExtIds(
                audio_level=track.audio_level_ext_id, abs_send_time=track.abs_send_time_ext_id
            ),
        )
        self.ssrc = track.ssrc
        self.stats: rtcp_state.InboundStreamStats | None = None
        self.nacks = rtcp_state.NackTracker() if self.video else None
        self.keyframes = rtcp_state.KeyframeRequestThrottle(min_interval=0.3)
        self.remb = rtcp_state.RembAggregator()
        self.clock = rtcp_state.SenderReportClock()
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
        #: Set while the room is being recorded (mediaserver/recording).
        self.recorder: TrackRecorder | None = None
        #: Simulcast: the layers (inner publications) and who gets which (layerswitch.py)
        self.simulcast: SimulcastLayers | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "participant_id": self.participant.id,
            "kind": self.kind,
            "codec": self.track.codec,
            "muted": self.muted,
            "source": self.source,
            **({"layers": list(self.simulcast.offer.rids)} if self.simulcast else {}),
        }

    def restart(self, track: NegotiatedTrack) -> None:
        """The publisher's fresh connection carries this publication on: new SSRCs,
        sequence numbers and timestamps; subscribers resynchronise at a keyframe."""
        self.track = track
        self.ssrc = track.ssrc
        self.stats = None
        self.clock = rtcp_state.SenderReportClock()
        if self.nacks is not None:
            self.nacks = rtcp_state.NackTracker()
        self.forwarding.ext_ids = InboundExtIds(
            audio_level=track.audio_level_ext_id, abs_send_time=track.abs_send_time_ext_id
        )
        self.forwarding.pause_outputs(rebase_ts=True)
        if self.simulcast is not None:
            self.simulcast.restart()

    def bind_ssrc(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.stats = rtcp_state.InboundStreamStats(ssrc, self.track.clock_rate)

    def on_rtp(self, data: bytes, now: float) -> None:
        """Hot path: one inbound packet from the publisher (synchronous: called from the
        direct receive path, :mod:`.rxpath`, inside the socket's read callback)."""
        if now > self.participant.room.media_until:
            return  # fenced: this node's lease of the room may have expired
        if self.stats is None:
            self.bind_ssrc(_ssrc_at.unpack_from(data, 8)[0])
        if data[1] & 0x7F != self.track.payload_type:
            return  # another codec than negotiated, or padding-only probes
        seq, ts = _seq_ts.unpack_from(data, 2)
        self.received += 1
        stats = self.stats
        assert stats is not None
        stats.on_packet(seq, ts, now)
        recorder = self.recorder
        if recorder is not None:
            recorder.on_rtp(data, now)
        nacks = self.nacks
        if nacks is not None:
            lost = nacks.on_packet(seq, now)
            if lost:  # sent at once, not awaited (SRTCP + sendto on the selected pair)
                self.participant.room.hurry()  # their retries are due in 100 ms
                self.participant.send_to_publisher(
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

    def on_rtx(self, data: bytes, now: float) -> None:
        """A retransmission from the publisher (answer to our NACK): unwrap, forward."""
        if data[1] & 0x7F != self.track.rtx_payload_type:
            return
        original = unwrap_rtx(data, self.ssrc, self.track.payload_type)
        if original is not None:
            self.on_rtp(original, now)

    def on_sender_report(self, ntp: int, rtp_ts: int, now: float) -> None:
        if self.stats is not None:
            self.stats.on_sender_report(ntp, now)
        self.clock.on_sender_report(ntp, rtp_ts, now)
        if self.recorder is not None:
            self.recorder.on_sender_report(ntp, rtp_ts, now)

    def request_keyframe(self, now: float) -> None:
        """A PLI to the publisher (throttled), sent at once."""
        if self.simulcast is not None:
            self.simulcast.request_keyframe(now)
            return
        if not self.video or not self.ssrc:
            return
        if self.keyframes.should_send(now):
            self.participant.send_to_publisher(
                rtcp.build_pli(self.participant.rtcp_ssrc, self.ssrc)
            )
            self.participant.metrics.keyframe_requests.inc()

    def sender_report_for(self, output: OutputStream, now: float) -> bytes | None:
        if self.simulcast is not None:  # the layer feeding the output has the clock
            layer = self.simulcast.feeding(output)
            return None if layer is None else layer.sender_report_for(output, now)
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
        if self.simulcast is not None:
            self.simulcast.set_muted(muted)

    @property
    def pending(self) -> bool:
        """Work that needs the room's fast tick: NACKs to retry, simulcast layers."""
        if self.simulcast is not None:
            return True
        return self.nacks is not None and self.nacks.pending

    async def tick(self, now: float, report_due: bool) -> bytes:
        """Periodic work; returns RTCP bytes to append to the publisher's report."""
        if self.simulcast is not None:
            return await self.simulcast.tick(now, report_due)
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
            self.request_keyframe(now)
        if report_due and self.ssrc:
            bitrate = self.remb.minimum(now)
            if bitrate is not None:
                out += rtcp.build_remb(self.participant.rtcp_ssrc, bitrate, [self.ssrc])
                self.last_remb_sent = bitrate
        return out

    def flush_metrics(self, metrics: Metrics) -> None:
        fw = self.forwarding
        if fw.sent_packets:  # sent by the native path itself
            self.forwarded_packets += fw.sent_packets
            self.forwarded_octets += fw.sent_octets
            fw.sent_packets = fw.sent_octets = 0
        metrics.flush_forwarding(
            self.kind, self.forwarded_packets, self.forwarded_octets, self.received
        )
        if self.rtx_sent:
            metrics.rtx_sent.inc(self.rtx_sent)
        self.forwarded_packets = self.forwarded_octets = self.received = self.rtx_sent = 0
        if self.simulcast is not None:
            for layer in self.simulcast.layers:
                layer.pub.flush_metrics(metrics)

    def recording_source(self) -> Publication:
        """Where a recorder of this publication taps packets: itself, or for a simulcast
        publication its top layer (the last rid of the offer; one layer, so the file is
        one stream: a recording never follows layer switches)."""
        if self.simulcast is not None and self.simulcast.layers:
            return self.simulcast.layers[-1].pub
        return self

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        source = self.recording_source()
        recorder, source.recorder = source.recorder, None
        if recorder is not None:
            recorder.close()  # its file ends here
        for sub in list(self.subscriptions.values()):
            await sub.close()
        self.participant.metrics.publications.labels(self.kind).dec()
        if self.simulcast is not None:
            self.participant.metrics.simulcast_layers_bound.dec(self.simulcast.bound)


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
        #: a single-stream video the subscriber does not show (``video_size`` 0): its
        #: output is kept out of the forwarding list (simulcast: layerswitch.py does it)
        self.hidden = self._hides(subscriber.rendered_size(publication))
        self.hidden_at = 0.0

    def _hides(self, size: tuple[int, int] | None) -> bool:
        pub = self.publication
        return size is not None and 0 in size and pub.video and pub.simulcast is None

    async def size_changed(self, size: tuple[int, int] | None, now: float) -> None:
        """The subscriber's ``video_size`` for this publication changed."""
        hidden = self._hides(size)
        if hidden == self.hidden:
            return
        self.hidden = hidden
        output = self.output
        if output is None:
            return
        outputs = self.publication.forwarding.outputs
        if hidden:
            self.hidden_at = now
            with contextlib.suppress(ValueError):
                outputs.remove(output)
            output.pause(video=True)
            return
        clock = self.publication.track.clock_rate
        output.pause(video=True, rebase_ts=True, ts_step=int((now - self.hidden_at) * clock))
        if output not in outputs:
            outputs.append(output)
        if output.active:
            self.publication.request_keyframe(now)

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
        peer = self.subscriber.subscriber
        assert peer is not None
        output = fastpath.new_output_stream(
            params,
            self.subscriber.id,
            video=self.publication.video,
            target=peer.native_target,
        )
        output.sink = peer.send_rtp_now
        output.active = peer.connected.is_set()
        self.output = output
        if not self.hidden:
            self.publication.forwarding.outputs.append(output)
        self.subscriber.outputs_by_ssrc[params.ssrc] = self
        return output

    def _detach(self) -> None:
        output = self.output
        if output is None:
            return
        with contextlib.suppress(ValueError):
            self.publication.forwarding.outputs.remove(output)
        if self.subscriber.outputs_by_ssrc.get(output.params.ssrc) is self:
            del self.subscriber.outputs_by_ssrc[output.params.ssrc]
        self.publication.remb.remove(self.subscriber.id)
        if self.publication.simulcast is not None:
            self.publication.simulcast.forget(output)
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
