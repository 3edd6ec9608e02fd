"""Simulcast receive (pure): the answer's SDP lines, rid extensions, VP8 descriptor
rewriting across layer switches, sequence/timestamp continuity, the layer policy."""

from __future__ import annotations

import itertools
import struct

import pytest

from mediaserver.sfu.forwarder import ForwardingTrack, InboundExtIds, OutputParams, OutputStream
from mediaserver.sfu.layers import LayerInfo, LayerSelector, covering_layer, split_budget
from mediaserver.sfu.simulcast import (
    EXT_REPAIRED_RID,
    EXT_RID,
    munge_answer,
    parse_simulcast_offer,
    read_extensions,
)
from mediaserver.sfu.vp8rewrite import Vp8Rewriter, parse_descriptor, vp8_keyframe_size

CHROME_VIDEO = """m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 00:11
a=setup:actpass
a=mid:1
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=sendonly
a=msid:- t1
a=rtcp-mux
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rid:q send
a=rid:h send
a=rid:f send
a=simulcast:send q;h;f
"""
OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
    + CHROME_VIDEO.replace("\n", "\r\n")
)
ANSWER = (
    "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=recvonly\r\n"
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=rtpmap:96 VP8/90000\r\n"
)


def test_offer_with_three_send_rids_is_found_with_its_extension_ids():
    offers = parse_simulcast_offer(OFFER)
    assert list(offers) == ["1"]
    o = offers["1"]
    assert o.rids == ("q", "h", "f")
    assert (o.rid_ext_id, o.repaired_rid_ext_id) == (10, 11)


@pytest.mark.parametrize(
    "change",
    [
        ("a=simulcast:send q;h;f\n", ""),  # no simulcast line
        ("a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\n", ""),  # no rid ext
        ("a=simulcast:send q;h;f", "a=simulcast:send q"),  # one layer is not simulcast
        ("a=rid:h send\na=rid:f send\n", ""),  # rids not declared
    ],
)
def test_offers_that_are_not_usable_simulcast_are_left_to_aiortc(change):
    assert parse_simulcast_offer(OFFER.replace(change[0].replace("\n", "\r\n"), change[1])) == {}


def test_paused_and_alternative_rids_take_the_first_alternative():
    offer = OFFER.replace("a=simulcast:send q;h;f", "a=simulcast:send q,x;~h;f")
    assert parse_simulcast_offer(offer)["1"].rids == ("q", "h", "f")


def test_answer_gets_extmaps_rids_and_simulcast_recv_in_the_video_section_only():
    answer = munge_answer(ANSWER, parse_simulcast_offer(OFFER))
    audio, video = answer.split("m=video")
    assert "rid" not in audio and "simulcast" not in audio
    assert f"a=extmap:10 {EXT_RID}\r\n" in video
    assert f"a=extmap:11 {EXT_REPAIRED_RID}\r\n" in video
    assert "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\n" in video
    assert "a=simulcast:recv q;h;f\r\n" in video
    # right after the existing extmap line, everything else kept in order
    assert video.index("sdes:mid") < video.index("rtp-stream-id") < video.index("rtpmap:96")
    assert answer.endswith("\r\n") and munge_answer(ANSWER, {}) == ANSWER


def test_answer_section_rejected_or_with_a_clashing_extension_id_is_unchanged():
    offers = parse_simulcast_offer(OFFER)
    rejected = ANSWER.replace("m=video 9", "m=video 0")
    assert "simulcast" not in munge_answer(rejected, offers)
    clash = ANSWER.replace("a=extmap:4 urn", "a=extmap:10 urn")
    assert "simulcast" not in munge_answer(clash, offers)


def _rtp(exts: bytes = b"", payload: bytes = b"\x90\x80\x01", two_byte: bool = False) -> bytes:
    head = struct.pack("!BBHII", 0x90 if exts else 0x80, 96, 1, 2, 3)
    if not exts:
        return head + payload
    exts += b"\x00" * (-len(exts) % 4)
    profile = 0x1000 if two_byte else 0xBEDE
    return head + struct.pack("!HH", profile, len(exts) // 4) + exts + payload


def test_rid_and_mid_read_from_one_byte_extensions():
    pkt = _rtp(bytes([0x40]) + b"1" + bytes([0xA0]) + b"h" + bytes([0x31]) + b"\x01\x02")
    assert read_extensions(pkt, (4, 10, 11)) == {4: b"1", 10: b"h"}


def test_rid_read_from_two_byte_extensions_and_bad_blocks_give_nothing():
    pkt = _rtp(bytes([10, 2]) + b"hi" + bytes([0, 11, 1]) + b"q", two_byte=True)
    assert read_extensions(pkt, (10, 11)) == {10: b"hi", 11: b"q"}
    assert read_extensions(_rtp(), (10,)) == {}
    truncated = pkt[:16] + struct.pack("!HH", 0xBEDE, 40)[2:]  # claims 40 words
    assert read_extensions(pkt[:12] + struct.pack("!HH", 0xBEDE, 40) + b"\xa1", (10,)) == {}
    assert read_extensions(truncated, (10,)) == {}
    overlong = _rtp(bytes([0xAF]) + b"x")  # length 16 runs past the block
    assert read_extensions(overlong, (10,)) == {}


# --- VP8 descriptors ---------------------------------------------------------------


def vp8(pic: int, tl0: int, keyidx: int, *, start: bool = False, key: bool = False) -> bytes:
    """A VP8 payload with a 15-bit PictureID, TL0PICIDX and KEYIDX (+ frame header)."""
    b0 = 0x80 | (0x10 if start else 0)
    desc = bytes([b0, 0xF0, 0x80 | (pic >> 8), pic & 0xFF, tl0, 0x20 | keyidx])
    if not start:
        return desc + b"\xaa" * 20
    tag = b"\x00\x00\x00" if key else b"\x01\x00\x00"
    return desc + tag + b"\x9d\x01\x2a" + struct.pack("<HH", 640, 360) + b"\xbb" * 10


def fields(payload: bytes) -> tuple[int, int, int]:
    d = parse_descriptor(payload)
    assert d is not None
    return d.picture_id, d.tl0, d.keyidx


def test_keyframe_size_is_read_and_delta_frames_have_none():
    assert vp8_keyframe_size(vp8(1, 1, 1, start=True, key=True)) == (640, 360)
    assert vp8_keyframe_size(vp8(1, 1, 1, start=True, key=False)) is None
    assert vp8_keyframe_size(vp8(1, 1, 1)) is None
    assert vp8_keyframe_size(b"\x90") is None


def test_rewriter_passes_the_first_source_through_unchanged():
    r = Vp8Rewriter()
    for pic in (100, 101, 102):
        p = vp8(pic, pic & 0xFF, 3)
        assert r.rewrite(p) == p


def test_picture_id_tl0_and_keyidx_continue_across_switches_and_wrap():
    r = Vp8Rewriter()
    seen: list[tuple[int, int, int]] = []
    # layer A near the 15-bit PictureID wrap, TL0 near its 8-bit wrap
    for i, pic in enumerate((0x7FFD, 0x7FFE)):
        seen.append(fields(r.rewrite(vp8(pic, (0xFF + i) & 0xFF, 30))))
    r.switch()  # layer B, numbered independently
    for i, pic in enumerate((500, 501, 502)):
        seen.append(fields(r.rewrite(vp8(pic, 17 + i, 4, start=i == 0, key=i == 0))))
    r.switch()  # back to layer A, which moved on meanwhile
    for i, pic in enumerate((0x0010, 0x0011)):
        seen.append(fields(r.rewrite(vp8(pic, 40 + i, 31, start=i == 0, key=i == 0))))
    pics = [s[0] for s in seen]
    tl0s = [s[1] for s in seen]
    keys = [s[2] for s in seen]
    assert pics == [(0x7FFD + i) & 0x7FFF for i in range(len(seen))]
    assert tl0s == [(0xFF + i) & 0xFF for i in range(len(seen))]
    assert all(((b - a) & 0x1F) in (0, 1) for a, b in itertools.pairwise(keys))
    assert keys[1] != keys[2] and keys[4] != keys[5]  # each switch is a new key index


def test_seven_bit_picture_ids_wrap_at_128():
    r = Vp8Rewriter()
    short = bytes([0x80, 0x80, 0x7F]) + b"\x00" * 4
    assert r.rewrite(short) == short
    r.switch()
    out = r.rewrite(bytes([0x90, 0x80, 0x05]) + b"\x00" * 4)
    assert out[2] == 0x00  # 127 + 1 wraps to 0, still 7 bits
    assert r.rewrite(b"") == b""  # unparseable: unchanged


# --- sequence and timestamp continuity ------------------------------------------------


def _video(seq: int, ts: int, payload: bytes, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq, ts, ssrc) + payload


def test_output_continues_sequence_and_timestamp_when_moved_between_layers():
    low = ForwardingTrack("VP8", video=True, ext_ids=InboundExtIds())
    high = ForwardingTrack("VP8", video=True, ext_ids=InboundExtIds())
    out = OutputStream(OutputParams(ssrc=5, payload_type=100, mid="1"), "s", video=True)
    out.active = True
    out.rewrite_vp8()
    low.outputs.append(out)
    sent: list[bytes] = []
    # low layer: sequence numbers about to wrap
    for i in range(4):
        seq = (0xFFFE + i) & 0xFFFF
        payload = vp8(10 + i, 1, 0, start=i == 0, key=i == 0)
        pkts, _ = low.route(_video(seq, 1000 + 3000 * i, payload, 1), 0.0)
        sent += [p for _, p in pkts]
    # switch at a keyframe of the high layer, 40 ms of wall clock later
    low.outputs.remove(out)
    out.pause(video=True, rebase_ts=True, ts_step=3600)
    out.vp8_switch()
    high.outputs.append(out)
    pkts, _ = high.route(_video(9000, 777_000, vp8(900, 5, 2), 2), 0.0)
    assert pkts == []  # not a keyframe: the output waits
    for i in range(3):
        payload = vp8(901 + i // 2, 6, 2, start=i == 0, key=i == 0)
        pkts, _ = high.route(_video(9001 + i, 777_000 + 3000 * (i // 2), payload, 2), 0.0)
        sent += [p for _, p in pkts]
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in sent]
    tss = [struct.unpack_from("!I", p, 4)[0] for p in sent]
    first = seqs[0]
    assert seqs == [(first + i) & 0xFFFF for i in range(len(sent))]
    assert (tss[4] - tss[3]) & 0xFFFFFFFF == 3600
    assert (tss[6] - tss[4]) & 0xFFFFFFFF == 3000
    assert {struct.unpack_from("!I", p, 8)[0] for p in sent} == {5}
    pics = [fields(p[12:])[0] for p in sent]
    assert pics == [10, 11, 12, 13, 14, 14, 15]


# --- the policy ---------------------------------------------------------------------

L = [
    LayerInfo(320, 180, 150_000, True),
    LayerInfo(640, 360, 500_000, True),
    LayerInfo(1280, 720, 1_700_000, True),
]


def test_smallest_covering_layer():
    assert covering_layer(L, 300, 170) == 0
    assert covering_layer(L, 320, 180) == 0
    assert covering_layer(L, 600, 340) == 1
    assert covering_layer(L, 1100, 620) == 2
    assert covering_layer(L, 4000, 3000) == 2
    gone = [L[0], L[1], LayerInfo(1280, 720, 0, False)]
    assert covering_layer(gone, 1100, 620) == 1
    assert covering_layer([LayerInfo(0, 0, 0, False)], 10, 10) == -1


def test_not_visible_means_no_layer_and_size_changes_apply_at_once_without_estimate():
    s = LayerSelector()
    assert s.decide(L, 0, 0, None, 2, 0.0) == -1
    assert s.decide(L, 300, 170, None, -1, 0.0) == 0
    assert s.decide(L, 1200, 700, None, 0, 0.1) == 2
    assert s.decide(L, 600, 340, None, 2, 0.2) == 1


def test_estimate_caps_steps_down_fast_and_up_only_after_a_stable_period():
    s = LayerSelector(up_hold=2.0, backoff=8.0, down_after=0.0)
    assert s.decide(L, 1280, 720, 3_000_000, -1, 0.0) == 2
    # the estimate collapses: down (after up_hold since the last change) to what fits
    assert s.decide(L, 1280, 720, 400_000, 2, 1.0) == 2
    assert s.decide(L, 1280, 720, 400_000, 2, 2.5) == 0
    # the estimate follows what it receives (1.5x): no upward step during the backoff
    for t in (3.0, 6.0, 10.0):
        assert s.decide(L, 1280, 720, 250_000, 0, t) == 0
    # after the backoff: one step up by the timer, then another after up_hold
    assert s.decide(L, 1280, 720, 250_000, 0, 10.6) == 1
    assert s.decide(L, 1280, 720, 750_000, 1, 11.0) == 1
    assert s.decide(L, 1280, 720, 750_000, 1, 12.7) == 2
    # an estimate that shows room moves up at once
    s2 = LayerSelector()
    assert s2.decide(L, 1280, 720, 200_000, -1, 0.0) == 0
    assert s2.decide(L, 1280, 720, 2_000_000, 0, 0.1) == 2


def test_budget_is_shared_by_rendered_area():
    assert split_budget(None, [1, 2]) == [None, None]
    assert split_budget(1_000_000, [300 * 200, 900 * 600, 0]) == [100_000, 900_000, 0]


def test_speaker_order_for_last_n():
    from mediaserver.sfu.lastn import SpeakerOrder

    order = SpeakerOrder()
    for p in ("a", "b", "c", "d"):
        order.joined(p)
    assert order.visible_to("a", 2) == {"b", "c"}  # join order before anyone speaks
    assert order.spoke("d") is True and order.spoke("d") is False
    assert order.visible_to("a", 2) == {"d", "b"}
    assert order.visible_to("d", 2) == {"a", "b"}  # never yourself
    order.left("b")
    assert order.visible_to("a", 2) == {"d", "c"}
    assert order.spoke("zz") is False  # not in the room


def test_bench_bots_simulcast_offer_is_what_the_server_recognises():
    from loadtests.grid import LAYERS, RID_EXT_ID, simulcast_offer

    plain = "".join(
        line + "\r\n"
        for line in OFFER.split("\r\n")
        if line and not line.startswith(("a=simulcast", "a=rid", "a=extmap:10", "a=extmap:11"))
    )
    offer = simulcast_offer(plain)
    found = parse_simulcast_offer(offer)
    assert list(found) == ["1"]
    assert found["1"].rids == tuple(LAYERS) and found["1"].rid_ext_id == RID_EXT_ID


def test_a_timer_probe_gets_time_for_the_estimate_to_follow_unless_it_collapses():
    s = LayerSelector(up_hold=2.0, probe_grace=8.0, down_after=0.0)
    assert s.decide(L, 1280, 720, 300_000, -1, 0.0) == 0
    assert s.decide(L, 1280, 720, 300_000, 0, 2.1) == 1  # probe up by the timer
    # the estimate lags behind what is now received: no step down during the grace
    for t in (4.5, 7.0, 10.0):
        assert s.decide(L, 1280, 720, 350_000, 1, t) == 1
    assert s.decide(L, 1280, 720, 350_000, 1, 10.2) == 0  # grace over, still short
    s2 = LayerSelector(up_hold=2.0, probe_grace=8.0, down_after=0.0)
    s2.decide(L, 1280, 720, 300_000, -1, 0.0)
    assert s2.decide(L, 1280, 720, 300_000, 0, 2.1) == 1
    assert s2.decide(L, 1280, 720, 100_000, 1, 2.5) == 0  # collapsed below the layer below


def test_a_passing_dip_in_the_estimate_does_not_step_down():
    s = LayerSelector(up_hold=2.0, down_after=1.0)
    assert s.decide(L, 1280, 720, 3_000_000, -1, 0.0) == 2
    assert s.decide(L, 1280, 720, 400_000, 2, 5.0) == 2  # short from now on...
    assert s.decide(L, 1280, 720, 3_000_000, 2, 5.5) == 2  # ...but back up: forgotten
    assert s.decide(L, 1280, 720, 400_000, 2, 6.0) == 2
    assert s.decide(L, 1280, 720, 400_000, 2, 6.6) == 2
    assert s.decide(L, 1280, 720, 400_000, 2, 7.0) == 0  # short for a second: down


def test_sequence_and_timestamp_continue_when_a_switch_crosses_both_wraps():
    """The output's sequence numbers and timestamps wrap (16 / 32 bits) right at the
    switch, and the new layer's own numbers wrap a packet later: still continuous."""
    low = ForwardingTrack("VP8", video=True, ext_ids=InboundExtIds())
    high = ForwardingTrack("VP8", video=True, ext_ids=InboundExtIds())
    out = OutputStream(OutputParams(ssrc=5, payload_type=100, mid="1"), "s", video=True)
    out.active = True
    out._next_seq = 0xFFFD  # pinned (normally random) so the output wraps at the switch
    out._ts_offset = 0
    low.outputs.append(out)
    sent: list[bytes] = []
    for i in range(3):  # output seq 0xFFFD..0xFFFF, ts up to 0xFFFFF170
        payload = vp8(10 + i, 1, 0, start=i == 0, key=i == 0)
        pkts, _ = low.route(_video(100 + i, 0xFFFFDA00 + 3000 * i, payload, 1), 0.0)
        sent += [p for _, p in pkts]
    assert struct.unpack_from("!I", sent[-1], 4)[0] == 0xFFFFF170
    low.outputs.remove(out)
    out.pause(video=True, rebase_ts=True, ts_step=7200)  # 80 ms later: past 2**32
    high.outputs.append(out)
    for i in range(3):  # the new layer's own sequence number and timestamp wrap too
        payload = vp8(700 + i, 9, 3, start=i == 0, key=i == 0)
        data = _video(
            (0xFFFF + i) & 0xFFFF, (0xFFFFFFFF - 1000 + 3000 * i) & 0xFFFFFFFF, payload, 2
        )
        pkts, _ = high.route(data, 0.0)
        sent += [p for _, p in pkts]
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in sent]
    tss = [struct.unpack_from("!I", p, 4)[0] for p in sent]
    assert seqs == [0xFFFD, 0xFFFE, 0xFFFF, 0, 1, 2]
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(tss)]
    assert steps == [3000, 3000, 7200, 3000, 3000]
    assert tss[3] < tss[2]  # the output's timestamp did wrap at the switch


# --- binding layers by rid / repaired-rid -------------------------------------------


class _Track:
    payload_type, rtx_payload_type, codec, mid, mid_ext_id = 96, 97, "VP8", "1", 4


class _LayerPub:
    track = _Track()

    def __init__(self) -> None:
        self.ssrc = 0

    def bind_ssrc(self, ssrc: int) -> None:
        self.ssrc = ssrc

    def on_rtp(self, data: bytes, now: float) -> None:
        pass

    def on_rtx(self, data: bytes, now: float) -> None:
        pass


def _with_ext(pt: int, ssrc: int, items: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(bytes(((i << 4) | (len(v) - 1),)) + v for i, v in items)
    body += b"\x00" * (-len(body) % 4)
    head = struct.pack("!BBHII", 0x90, pt, 1, 2, ssrc)
    return head + struct.pack("!HH", 0xBEDE, len(body) // 4) + body + b"\x90\x80\x01"


def test_layers_are_bound_by_rid_and_their_rtx_by_repaired_rid():
    from types import SimpleNamespace

    from mediaserver.sfu.layerswitch import SimulcastLayers, bind_by_rid

    offer = parse_simulcast_offer(OFFER)["1"]  # rid ext 10, repaired-rid 11, mid ext 4
    parent = SimpleNamespace(track=_Track(), simulcast=None)
    sim = SimulcastLayers(parent, offer, _LayerPub, 3_000_000)
    parent.simulcast = sim
    pubs = [parent]
    h = sim.layer("h")
    assert h is not None
    # media: rid (and the m-line's mid) name the layer
    media = _with_ext(96, 0x111, [(4, b"1"), (10, b"h")])
    rid, rtx, handler = bind_by_rid(pubs, media, 0x111)
    assert (rid, rtx, h.ssrc, h.pub.ssrc, sim.bound) == ("h", False, 0x111, 0x111, 1)
    # its RTX stream: repaired-rid and the RTX payload type
    repair = _with_ext(97, 0x222, [(4, b"1"), (11, b"h")])
    rid, rtx, handler = bind_by_rid(pubs, repair, 0x222)
    assert (rid, rtx, h.rtx_ssrc, h.ssrc) == ("h", True, 0x222, 0x111)
    assert handler == h.pub.on_rtx
    assert sim.bound == 1  # an RTX stream is not a layer
    # not bound: repaired-rid on the media payload type, another m-line's mid, an
    # unknown rid, no extension at all
    for data in (
        _with_ext(96, 0x333, [(11, b"q")]),
        _with_ext(96, 0x333, [(4, b"2"), (10, b"q")]),
        _with_ext(96, 0x333, [(10, b"x")]),
        struct.pack("!BBHII", 0x80, 96, 1, 2, 0x333) + b"\x90\x80\x01",
    ):
        assert bind_by_rid(pubs, data, 0x333) is None
    assert [la.ssrc for la in sim.layers] == [0, 0x111, 0]


# --- H264 layer sizes (from the SPS) ---------------------------------------------------

#: SPS NAL units x264 wrote for 320x180 / 640x360 (baseline, cropped from 16-pixel
#: macroblocks), 1280x720 (high profile) and 638x358 (odd crop)
SPS = {
    (320, 180): "6742c00bd901419f9f011000000300100000030020f142a480",
    (640, 360): "6742c016d900a02ff97011000003000100000300020f162e48",
    (1280, 720): "6764001facd9405005bb011000000300100000030020f1831960",
    (638, 358): "67640016acd940a02fea6c044000000300400000030083c58b6580",
}
PPS = bytes.fromhex("68ce3c80")


def _stap_a(*nals: bytes) -> bytes:
    return b"\x18" + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def test_h264_size_is_read_from_the_sps_alone_or_in_a_stap_a():
    from mediaserver.h264 import h264_keyframe_size, sps_size

    for size, sps in SPS.items():
        nal = bytes.fromhex(sps)
        assert sps_size(nal) == size
        assert h264_keyframe_size(nal) == size
        assert h264_keyframe_size(_stap_a(nal, PPS)) == size
        assert h264_keyframe_size(_stap_a(PPS, nal)) == size
        assert sps_size(nal[:6]) is None  # truncated
    assert h264_keyframe_size(_stap_a(PPS)) is None
    assert h264_keyframe_size(b"\x65\x88\x84") is None  # an IDR slice: no size
    assert h264_keyframe_size(b"") is None and sps_size(PPS) is None


class _H264Track(_Track):
    codec = "H264"


class _H264LayerPub(_LayerPub):
    track = _H264Track()


def test_h264_layers_are_ordered_by_the_size_in_their_sps():
    from types import SimpleNamespace

    from mediaserver.sfu.layerswitch import SimulcastLayers, bind_by_rid

    # the offer names the layers high to low: only their keyframes tell the order
    offer = parse_simulcast_offer(OFFER.replace("q;h;f", "f;h;q"))["1"]
    parent = SimpleNamespace(track=_H264Track(), simulcast=None)
    sim = SimulcastLayers(parent, offer, _H264LayerPub, 3_000_000)
    parent.simulcast = sim
    assert [la.rid for la in sim.layers] == ["f", "h", "q"]
    sizes = {"f": (1280, 720), "h": (640, 360), "q": (320, 180)}
    for n, (rid, size) in enumerate(sizes.items()):
        ssrc = 0x100 + n
        head = _with_ext(96, ssrc, [(4, b"1"), (10, rid.encode())])[:-3]
        _, _, handler = bind_by_rid([parent], head + b"\x41\x9a", ssrc)
        handler(head + b"\x41\x9a\x00", 0.0)  # a delta frame: no size yet
        assert sim.layer(rid).width == 0
        handler(head + _stap_a(bytes.fromhex(SPS[size]), PPS), 0.1)
    assert [(la.width, la.height) for la in sim.layers] == list(sizes.values())
    assert [la.rid for la in sim.ordered()] == ["q", "h", "f"]
