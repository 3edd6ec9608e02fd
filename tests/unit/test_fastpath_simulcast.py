"""Simulcast outputs on the native path against the pure-Python reference.

Outputs move between the forwarding tracks of three layers, each numbered on its own
(sequence numbers, timestamps, VP8 PictureID in 15 or 7 bits, TL0PICIDX, KEYIDX), at
keyframes, as layerswitch.py moves them; the scripted stream crosses every wrap, sends
truncated and descriptor-less payloads, NACKs packets sent before a switch, hides and
shows outputs. Both paths must give byte-identical packets, RTX answers included.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Callable
from typing import Any

import pytest

from mediaserver.sfu import fastpath
from mediaserver.sfu.forwarder import ForwardingTrack, InboundExtIds, OutputParams, OutputStream
from mediaserver.sfu.vp8rewrite import parse_descriptor

pytestmark = pytest.mark.skipif(
    fastpath.PATH != "native", reason=f"native path not active: {fastpath.REASON}"
)

Factory = tuple[Callable[..., ForwardingTrack], Callable[..., OutputStream]]
PYTHON: Factory = (ForwardingTrack, OutputStream)
NATIVE: Factory = (fastpath.NativeForwardingTrack, fastpath.NativeOutputStream)
EXT_IDS = InboundExtIds(abs_send_time=3)


def descriptor(pic: int, bits: int, tl0: int, key: int, *, start: bool, keyframe: bool) -> bytes:
    """A VP8 payload descriptor with I, L, T/K set, then one VP8 payload header byte."""
    head = bytes((0x80 | (0x10 if start else 0), 0xF0))
    if bits == 15:
        head += bytes((0x80 | (pic >> 8) & 0x7F, pic & 0xFF))
    else:
        head += bytes((pic & 0x7F,))
    head += bytes((tl0 & 0xFF, 0x20 | (key & 0x1F)))
    return head + bytes((0x00 if keyframe else 0x01,))


class Layer:
    """One simulcast layer's own numbering."""

    def __init__(self, rnd: random.Random, ssrc: int, bits: int) -> None:
        self.ssrc = ssrc
        self.bits = bits
        self.seq = rnd.randrange(65_400, 65_536)  # wraps early
        self.ts = rnd.randrange(0xFFFF_0000, 0x1_0000_0000)
        self.pic = rnd.randrange((1 << bits) - 40, 1 << bits)
        self.tl0 = rnd.randrange(230, 256)
        self.key = rnd.randrange(28, 32)

    def packets(self, rnd: random.Random, *, keyframe: bool, malformed: bool) -> list[bytes]:
        """One frame: 1-3 packets (a keyframe starts a new KEYIDX and TL0PICIDX)."""
        if keyframe:
            self.key = (self.key + 1) & 0x1F
        self.tl0 = (self.tl0 + 1) & 0xFF
        self.pic = (self.pic + 1) & ((1 << self.bits) - 1)
        self.ts = (self.ts + 3000) & 0xFFFFFFFF
        out = []
        count = rnd.choice((1, 2, 3))
        for i in range(count):
            payload = descriptor(
                self.pic, self.bits, self.tl0, self.key, start=i == 0, keyframe=keyframe
            ) + rnd.randbytes(rnd.choice((0, 30, 700)))
            kind = rnd.random() if malformed else 1.0
            if kind < 0.03:
                payload = payload[: rnd.randrange(0, 4)]  # truncated descriptor
            elif kind < 0.05:
                payload = bytes((0x10 if i == 0 else 0x00, 0x00)) + payload[6:]  # no X bit
            self.seq = (self.seq + 1) & 0xFFFF
            header = struct.pack(
                "!BBHII", 0x80, (0x80 if i == count - 1 else 0) | 96, self.seq, self.ts, self.ssrc
            )
            out.append(header + payload)
        return out


def run(factory: Factory, seed: int, *, malformed: bool = True) -> list[Any]:
    track_cls, output_cls = factory
    rnd = random.Random(seed)
    random.seed(seed)  # the outputs' random offsets: the same on both paths
    layers = [Layer(rnd, 0x100 + i, 7 if i == 0 else 15) for i in range(3)]
    tracks = [track_cls("VP8", video=True, ext_ids=EXT_IDS) for _ in layers]
    params = [
        OutputParams(0xA0 + i, 100 + i, str(i), 1, 0, 3 * (i % 2), 0xB0 + i, 110 + i)
        for i in range(3)
    ]
    outputs = [output_cls(p, f"s{i}", video=True) for i, p in enumerate(params)]
    feeding: list[int | None] = [None] * len(outputs)
    wanted: list[int | None] = [None] * len(outputs)
    last_packet = [0.0] * len(layers)
    for o in outputs:
        o.active = True
        o.rewrite_vp8()
    seen: list[Any] = []
    now = 500.0
    for step in range(900):
        now += 0.011
        if step % 37 == 0:  # a new decision for someone: another layer, or hidden
            i = rnd.randrange(len(outputs))
            wanted[i] = rnd.choice((0, 1, 2, 2, None))
            if wanted[i] is None and feeding[i] is not None:
                tracks[feeding[i]].outputs.remove(outputs[i])
                outputs[i].pause(video=True)
                feeding[i] = None
        li = rnd.randrange(len(layers))
        keyframe = rnd.random() < 0.08
        packets = layers[li].packets(rnd, keyframe=keyframe, malformed=malformed)
        if keyframe:  # outputs waiting for this layer move now (layerswitch._complete)
            for i, o in enumerate(outputs):
                if wanted[i] == li and feeding[i] != li:
                    if feeding[i] is not None:
                        tracks[feeding[i]].outputs.remove(o)
                    since = last_packet[feeding[i]] if feeding[i] is not None else now - 0.2
                    o.pause(video=True, rebase_ts=True, ts_step=max(1, int((now - since) * 90000)))
                    o.vp8_switch()
                    tracks[li].outputs.append(o)
                    feeding[i] = li
        last_packet[li] = now
        if rnd.random() < 0.01:  # reordered: an older packet of the layer again
            packets.insert(0, packets[-1])
        for data in packets:
            out, kf = tracks[li].route(data, now)
            seen.append(("route", li, [(outputs.index(o), pkt) for o, pkt in out], kf))
        if step % 5 == 0:  # NACKs, often for packets sent before the last switch
            i = rnd.randrange(len(outputs))
            o = outputs[i]
            back = rnd.randrange(1, 120)
            seen.append(("rtx", i, o.retransmission((o._next_seq - back) & 0xFFFF)))
    for o in outputs:
        seen.append(("counters", o.packets, o.octets, o.last_rtp_ts, o.rtx_sent))
    return seen


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_layer_switches_give_identical_packets_on_both_paths(seed: int) -> None:
    reference = run(PYTHON, seed)
    native = run(NATIVE, seed)
    sent = [pkt for e in reference if e[0] == "route" for _, pkt in e[2]]
    assert len(sent) > 800
    # the rewrite is exercised: some packets leave with fields the publisher never sent
    assert any(e[0] == "rtx" and e[2] is not None for e in reference)
    assert len(native) == len(reference)
    for i, (a, b) in enumerate(zip(reference, native, strict=True)):
        assert a == b, f"event {i} differs: {a!r} != {b!r}"


def test_an_output_sees_continuous_picture_ids_across_switches() -> None:
    """What the rewrite is for: per output, PictureIDs (compared in 7 bits, as layer 0
    sends them) step by 0 or 1 across every switch and hide/show."""
    events = run(NATIVE, 7, malformed=False)  # every packet shows its PictureID
    per_output: dict[int, list[int]] = {}
    for e in events:
        if e[0] != "route":
            continue
        for i, pkt in e[2]:
            d = parse_descriptor(pkt[struct.unpack_from("!H", pkt, 14)[0] * 4 + 16 :])
            if d is not None and d.picture_id_bits:
                per_output.setdefault(i, []).append(d.picture_id & 0x7F)
    assert sum(len(pics) for pics in per_output.values()) > 300
    for pics in per_output.values():
        steps = [(b - a) & 0x7F for a, b in itertools.pairwise(pics)]
        assert all(s in (0, 1) for s in steps), steps
