"""The control plane of a simulcast publication: its layers, and which layer feeds
each subscriber.

Each layer (one rid) is an inner :class:`~.publication.Publication`: it has its own
SSRC, receive statistics, NACKs, sender-report clock, keyframe throttle and
:class:`~.forwarder.ForwardingTrack`. The visible publication's own forwarding track
lists every subscriber output (the registry); each output is also in exactly one
layer's track (the one feeding it), or in none while hidden.

A switch is decided by :class:`~.layers.LayerSelector` and takes effect at the next
keyframe of the target layer (a PLI asks for one): the output leaves the old layer's
track and joins the new one in the same step, its sequence numbers continue at last+1
and its timestamps continue by the wall-clock gap (``OutputStream.pause``), and its
VP8 descriptor fields are re-based (``OutputStream.vp8_switch``: the rules of
:class:`~.vp8rewrite.Vp8Rewriter`, applied in C on the native path). The per-packet
path stays the forwarder's, native or the twin like any publication's: this module
only moves outputs between lists.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ..h264 import h264_keyframe_size
from . import fastpath, rtcp
from .forwarder import OutputStream, is_keyframe_start, rtp_payload_offset
from .layers import LayerInfo, LayerSelector, split_budget
from .simulcast import SimulcastOffer, read_extensions
from .vp8rewrite import vp8_keyframe_size

if TYPE_CHECKING:
    from .participant import Participant
    from .publication import Publication

__all__ = ["DEFAULT_SIZE", "Layer", "SimulcastLayers", "bind_by_rid"]

#: What a subscriber that never sent ``video_size`` renders at (the highest layers).
DEFAULT_SIZE = (1280, 720)
#: A new output whose subscriber has not sent a size yet starts on the smallest layer
#: for this long (a small first keyframe; the join page reports within ~0.3 s).
START_LOW_SECONDS = 1.5
#: Layer decisions at most this often (a room with simulcast ticks every 50 ms).
DECIDE_INTERVAL = 0.25
#: A layer without packets for this long is not offered to the policy.
LAYER_IDLE_SECONDS = 1.5
#: Keyframe requests for a pending switch are repeated this often.
SWITCH_PLI_INTERVAL = 1.0
#: A subscriber's REMB older than this is ignored.
ESTIMATE_MAX_AGE = 5.0
#: A target keyframe still incomplete after this long / this many packets is given up
#: (the next one is waited for).
KEYFRAME_MAX_SECONDS = 1.0
KEYFRAME_MAX_PACKETS = 600
_ts_at = struct.Struct("!I")
_T = TypeVar("_T")


@dataclass(eq=False)
class Layer:
    rid: str
    pub: Publication
    ssrc: int = 0
    rtx_ssrc: int = 0
    width: int = 0
    height: int = 0
    octets: int = 0
    bitrate: int = 0
    last_packet: float = float("-inf")
    incoming: list[_Switch] = field(default_factory=list)
    last_pli: float = float("-inf")
    #: a keyframe of this layer arriving for the outputs in ``incoming`` (raw packets,
    #: from its first packet until its marker), its RTP timestamp and start time
    keyframe: list[bytes] | None = None
    keyframe_ts: int = 0
    keyframe_since: float = 0.0


@dataclass(eq=False)
class _Switch:
    output: OutputStream
    selector: LayerSelector
    current: Layer | None = None
    target: Layer | None = None
    hidden_at: float | None = None
    created: float = 0.0


class SimulcastLayers:
    """The layers of one simulcast publication and the outputs they feed."""

    def __init__(
        self,
        parent: Publication,
        offer: SimulcastOffer,
        make_layer: Callable[[], Publication],
        uplink_bitrate: int,
    ) -> None:
        self.parent = parent
        self.offer = offer
        self.uplink_bitrate = uplink_bitrate
        self.layers = [Layer(rid, make_layer()) for rid in offer.rids]
        self._switches: dict[int, _Switch] = {}  # id(output) -> switch
        self._last_decision = float("-inf")
        self._last_bitrate_at: float | None = None
        self.switches_done = 0

    @classmethod
    def of(cls, pub: Publication, offer: SimulcastOffer, uplink_bitrate: int) -> SimulcastLayers:
        """The layers of ``pub`` (each an inner publication of the same track)."""

        def make_layer() -> Publication:
            return type(pub)(pub.participant, pub.track)

        return cls(pub, offer, make_layer, uplink_bitrate)

    # --- binding ------------------------------------------------------------------

    def layer(self, rid: str) -> Layer | None:
        for layer in self.layers:
            if layer.rid == rid:
                return layer
        return None

    def bind(self, layer: Layer, ssrc: int, *, rtx: bool) -> Callable[[bytes, float], None]:
        """An SSRC seen with this layer's rid (``rtx``: with its repaired-rid)."""
        if rtx:
            layer.rtx_ssrc = ssrc
            return layer.pub.on_rtx
        layer.ssrc = ssrc
        layer.pub.bind_ssrc(ssrc)
        return self._receiver(layer)

    @property
    def bound(self) -> int:
        return sum(1 for layer in self.layers if layer.ssrc)

    def _receiver(self, layer: Layer) -> Callable[[bytes, float], None]:
        pub = layer.pub
        payload_type = pub.track.payload_type
        vp8 = pub.track.codec.upper() == "VP8"
        h264 = pub.track.codec.upper() == "H264"
        codec = pub.track.codec

        def on_packet(data: bytes, now: float) -> None:
            layer.octets += len(data)
            layer.last_packet = now
            complete = False
            if layer.keyframe is not None:  # a switch target's keyframe is arriving
                complete = self._keyframe_packet(layer, data, now)
            elif data[1] & 0x7F == payload_type and (vp8 or h264 or layer.incoming):
                try:
                    off = rtp_payload_offset(data)
                except ValueError:
                    off = len(data)
                if off < len(data) and (not vp8 or data[off] & 0x10):
                    payload = data[off:]
                    keyframe = False
                    if vp8:
                        size = vp8_keyframe_size(payload)
                        if size is not None:
                            layer.width, layer.height = size
                            keyframe = True
                    else:
                        keyframe = is_keyframe_start(codec, payload)
                        size = h264_keyframe_size(payload) if keyframe and h264 else None
                        if size is not None:
                            layer.width, layer.height = size
                    if keyframe and layer.incoming:
                        layer.keyframe = []
                        layer.keyframe_ts = _ts_at.unpack_from(data, 4)[0]
                        layer.keyframe_since = now
                        complete = self._keyframe_packet(layer, data, now)
            pub.on_rtp(data, now)  # the outputs this layer already feeds
            if complete:
                self._complete(layer, now)

        return on_packet

    # --- switching ----------------------------------------------------------------

    def _keyframe_packet(self, layer: Layer, data: bytes, now: float) -> bool:
        """Collect a packet of the target keyframe; True once it is complete (its
        marker). The outputs keep their old layer until then: cutting it at the
        keyframe's first packet would leave them without frames while the publisher
        paces the (large) keyframe out."""
        frames = layer.keyframe
        assert frames is not None
        if not layer.incoming:
            layer.keyframe = None
            return False
        ts = _ts_at.unpack_from(data, 4)[0]
        if ts != layer.keyframe_ts:
            if (ts - layer.keyframe_ts) & 0x80000000:
                return False  # an older frame (reordered): not part of the keyframe
            layer.keyframe = None  # the keyframe ended without its marker: wait again
            return False
        frames.append(data)
        if len(frames) > KEYFRAME_MAX_PACKETS or now - layer.keyframe_since > KEYFRAME_MAX_SECONDS:
            layer.keyframe = None
            return False
        return bool(data[1] & 0x80)

    def _complete(self, layer: Layer, now: float) -> None:
        """The target keyframe is complete on ``layer``: move the outputs waiting for
        it, and send them the keyframe."""
        clock = self.parent.track.clock_rate
        frames, layer.keyframe = layer.keyframe or [], None
        pub = layer.pub
        moving = fastpath.new_forwarding_track(
            pub.track.codec, video=True, ext_ids=pub.forwarding.ext_ids
        )
        for sw in layer.incoming:
            out = sw.output
            old = sw.current
            if old is not None:
                _remove(old.pub.forwarding.outputs, out)
                since = old.last_packet
            else:
                since = sw.hidden_at if sw.hidden_at is not None else now
            step = max(1, int((now - since) * clock))
            out.pause(video=True, rebase_ts=True, ts_step=step)
            out.vp8_switch()
            moving.outputs.append(out)
            sw.current, sw.target, sw.hidden_at = layer, None, None
            self.switches_done += 1
            self.parent.participant.metrics.layer_switches.inc()
        layer.incoming.clear()
        if not pub.muted:
            for data in frames:  # the keyframe, for the moved outputs only
                try:
                    sent, _ = moving.route(data, now)
                except ValueError:
                    continue
                for out, pkt in sent:
                    if out.sink is not None and out.sink(pkt):
                        pub.forwarded_packets += 1
                        pub.forwarded_octets += len(pkt)
            pub.forwarding.sent_packets += moving.sent_packets  # sent natively
            pub.forwarding.sent_octets += moving.sent_octets
        pub.forwarding.outputs.extend(moving.outputs)

    def _request(self, sw: _Switch, target: Layer | None, now: float) -> None:
        if sw.target is not None and sw.target is not target:
            _remove(sw.target.incoming, sw)
            sw.target = None
        if target is sw.current:
            return
        if target is None:  # not visible: stop forwarding now
            if sw.current is not None:
                _remove(sw.current.pub.forwarding.outputs, sw.output)
                sw.output.pause(video=True)
                sw.current = None
                sw.hidden_at = now
            return
        if sw.target is None:
            sw.target = target
            target.incoming.append(sw)

    def forget(self, output: OutputStream) -> None:
        """The output was detached from the publication."""
        sw = self._switches.pop(id(output), None)
        if sw is None:
            return
        if sw.current is not None:
            _remove(sw.current.pub.forwarding.outputs, output)
        if sw.target is not None:
            _remove(sw.target.incoming, sw)

    def restart(self) -> None:
        """The publisher's fresh connection: layers bind again as packets appear."""
        self.parent.participant.metrics.simulcast_layers_bound.dec(self.bound)
        for layer in self.layers:
            layer.ssrc = layer.rtx_ssrc = 0
            layer.last_packet = float("-inf")
            layer.bitrate = layer.octets = 0
            layer.pub.restart(self.parent.track)

    def set_muted(self, muted: bool) -> None:
        for layer in self.layers:
            layer.pub.set_muted(muted)

    def request_keyframe(self, now: float) -> None:
        """A subscriber asked (PLI/FIR): ask the layers that feed someone."""
        feeding = {id(sw.current): sw.current for sw in self._switches.values() if sw.current}
        for layer in feeding.values():
            layer.pub.request_keyframe(now)

    def feeding(self, output: OutputStream) -> Publication | None:
        """The layer whose packets ``output`` carries now (None: hidden or not yet)."""
        sw = self._switches.get(id(output))
        return None if sw is None or sw.current is None else sw.current.pub

    # --- periodic -----------------------------------------------------------------

    def ordered(self) -> list[Layer]:
        """Layers low to high: by keyframe resolution once every bound layer has shown
        one, else in the offer's order."""
        bound = [layer for layer in self.layers if layer.ssrc]
        if bound and all(layer.width for layer in bound):
            return sorted(self.layers, key=lambda la: (la.width * la.height, la.bitrate))
        return list(self.layers)

    async def tick(self, now: float, report_due: bool) -> bytes:
        """Layer bookkeeping, decisions and keyframe requests; returns RTCP for the
        publisher (its layers' NACKs and receiver feedback, the uplink REMB)."""
        out = b""
        for layer in self.layers:
            out += await layer.pub.tick(now, report_due)
        if self._last_bitrate_at is None:
            self._last_bitrate_at = now
        elif now - self._last_bitrate_at >= 1.0:
            span = now - self._last_bitrate_at
            for layer in self.layers:
                layer.bitrate = int(layer.octets * 8 / span)
                layer.octets = 0
            self._last_bitrate_at = now
        if now - self._last_decision >= DECIDE_INTERVAL:
            self._last_decision = now
            self._decide(now)
        for layer in self.layers:
            if layer.incoming and layer.ssrc and now - layer.last_pli >= SWITCH_PLI_INTERVAL:
                layer.last_pli = now
                layer.pub.request_keyframe(now)
        ssrcs = [layer.ssrc for layer in self.layers if layer.ssrc]
        if report_due and ssrcs:
            out += rtcp.build_remb(self.parent.participant.rtcp_ssrc, self.uplink_bitrate, ssrcs)
            self.parent.last_remb_sent = self.uplink_bitrate
        return out

    def _decide(self, now: float) -> None:
        outputs = self.parent.forwarding.outputs
        live = {id(o) for o in outputs}
        for key in [k for k in self._switches if k not in live]:
            self.forget(self._switches[key].output)
        vp8 = self.parent.track.codec.upper() == "VP8"
        for o in outputs:
            if id(o) not in self._switches:
                if vp8:
                    o.rewrite_vp8()
                self._switches[id(o)] = _Switch(o, LayerSelector(), created=now)
        order = self.ordered()
        infos = [
            LayerInfo(
                la.width,
                la.height,
                la.bitrate,
                bool(la.ssrc) and now - la.last_packet < LAYER_IDLE_SECONDS,
            )
            for la in order
        ]
        room = self.parent.participant.room
        for sw in self._switches.values():
            subscriber = room.participants.get(sw.output.subscriber_id)
            size: tuple[int, int] | None = None
            budget: int | None = None
            if subscriber is not None:
                size = subscriber.rendered_size(self.parent)
                budget = _share(subscriber, self.parent.id, now)
            if size is None and now - sw.created < START_LOW_SECONDS:
                size = (1, 1)  # start on the smallest layer until the size is known
            width, height = size or DEFAULT_SIZE
            current = order.index(sw.current) if sw.current is not None else -1
            chosen = sw.selector.decide(infos, width, height, budget, current, now)
            self._request(sw, order[chosen] if chosen >= 0 else None, now)


def bind_by_rid(
    publications: list[Publication], data: bytes, ssrc: int
) -> tuple[str, bool, Callable[[bytes, float], None]] | None:
    """Bind an unknown SSRC to the simulcast layer its rid (RTX: repaired-rid) names;
    the mid extension picks the publication when several send simulcast. Returns the
    rid, whether it is the layer's RTX stream, and the packet handler."""
    layered = [p for p in publications if p.simulcast is not None]
    for pub in layered:
        sim = pub.simulcast
        assert sim is not None
        rid_id, rrid_id, mid_id = (
            sim.offer.rid_ext_id,
            sim.offer.repaired_rid_ext_id,
            pub.track.mid_ext_id,
        )
        ext = read_extensions(data, (rid_id, rrid_id, mid_id))
        mid = ext.get(mid_id) if mid_id else None
        if mid is not None:
            if mid.decode("ascii", "replace") != pub.track.mid:
                continue
        elif len(layered) > 1:
            continue
        rtx = rrid_id in ext and rid_id not in ext
        rid = ext.get(rrid_id if rtx else rid_id)
        layer = sim.layer(rid.decode("ascii", "replace")) if rid else None
        if layer is None:
            continue
        wanted_pt = pub.track.rtx_payload_type if rtx else pub.track.payload_type
        if (data[1] & 0x7F) != wanted_pt:
            continue  # e.g. padding before the first real packet
        return layer.rid, rtx, sim.bind(layer, ssrc, rtx=rtx)
    return None


def _share(subscriber: Participant, publication_id: str, now: float) -> int | None:
    """This publication's share of the subscriber's downlink estimate."""
    estimate = subscriber.downlink_estimate
    if estimate is None or now - subscriber.downlink_estimate_at > ESTIMATE_MAX_AGE:
        return None
    ids: list[str] = []
    areas: list[int] = []
    for pub_id, sub in subscriber.subscriptions.items():
        if sub.publication.simulcast is None:
            continue
        w, h = subscriber.rendered_size(sub.publication) or DEFAULT_SIZE
        ids.append(pub_id)
        areas.append(max(0, w) * max(0, h))
    if publication_id not in ids:
        return estimate
    return split_budget(estimate, areas)[ids.index(publication_id)]


def _remove(items: list[_T], item: _T) -> None:
    for i, x in enumerate(items):
        if x is item:
            del items[i]
            return
