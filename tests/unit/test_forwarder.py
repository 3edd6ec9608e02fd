"""Unit tests for mediaserver.sfu.forwarder (pure: hand-built RTP bytes, no IO).

Every test runs against both forwarding paths: the pure-Python reference (forwarder.py)
and the native twin (fastpath.py over the C extension in csrc/), which hands its packets back to
Python here because no output has a send target.
"""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from mediaserver.sfu import fastpath
from mediaserver.sfu.forwarder import (
    AUDIO_CACHE_SIZE,
    CACHE_SIZE,
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    MAX_PACKET_BYTES,
    ForwardingTrack,
    InboundExtIds,
    OutputParams,
    OutputStream,
    abs_send_time,
    is_keyframe_start,
    rtp_payload_offset,
    seq_newer,
    unwrap_rtx,
)

PUB_SSRC = 0x01020304
PUB_PT = 96
# Publisher's negotiated extension ids.
PUB_MID_ID = 1
PUB_AL_ID = 6
PUB_AST_ID = 3
PUB_EXT_IDS = InboundExtIds(audio_level=PUB_AL_ID, abs_send_time=PUB_AST_ID)

# One subscriber's negotiated values (deliberately all different from the publisher's).
SUB_SSRC = 0xA1B2C3D4
SUB_PT = 111
SUB_MID = "sub-7"
SUB_MID_ID = 7
SUB_AL_ID = 8
SUB_AST_ID = 9
SUB_RTX_SSRC = 0x0BADCAFE
SUB_RTX_PT = 112

OPUS_PAYLOAD = bytes(range(40, 80))

_classes: dict[str, type] = {"track": ForwardingTrack, "output": OutputStream}


@pytest.fixture(autouse=True, params=["python", "native"])
def forwarding_path(request: pytest.FixtureRequest) -> str:
    """The path under test: tracks and outputs below are made of its classes."""
    if request.param == "native":
        if fastpath.PATH != "native":
            pytest.skip(f"native path not active: {fastpath.REASON}")
        _classes.update(track=fastpath.NativeForwardingTrack, output=fastpath.NativeOutputStream)
    else:
        _classes.update(track=ForwardingTrack, output=OutputStream)
    return str(request.param)


def make_track(codec: str, *, video: bool, ext_ids: InboundExtIds) -> ForwardingTrack:
    track: ForwardingTrack = _classes["track"](codec, video=video, ext_ids=ext_ids)
    return track


def make_output(p: OutputParams, name: str, *, video: bool) -> OutputStream:
    output: OutputStream = _classes["output"](p, name, video=video)
    return output


# --- packet builders -------------------------------------------------------------


def ext_block(items: list[tuple[int, bytes]], profile: int = 0xBEDE) -> bytes:
    """An RFC 8285 one-byte header-extension block (with its 4-byte header)."""
    body = b"".join(bytes(((i << 4) | (len(v) - 1),)) + v for i, v in items)
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", profile, len(body) // 4) + body


def rtp(
    seq: int,
    ts: int = 0,
    *,
    pt: int = PUB_PT,
    ssrc: int = PUB_SSRC,
    marker: bool = False,
    payload: bytes = OPUS_PAYLOAD,
    ext: bytes | None = None,
    csrcs: tuple[int, ...] = (),
    padding: int = 0,
) -> bytes:
    b0 = 0x80 | len(csrcs)
    if ext is not None:
        b0 |= 0x10
    if padding:
        b0 |= 0x20
    b1 = (0x80 if marker else 0) | pt
    data = struct.pack("!BBHII", b0, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    data += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext is not None:
        data += ext
    data += payload
    if padding:
        data += b"\x00" * (padding - 1) + bytes((padding,))
    return data


def pub_ext(level: int = 0x85, ast: bytes = b"\x12\x34\x56") -> bytes:
    """The publisher's extensions: its own mid, audio level and abs-send-time."""
    return ext_block([(PUB_MID_ID, b"0"), (PUB_AL_ID, bytes((level,))), (PUB_AST_ID, ast)])


def ext_map(mid: int = 0, audio_level: int = 0, ast: int = 0) -> HeaderExtensionsMap:
    exts = []
    if mid:
        exts.append(RTCRtpHeaderExtensionParameters(id=mid, uri=EXT_MID))
    if audio_level:
        exts.append(RTCRtpHeaderExtensionParameters(id=audio_level, uri=EXT_AUDIO_LEVEL))
    if ast:
        exts.append(RTCRtpHeaderExtensionParameters(id=ast, uri=EXT_ABS_SEND_TIME))
    m = HeaderExtensionsMap()
    m.configure(RTCRtpParameters(headerExtensions=exts))
    return m


SUB_MAP = ext_map(SUB_MID_ID, SUB_AL_ID, SUB_AST_ID)


def parse_sub(pkt: bytes) -> RtpPacket:
    return RtpPacket.parse(pkt, SUB_MAP)


def out_exts(pkt: bytes) -> dict[int, bytes]:
    """The one-byte extensions of an output packet, by id (fails on duplicates)."""
    assert pkt[0] & 0x10, "packet has no header extension"
    cc = pkt[0] & 0x0F
    off = 12 + 4 * cc
    profile, words = struct.unpack_from("!HH", pkt, off)
    assert profile == 0xBEDE
    body = pkt[off + 4 : off + 4 + 4 * words]
    found: dict[int, bytes] = {}
    i = 0
    while i < len(body):
        h = body[i]
        if h == 0:
            i += 1
            continue
        ext_id, length = h >> 4, (h & 0x0F) + 1
        assert ext_id not in found, f"extension id {ext_id} appears twice"
        found[ext_id] = body[i + 1 : i + 1 + length]
        i += 1 + length
    return found


def seq_of(pkt: bytes) -> int:
    return struct.unpack_from("!H", pkt, 2)[0]


def ts_of(pkt: bytes) -> int:
    return struct.unpack_from("!I", pkt, 4)[0]


def ssrc_of(pkt: bytes) -> int:
    return struct.unpack_from("!I", pkt, 8)[0]


def params(**kw: object) -> OutputParams:
    base: dict[str, object] = {
        "ssrc": SUB_SSRC,
        "payload_type": SUB_PT,
        "mid": SUB_MID,
        "mid_ext_id": SUB_MID_ID,
        "audio_level_ext_id": SUB_AL_ID,
        "abs_send_time_ext_id": SUB_AST_ID,
    }
    base.update(kw)
    return OutputParams(**base)  # type: ignore[arg-type]


def add_output(
    track: ForwardingTrack,
    p: OutputParams | None = None,
    *,
    active: bool = True,
    next_seq: int | None = None,
    ts_offset: int | None = None,
    name: str = "sub",
) -> OutputStream:
    """Attach an output; ``next_seq``/``ts_offset`` pin its (normally random) start."""
    o = make_output(p or params(), name, video=track.video)
    if next_seq is not None:
        o._next_seq = next_seq
    if ts_offset is not None:
        o._ts_offset = ts_offset
    o.active = active
    track.outputs.append(o)
    return o


def audio_track() -> ForwardingTrack:
    return make_track("opus", video=False, ext_ids=PUB_EXT_IDS)


def vp8_track() -> ForwardingTrack:
    return make_track("VP8", video=True, ext_ids=PUB_EXT_IDS)


def only(out: list[tuple[OutputStream, bytes]], o: OutputStream) -> bytes:
    """The single packet routed to ``o`` (fails if none or several)."""
    pkts = [p for oo, p in out if oo is o]
    assert len(pkts) == 1, f"expected exactly one packet for the output, got {len(pkts)}"
    return pkts[0]


def vp8(
    keyframe: bool,
    *,
    start: bool = True,
    pid: int = 0,
    x: bool = False,
    picture_id: int | None = None,
    tl0: bool = False,
    tk: int = 0,
) -> bytes:
    """A VP8 payload: RFC 7741 descriptor, then the VP8 payload header.

    Filler bytes in the descriptor get the opposite low bit of the expected P bit,
    so reading the payload header at the wrong offset gives the wrong answer.
    """
    filler = 0x01 if keyframe else 0x02
    b0 = (0x80 if x else 0) | (0x10 if start else 0) | (pid & 0x07)
    out = bytes((b0,))
    if x:
        xb = (0x80 if picture_id is not None else 0) | (0x40 if tl0 else 0)
        xb |= tk  # T (0x20) and/or K (0x10): one shared byte
        out += bytes((xb,))
        if picture_id is not None:
            if picture_id > 0x7F:
                out += bytes((0x80 | ((picture_id >> 8) & 0x7E) | filler, filler))
            else:
                out += bytes(((picture_id & 0x7E) | filler,))
        if tl0:
            out += bytes((0x10 | filler,))
        if tk:
            out += bytes((0x20 | filler,))
    # VP8 payload header: size0(3) show_frame(1) version(3) P(1); P = 0 on keyframes.
    header = 0x10 | (0 if keyframe else 1)
    return out + bytes((header, 0x9D, 0x01, 0x2A)) + bytes(range(20))


# --- small helpers ---------------------------------------------------------------


def test_seq_newer_is_wrap_aware() -> None:
    assert seq_newer(1, 0)
    assert not seq_newer(0, 1)
    assert not seq_newer(5, 5)
    assert seq_newer(0, 0xFFFF)
    assert seq_newer(3, 0xFFF0)
    assert not seq_newer(0xFFF0, 3)
    assert seq_newer(0x7FFF, 0)
    assert not seq_newer(0x8000, 0)


def test_abs_send_time_is_6_18_fixed_point_24_bits() -> None:
    assert abs_send_time(0.0) == b"\x00\x00\x00"
    assert abs_send_time(1.5) == b"\x06\x00\x00"  # 1.5 * 2**18 = 0x060000
    assert abs_send_time(1.0 / 262144) == b"\x00\x00\x01"
    # 64 s is 2**24 units: the value wraps.
    assert abs_send_time(64.25) == b"\x01\x00\x00"
    assert len(abs_send_time(123456.789)) == 3


# --- rtp_payload_offset ----------------------------------------------------------


@pytest.mark.parametrize(
    ("csrcs", "ext", "expected"),
    [
        ((), None, 12),
        ((1, 2), None, 20),
        ((), ext_block([(1, b"ab"), (2, b"\x05")]), 12 + 4 + 8),
        ((7, 8, 9), ext_block([(3, b"\x01\x02\x03")]), 12 + 12 + 4 + 4),
        ((), ext_block([]), 16),
    ],
)
def test_rtp_payload_offset(csrcs: tuple[int, ...], ext: bytes | None, expected: int) -> None:
    data = rtp(5, 6, csrcs=csrcs, ext=ext, payload=b"PAYLOAD")
    assert rtp_payload_offset(data) == expected
    assert data[expected:] == b"PAYLOAD"
    parsed = RtpPacket.parse(data)
    assert parsed.payload == b"PAYLOAD"
    assert parsed.csrc == list(csrcs)


def test_rtp_payload_offset_header_only_packet() -> None:
    data = rtp(1, csrcs=(1,), ext=ext_block([(1, b"x")]), payload=b"")
    assert rtp_payload_offset(data) == len(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80" * 11,
        rtp(1, csrcs=(1, 2, 3), payload=b"")[:20],  # CSRC list cut short
        bytes((0x90,)) + bytes(11),  # X bit set, no room for the extension header
        rtp(1, csrcs=(1,), ext=ext_block([(1, b"abcd")]), payload=b"")[:18],  # ext header cut
        rtp(1, ext=ext_block([(1, b"abcdefgh")]), payload=b"")[:-1],  # ext body cut
    ],
)
def test_rtp_payload_offset_rejects_truncated(data: bytes) -> None:
    with pytest.raises(ValueError):
        rtp_payload_offset(data)


# --- route: header rewriting -----------------------------------------------------


def test_route_rewrites_ssrc_pt_seq_ts_and_keeps_payload() -> None:
    track = audio_track()
    o = add_output(track, next_seq=1000, ts_offset=5_000_000)
    sent = []
    for k, seq in enumerate((40_000, 40_001, 40_002, 40_004, 40_005)):  # 40_003 lost
        ts = 123_456 + 960 * k
        payload = bytes((k,)) * (10 + k)
        out, keyframe = track.route(rtp(seq, ts, payload=payload, marker=k == 0), now=1.0)
        assert keyframe is False  # route only reports keyframes for video
        pkt = only(out, o)
        sent.append(pkt)
        p = parse_sub(pkt)
        assert p.version == 2
        assert p.ssrc == SUB_SSRC
        assert p.payload_type == SUB_PT
        assert p.marker == (1 if k == 0 else 0)
        assert p.payload == payload
        assert pkt.endswith(payload)
        assert p.timestamp == (ts + 5_000_000) & 0xFFFFFFFF == o.output_ts(ts)
        assert o.last_rtp_ts == p.timestamp
    # Sequence offset is per output and constant: the publisher's gap is kept.
    assert [seq_of(p) for p in sent] == [1000, 1001, 1002, 1004, 1005]
    assert o.packets == 5
    assert o.octets == sum(10 + k for k in range(5))


def test_route_offsets_are_per_output() -> None:
    track = audio_track()
    a = add_output(track, next_seq=10, ts_offset=0, name="a")
    b = add_output(track, next_seq=20_000, ts_offset=0xFFFF0000, name="b")
    c = add_output(track, params(ssrc=0x55555555, payload_type=100), name="c")
    c_first = None
    for k in range(4):
        out, _ = track.route(rtp(7 + k, 1000 + 960 * k), now=0.0)
        assert len(out) == 3
        assert seq_of(only(out, a)) == 10 + k
        assert seq_of(only(out, b)) == 20_000 + k
        assert ts_of(only(out, a)) == 1000 + 960 * k
        assert ts_of(only(out, b)) == (0xFFFF0000 + 1000 + 960 * k) & 0xFFFFFFFF
        pc = only(out, c)
        assert ssrc_of(pc) == 0x55555555 and pc[1] & 0x7F == 100
        if c_first is None:
            c_first = seq_of(pc)
            assert c_first < 0x8000  # random start in the lower half
        assert seq_of(pc) == (c_first + k) & 0xFFFF
        assert ts_of(pc) == c.output_ts(1000 + 960 * k)


def test_output_sequence_wraps_at_65535() -> None:
    track = audio_track()
    o = add_output(track, next_seq=0xFFFD)
    seqs = [seq_of(only(track.route(rtp(300 + k), 0.0)[0], o)) for k in range(6)]
    assert seqs == [0xFFFD, 0xFFFE, 0xFFFF, 0, 1, 2]


def test_publisher_sequence_wrap_keeps_output_continuous() -> None:
    track = audio_track()
    o = add_output(track, next_seq=500)
    pub = [0xFFFC, 0xFFFD, 0xFFFE, 0xFFFF, 0, 1, 2]
    seqs = [seq_of(only(track.route(rtp(s), 0.0)[0], o)) for s in pub]
    assert seqs == list(range(500, 507))


def test_output_timestamp_wraps_mod_2_32() -> None:
    track = audio_track()
    o = add_output(track, ts_offset=0xFFFFFF00)
    got = [
        ts_of(only(track.route(rtp(1 + k, ts), 0.0)[0], o))
        for k, ts in enumerate((0x80, 0x100, 0x180))
    ]
    assert got == [0xFFFFFF80, 0x00000000, 0x00000080]
    # Publisher timestamp wrap too.
    track2 = audio_track()
    o2 = add_output(track2, ts_offset=0x100)
    got2 = [
        ts_of(only(track2.route(rtp(1 + k, ts), 0.0)[0], o2))
        for k, ts in enumerate((0xFFFFFF00, 0xFFFFFFC0, 0x40))
    ]
    assert got2 == [0x0, 0xC0, 0x140]


@pytest.mark.parametrize("marker", [False, True])
@pytest.mark.parametrize("with_ext", [False, True])
def test_marker_and_padding_bits_preserved(marker: bool, with_ext: bool) -> None:
    track = audio_track()
    p = params() if with_ext else params(mid_ext_id=0, audio_level_ext_id=0, abs_send_time_ext_id=0)
    o = add_output(track, p)
    data = rtp(9, 9, marker=marker, payload=b"\xaa" * 33, padding=7, ext=pub_ext())
    pkt = only(track.route(data, 2.0)[0], o)
    assert bool(pkt[0] & 0x20)
    assert bool(pkt[1] & 0x80) == marker
    assert pkt[-7:] == data[-7:]  # padding bytes untouched
    assert pkt[rtp_payload_offset(pkt) :] == data[rtp_payload_offset(data) :]
    parsed = parse_sub(pkt)
    assert parsed.padding_size == 7
    assert parsed.payload == b"\xaa" * 33
    assert parsed.marker == int(marker)
    # And without padding, no P bit.
    pkt2 = only(track.route(rtp(10, 10, marker=marker), 2.0)[0], o)
    assert not pkt2[0] & 0x20


def test_header_extensions_replaced_for_the_subscriber() -> None:
    track = audio_track()
    o = add_output(track)
    now = 1234.5678
    # The publisher also uses ids the subscriber negotiated for other things.
    data = rtp(
        77,
        1,
        ext=ext_block(
            [
                (PUB_MID_ID, b"0"),
                (SUB_MID_ID, b"WRONG"),
                (PUB_AL_ID, b"\x85"),
                (SUB_AL_ID, b"\x11"),
                (PUB_AST_ID, b"\xff\xee\xdd"),
                (SUB_AST_ID, b"\x00\x00\x01"),
                (12, b"secret"),
            ]
        ),
        csrcs=(0xCAFE,),
    )
    pkt = only(track.route(data, now)[0], o)
    ast = abs_send_time(now)
    assert out_exts(pkt) == {SUB_MID_ID: SUB_MID.encode(), SUB_AL_ID: b"\x85", SUB_AST_ID: ast}
    assert pkt[0] & 0x0F == 0  # a fresh header: no CSRCs
    parsed = parse_sub(pkt)
    assert parsed.extensions.mid == SUB_MID
    assert parsed.extensions.audio_level == (True, 5)
    assert parsed.extensions.abs_send_time == int(now * 262144) & 0xFFFFFF
    assert parsed.payload == OPUS_PAYLOAD
    assert parsed.csrc == []


def test_audio_level_copied_from_publisher_id_only() -> None:
    track = audio_track()
    o = add_output(track, params(abs_send_time_ext_id=0))
    # Audio level under another id than the negotiated one is not an audio level.
    pkt = only(track.route(rtp(1, ext=ext_block([(5, b"\x85")])), 0.0)[0], o)
    assert out_exts(pkt) == {SUB_MID_ID: SUB_MID.encode()}
    assert parse_sub(pkt).extensions.audio_level is None
    # After padding bytes and another extension it is still found.
    ext = struct.pack("!HH", 0xBEDE, 2) + b"\x00\x00" + bytes((PUB_MID_ID << 4,)) + b"0"
    ext += bytes((PUB_AL_ID << 4,)) + b"\x1e" + b"\x00\x00"
    pkt = only(track.route(rtp(2, ext=ext), 0.0)[0], o)
    assert parse_sub(pkt).extensions.audio_level == (False, 30)
    # No extension at all from the publisher: still the subscriber's mid.
    pkt = only(track.route(rtp(3), 0.0)[0], o)
    assert out_exts(pkt) == {SUB_MID_ID: SUB_MID.encode()}


def test_audio_level_not_written_when_subscriber_did_not_negotiate_it() -> None:
    track = audio_track()
    o = add_output(track, params(audio_level_ext_id=0, abs_send_time_ext_id=0))
    pkt = only(track.route(rtp(1, ext=pub_ext()), 0.0)[0], o)
    assert out_exts(pkt) == {SUB_MID_ID: SUB_MID.encode()}


def test_abs_send_time_only_when_negotiated() -> None:
    track = audio_track()
    with_ast = add_output(track, name="with")
    without = add_output(track, params(abs_send_time_ext_id=0, ssrc=42), name="without")
    out, _ = track.route(rtp(1, ext=pub_ext()), now=10.0)
    assert out_exts(only(out, with_ast))[SUB_AST_ID] == abs_send_time(10.0)
    assert SUB_AST_ID not in out_exts(only(out, without))
    assert parse_sub(only(out, without)).extensions.abs_send_time is None
    # The value is the send time, not the publisher's value.
    out, _ = track.route(rtp(2, ext=pub_ext(ast=b"\x00\x00\x00")), now=11.0)
    assert parse_sub(only(out, with_ast)).extensions.abs_send_time == 11 * 262144


def test_no_extensions_negotiated_gives_plain_12_byte_header() -> None:
    track = audio_track()
    o = add_output(track, params(mid_ext_id=0, audio_level_ext_id=0, abs_send_time_ext_id=0))
    pkt = only(track.route(rtp(1, ext=pub_ext(), csrcs=(1, 2)), 0.0)[0], o)
    assert pkt[0] == 0x80
    assert pkt[12:] == OPUS_PAYLOAD
    assert len(pkt) == 12 + len(OPUS_PAYLOAD)


def test_mid_without_id_is_not_written_and_odd_mid_lengths_are_padded() -> None:
    for mid in ("a", "ab", "abc", "abcd", "0123456789abcdef"):
        track = audio_track()
        o = add_output(track, params(mid=mid, audio_level_ext_id=0, abs_send_time_ext_id=0))
        pkt = only(track.route(rtp(1), 0.0)[0], o)
        words = struct.unpack_from("!H", pkt, 14)[0]
        assert (len(pkt) - 16 - len(OPUS_PAYLOAD)) == 4 * words
        assert out_exts(pkt) == {SUB_MID_ID: mid.encode()}
        assert RtpPacket.parse(pkt, ext_map(mid=SUB_MID_ID)).extensions.mid == mid


def test_publisher_two_byte_extension_profile_is_stripped() -> None:
    track = audio_track()
    o = add_output(track)
    ext = struct.pack("!HH", 0x1000, 1) + bytes((PUB_AL_ID, 1, 0x85, 0))
    pkt = only(track.route(rtp(1, ext=ext), 3.0)[0], o)
    exts = out_exts(pkt)
    assert exts[SUB_MID_ID] == SUB_MID.encode()
    assert set(exts) <= {SUB_MID_ID, SUB_AL_ID, SUB_AST_ID}
    assert pkt.endswith(OPUS_PAYLOAD)


# --- route: who gets packets -----------------------------------------------------


def test_inactive_outputs_get_nothing() -> None:
    track = audio_track()
    o = add_output(track, active=False, next_seq=50)
    for seq in range(1, 4):
        out, _ = track.route(rtp(seq), 0.0)
        assert out == []
    assert o.packets == 0
    assert o.retransmission(50) is None
    o.active = True
    assert seq_of(only(track.route(rtp(4), 0.0)[0], o)) == 50
    assert seq_of(only(track.route(rtp(5), 0.0)[0], o)) == 51


def test_video_output_waits_for_vp8_keyframe() -> None:
    track = vp8_track()
    a = add_output(track, next_seq=100, name="a")
    assert a.waiting_keyframe
    for seq in (1, 2):
        out, keyframe = track.route(rtp(seq, payload=vp8(False)), 0.0)
        assert out == [] and keyframe is False
        assert a.waiting_keyframe
    # Continuation packet of some frame (no S bit) with a keyframe-looking header.
    out, keyframe = track.route(rtp(3, payload=vp8(True, start=False)), 0.0)
    assert out == [] and keyframe is False
    out, keyframe = track.route(rtp(4, payload=vp8(True)), 0.0)
    assert keyframe is True
    assert seq_of(only(out, a)) == 100
    assert not a.waiting_keyframe
    # Everything after the keyframe flows, deltas and continuations included.
    b = add_output(track, params(ssrc=99), next_seq=7000, name="b")
    out, keyframe = track.route(rtp(5, payload=vp8(True, start=False)), 0.0)
    assert keyframe is False
    assert seq_of(only(out, a)) == 101 and not [p for o, p in out if o is b]
    out, _ = track.route(rtp(6, payload=vp8(False)), 0.0)
    assert seq_of(only(out, a)) == 102 and len(out) == 1
    out, keyframe = track.route(rtp(7, payload=vp8(True, x=True, picture_id=300)), 0.0)
    assert keyframe is True
    assert seq_of(only(out, a)) == 103
    assert seq_of(only(out, b)) == 7000
    out, _ = track.route(rtp(8, payload=vp8(False)), 0.0)
    assert seq_of(only(out, a)) == 104 and seq_of(only(out, b)) == 7001


def test_audio_outputs_do_not_wait_for_keyframes() -> None:
    track = audio_track()
    o = add_output(track)
    assert not o.waiting_keyframe
    out, _ = track.route(rtp(1, payload=b"\x01"), 0.0)
    assert len(out) == 1


def test_muted_track_forwards_nothing_and_resumes_without_gap() -> None:
    track = audio_track()
    o = add_output(track, next_seq=10, ts_offset=1000)
    for seq in (100, 101, 102):
        only(track.route(rtp(seq, seq * 960), 0.0)[0], o)
    track.muted = True
    track.pause_outputs()
    for seq in range(103, 150):
        out, _ = track.route(rtp(seq, seq * 960), 0.0)
        assert out == []
    track.muted = False
    got = [only(track.route(rtp(s, s * 960), 0.0)[0], o) for s in (150, 151, 153)]
    assert [seq_of(p) for p in got] == [13, 14, 16]
    # The timestamp offset does not change: the mute shows as a timestamp jump.
    assert [ts_of(p) for p in got] == [1000 + s * 960 for s in (150, 151, 153)]
    assert o.packets == 6


def test_muted_video_resumes_at_keyframe_without_gap() -> None:
    track = vp8_track()
    o = add_output(track, next_seq=200)
    only(track.route(rtp(1, payload=vp8(True)), 0.0)[0], o)
    only(track.route(rtp(2, payload=vp8(False)), 0.0)[0], o)
    track.muted = True
    track.pause_outputs()
    assert o.waiting_keyframe
    out, keyframe = track.route(rtp(3, payload=vp8(True)), 0.0)
    assert out == [] and keyframe is True  # keyframes are still reported while muted
    track.muted = False
    assert track.route(rtp(30, payload=vp8(False)), 0.0)[0] == []
    assert seq_of(only(track.route(rtp(31, payload=vp8(True)), 0.0)[0], o)) == 202
    assert seq_of(only(track.route(rtp(32, payload=vp8(False)), 0.0)[0], o)) == 203


def test_muted_without_pause_still_forwards_nothing() -> None:
    track = audio_track()
    add_output(track)
    track.muted = True
    assert track.route(rtp(1), 0.0)[0] == []


def test_packets_older_than_resync_point_are_dropped() -> None:
    track = audio_track()
    o = add_output(track, next_seq=0)
    assert seq_of(only(track.route(rtp(1000), 0.0)[0], o)) == 0
    assert track.route(rtp(999), 0.0)[0] == []  # from before the first packet
    assert track.route(rtp(1000 - 20_000), 0.0)[0] == []
    assert seq_of(only(track.route(rtp(1002), 0.0)[0], o)) == 2
    assert seq_of(only(track.route(rtp(1001), 0.0)[0], o)) == 1  # late but after start
    track.pause_outputs()
    assert seq_of(only(track.route(rtp(2000), 0.0)[0], o)) == 3
    for late in (1003, 1500, 1999):
        assert track.route(rtp(late), 0.0)[0] == []
    assert seq_of(only(track.route(rtp(2001), 0.0)[0], o)) == 4
    assert o.packets == 5


def test_long_stream_keeps_flowing_past_half_the_sequence_space() -> None:
    track = audio_track()
    o = add_output(track, next_seq=0)
    step = 16  # every 16th packet of a continuous stream, for speed
    forwarded = 0
    for k in range(0, 40_000, step):
        out, _ = track.route(rtp(k), 0.0)
        if out:
            assert seq_of(only(out, o)) == k
            forwarded += 1
    assert forwarded == len(range(0, 40_000, step))


# --- is_keyframe_start -----------------------------------------------------------

VP8_LAYOUTS = [
    pytest.param({}, id="no-X"),
    pytest.param({"x": True}, id="X-empty"),
    pytest.param({"x": True, "picture_id": 0x25}, id="I-7bit"),
    pytest.param({"x": True, "picture_id": 0x1235}, id="I-15bit"),
    pytest.param({"x": True, "tl0": True}, id="L"),
    pytest.param({"x": True, "tk": 0x30}, id="TK"),
    pytest.param({"x": True, "tk": 0x20}, id="T"),
    pytest.param({"x": True, "tk": 0x10}, id="K"),
    pytest.param({"x": True, "picture_id": 0x25, "tl0": True}, id="I7-L"),
    pytest.param({"x": True, "picture_id": 0x1235, "tl0": True, "tk": 0x30}, id="I15-L-TK"),
    pytest.param({"x": True, "picture_id": 0x25, "tk": 0x10}, id="I7-K"),
    pytest.param({"x": True, "picture_id": 0x1235, "tl0": True, "tk": 0x20}, id="I15-L-T"),
]


@pytest.mark.parametrize("layout", VP8_LAYOUTS)
def test_vp8_keyframe_start(layout: dict[str, object]) -> None:
    assert is_keyframe_start("VP8", vp8(True, **layout)) is True  # type: ignore[arg-type]
    assert is_keyframe_start("VP8", vp8(False, **layout)) is False  # type: ignore[arg-type]
    # Not the start of a frame, or not partition 0: never a keyframe start.
    assert is_keyframe_start("VP8", vp8(True, start=False, **layout)) is False  # type: ignore[arg-type]
    assert is_keyframe_start("VP8", vp8(True, pid=1, **layout)) is False  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", VP8_LAYOUTS)
def test_vp8_truncated_descriptor_is_not_keyframe_and_does_not_raise(
    layout: dict[str, object],
) -> None:
    full = vp8(True, **layout)  # type: ignore[arg-type]
    header_at = len(full) - 24  # the VP8 payload header position
    for n in range(header_at + 1):
        assert is_keyframe_start("VP8", full[:n]) is False


def test_vp8_real_descriptors() -> None:
    # What browsers send: X, I (15-bit), T/K; keyframe payload header 0x10 / 0x50.
    assert is_keyframe_start("VP8", bytes((0x90, 0xA0, 0x80, 0x01, 0x40, 0x50, 0x2A, 0x01)))
    assert not is_keyframe_start("VP8", bytes((0x90, 0xA0, 0x80, 0x01, 0x40, 0x51, 0x2A)))
    assert is_keyframe_start("VP8", bytes((0x10, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A)))
    assert not is_keyframe_start("VP8", bytes((0x10, 0x31, 0x02, 0x00)))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(bytes((0x65, 0x88, 0x84, 0x00)), True, id="IDR"),
        pytest.param(bytes((0x25, 0x88)), True, id="IDR-nri1"),
        pytest.param(bytes((0x67, 0x42, 0x00, 0x1F)), True, id="SPS"),
        pytest.param(bytes((0x68, 0xCE, 0x3C, 0x80)), False, id="PPS"),
        pytest.param(bytes((0x41, 0x9A, 0x02)), False, id="non-IDR"),
        pytest.param(bytes((0x61, 0x9A)), False, id="non-IDR-nri3"),
        pytest.param(bytes((0x06, 0x05, 0xFF)), False, id="SEI"),
        pytest.param(
            bytes((0x78, 0x00, 0x04, 0x67, 0x42, 0x00, 0x1F, 0x00, 0x03, 0x68, 0xCE, 0x3C)),
            True,
            id="STAP-A-SPS-PPS",
        ),
        pytest.param(
            bytes((0x78, 0x00, 0x02, 0x68, 0xCE, 0x00, 0x03, 0x65, 0x88, 0x84)),
            True,
            id="STAP-A-PPS-IDR",
        ),
        pytest.param(
            bytes((0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x41, 0x9A)),
            False,
            id="STAP-A-SEI-nonIDR",
        ),
        # A size field covering bytes that look like an IDR header must be skipped.
        pytest.param(bytes((0x78, 0x00, 0x03, 0x41, 0x65, 0x65)), False, id="STAP-A-skip"),
        pytest.param(bytes((0x78, 0x00)), False, id="STAP-A-truncated"),
        pytest.param(bytes((0x78, 0x00, 0x09, 0x41)), False, id="STAP-A-oversize"),
        pytest.param(bytes((0x7C, 0x85, 0x88, 0x84)), True, id="FU-A-IDR-start"),
        pytest.param(bytes((0x7C, 0x87, 0x42)), True, id="FU-A-SPS-start"),
        pytest.param(bytes((0x7C, 0x05, 0x88)), False, id="FU-A-IDR-middle"),
        pytest.param(bytes((0x7C, 0x45, 0x88)), False, id="FU-A-IDR-end"),
        pytest.param(bytes((0x7C, 0x81, 0x9A)), False, id="FU-A-nonIDR-start"),
        pytest.param(bytes((0x7C,)), False, id="FU-A-truncated"),
        pytest.param(b"", False, id="empty"),
    ],
)
def test_h264_keyframe_start(payload: bytes, expected: bool) -> None:
    assert is_keyframe_start("H264", payload) is expected


@pytest.mark.parametrize("codec", ["opus", "G722", "PCMU", "PCMA"])
def test_audio_every_packet_is_a_keyframe_start(codec: str) -> None:
    rng = random.Random(codec)
    for _ in range(50):
        payload = rng.randbytes(rng.randrange(1, 200))
        assert is_keyframe_start(codec, payload) is True


def test_h264_track_waits_for_idr() -> None:
    track = make_track("H264", video=True, ext_ids=InboundExtIds())
    o = add_output(track, params(mid_ext_id=0, audio_level_ext_id=0, abs_send_time_ext_id=0))
    assert track.route(rtp(1, payload=bytes((0x41, 0x9A))), 0.0) == ([], False)
    out, keyframe = track.route(rtp(2, payload=bytes((0x7C, 0x85, 0x88))), 0.0)
    assert keyframe is True
    assert only(out, o)[12:] == bytes((0x7C, 0x85, 0x88))


# --- retransmission, RTX -----------------------------------------------------------


def _send(track: ForwardingTrack, o: OutputStream, n: int, first_seq: int = 1) -> list[bytes]:
    return [
        only(track.route(rtp(first_seq + k, 90 * k, payload=bytes((k & 0xFF,)) * 20), 0.0)[0], o)
        for k in range(n)
    ]


def test_retransmission_without_rtx_is_the_identical_packet() -> None:
    track = audio_track()
    o = add_output(track, next_seq=300)
    sent = _send(track, o, 10)
    for pkt in sent:
        assert o.retransmission(seq_of(pkt)) == pkt
    assert o.rtx_sent == 0


def test_retransmission_unknown_seq_is_none() -> None:
    track = audio_track()
    o = add_output(track, next_seq=300)
    _send(track, o, 10)
    assert o.retransmission(299) is None
    assert o.retransmission(310) is None
    assert o.retransmission(300 + CACHE_SIZE) is None  # same slot, different seq
    assert o.retransmission((300 - CACHE_SIZE) & 0xFFFF) is None


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_retransmission_cache_holds_the_last_512_video_64_audio_packets(kind: str) -> None:
    assert (CACHE_SIZE, AUDIO_CACHE_SIZE) == (512, 64)
    track, slots = (audio_track(), AUDIO_CACHE_SIZE) if kind == "audio" else (vp8_track(), 512)
    o = add_output(track, next_seq=0xFFF0)  # cache slots across the output wrap
    o.waiting_keyframe = False  # (video) forward from any packet
    sent = _send(track, o, slots + 1)
    first = seq_of(sent[0])
    assert o.retransmission(first) is None  # evicted by the 513th
    assert o.retransmission(seq_of(sent[1])) == sent[1]
    assert o.retransmission(seq_of(sent[-1])) == sent[-1]
    assert o.retransmission((seq_of(sent[-1]) + 1) & 0xFFFF) is None


def test_retransmission_rtx_wrapping() -> None:
    track = vp8_track()
    o = add_output(track, params(rtx_ssrc=SUB_RTX_SSRC, rtx_payload_type=SUB_RTX_PT))
    o._rtx_seq = 0xFFFE  # the (random) first RTX sequence number, pinned to see it wrap
    payloads = [vp8(True), vp8(False), vp8(False, start=False)]
    sent = [
        only(track.route(rtp(50 + k, 9000, payload=pl, marker=k == 2), 5.0)[0], o)
        for k, pl in enumerate(payloads)
    ]
    rtx_seqs = []
    for k in (2, 0, 1):
        orig = sent[k]
        rtx = o.retransmission(seq_of(orig))
        assert rtx is not None
        p = parse_sub(rtx)
        q = parse_sub(orig)
        assert p.ssrc == SUB_RTX_SSRC
        assert p.payload_type == SUB_RTX_PT
        assert p.timestamp == q.timestamp
        assert p.marker == q.marker
        assert p.payload[:2] == struct.pack("!H", seq_of(orig))  # OSN
        assert p.payload[2:] == payloads[k]
        assert p.extensions.mid == SUB_MID
        rtx_seqs.append(p.sequence_number)
        # unwrap_rtx gives back exactly what the subscriber got the first time.
        assert unwrap_rtx(rtx, SUB_SSRC, SUB_PT) == orig
    assert rtx_seqs == [0xFFFE, 0xFFFF, 0]  # RTX has its own incrementing sequence
    assert o.rtx_sent == 3
    assert o.retransmission(0x1234) is None
    assert o.rtx_sent == 3


def test_rtx_of_padded_packet_drops_padding() -> None:
    track = audio_track()
    o = add_output(track, params(rtx_ssrc=SUB_RTX_SSRC, rtx_payload_type=SUB_RTX_PT))
    orig = only(track.route(rtp(1, payload=b"\x01\x02\x03", padding=5), 0.0)[0], o)
    rtx = o.retransmission(seq_of(orig))
    assert rtx is not None
    assert not rtx[0] & 0x20
    p = parse_sub(rtx)
    assert p.padding_size == 0
    assert p.payload == struct.pack("!H", seq_of(orig)) + b"\x01\x02\x03"
    unwrapped = unwrap_rtx(rtx, SUB_SSRC, SUB_PT)
    assert unwrapped is not None
    back = parse_sub(unwrapped)
    assert back.payload == b"\x01\x02\x03"
    assert back.sequence_number == seq_of(orig)


def test_retransmission_never_exceeds_max_packet_bytes() -> None:
    track = audio_track()
    o = add_output(
        track,
        params(
            mid_ext_id=0,
            audio_level_ext_id=0,
            abs_send_time_ext_id=0,
            rtx_ssrc=SUB_RTX_SSRC,
            rtx_payload_type=SUB_RTX_PT,
        ),
    )
    size = MAX_PACKET_BYTES - 12 - 2  # room for exactly the 2-byte OSN
    orig = only(track.route(rtp(1, payload=b"\x00" * size), 0.0)[0], o)
    rtx = o.retransmission(seq_of(orig))
    assert rtx is not None and len(rtx) == MAX_PACKET_BYTES
    size = MAX_PACKET_BYTES - 12
    orig = only(track.route(rtp(2, payload=b"\x00" * size), 0.0)[0], o)
    assert len(orig) == MAX_PACKET_BYTES
    rtx = o.retransmission(seq_of(orig))
    assert rtx is None or len(rtx) <= MAX_PACKET_BYTES


# --- unwrap_rtx ----------------------------------------------------------------------


def test_unwrap_rtx_restores_original() -> None:
    ext = ext_block([(1, b"0"), (3, b"\x01\x02\x03")])
    rtx = rtp(
        777,
        0xDEADBEEF,
        pt=97,
        ssrc=0x99999999,
        marker=True,
        ext=ext,
        csrcs=(5,),
        payload=struct.pack("!H", 0xFFFE) + b"media",
    )
    orig = unwrap_rtx(rtx, ssrc=0x11111111, payload_type=96)
    assert orig == rtp(
        0xFFFE,
        0xDEADBEEF,
        pt=96,
        ssrc=0x11111111,
        marker=True,
        ext=ext,
        csrcs=(5,),
        payload=b"media",
    )
    p = RtpPacket.parse(orig)
    assert (p.sequence_number, p.ssrc, p.payload_type, p.marker) == (0xFFFE, 0x11111111, 96, 1)


def test_unwrap_rtx_strips_padding() -> None:
    rtx = rtp(1, 5, pt=97, payload=b"\x00\x10abc", padding=3)
    orig = unwrap_rtx(rtx, ssrc=7, payload_type=96)
    assert orig == rtp(16, 5, pt=96, ssrc=7, payload=b"abc")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(rtp(1, pt=97, payload=b"")[:11], id="short"),
        pytest.param(rtp(1, pt=97, payload=b""), id="no-osn"),
        pytest.param(rtp(1, pt=97, payload=b"\x01"), id="one-byte"),
        pytest.param(rtp(1, pt=97, payload=b"", padding=200), id="padding-only"),
        pytest.param(rtp(1, pt=97, payload=b"\x00", padding=4), id="padding-one-byte"),
        pytest.param(rtp(1, csrcs=(1, 2), payload=b"")[:16], id="csrc-truncated"),
    ],
)
def test_unwrap_rtx_rejects_malformed_and_padding_probes(data: bytes) -> None:
    assert unwrap_rtx(data, 1, 96) is None


def test_unwrap_rtx_roundtrip_through_aiortc() -> None:
    m = ext_map(mid=1)
    original = RtpPacket(payload_type=100, marker=1, sequence_number=4321, timestamp=99, ssrc=55)
    original.extensions.mid = "v"
    original.payload = b"\x90\x80\x05" + b"x" * 30
    rtx = RtpPacket(payload_type=101, marker=1, sequence_number=17, timestamp=99, ssrc=66)
    rtx.extensions.mid = "v"
    rtx.payload = struct.pack("!H", 4321) + original.payload
    assert unwrap_rtx(rtx.serialize(m), 55, 100) == original.serialize(m)


# --- robustness and size limits ------------------------------------------------------


def test_route_raises_value_error_on_truncated_packets() -> None:
    track = audio_track()
    add_output(track)
    full = rtp(1, 2, csrcs=(1, 2), ext=pub_ext(), payload=b"pl")
    header_len = rtp_payload_offset(full)
    for n in range(len(full) + 1):
        if n < header_len:
            with pytest.raises(ValueError):
                track.route(full[:n], 0.0)
        else:
            track.route(full[:n], 0.0)
    for data in (b"", b"\x80", bytes((0x8F,)) + bytes(20), bytes((0x90,)) + bytes(13)):
        with pytest.raises(ValueError):
            track.route(data, 0.0)


@pytest.mark.parametrize("video", [False, True])
def test_route_only_raises_value_error_on_random_bytes(video: bool) -> None:
    rng = random.Random(1234 + video)
    track = make_track("VP8" if video else "opus", video=video, ext_ids=PUB_EXT_IDS)
    o = add_output(track)
    o.waiting_keyframe = False
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 80))
        try:
            out, _ = track.route(data, 1.0)
        except ValueError:
            continue
        for _, pkt in out:
            assert len(pkt) <= MAX_PACKET_BYTES
            assert pkt[1] & 0x7F == SUB_PT


def test_packet_too_large_with_extensions_is_sent_without_them() -> None:
    track = audio_track()
    o = add_output(track)
    payload = bytes(range(256)) * 6
    payload = payload[: MAX_PACKET_BYTES - 12]
    # The publisher's packet carries extensions: it is bigger than the limit itself.
    data = rtp(1, 1, ext=pub_ext(), payload=payload, marker=True)
    pkt = only(track.route(data, 0.0)[0], o)
    first_seq = seq_of(pkt)
    assert len(pkt) == MAX_PACKET_BYTES
    assert pkt[0] == 0x80  # no X bit
    assert pkt[1] == 0x80 | SUB_PT
    assert pkt[12:] == payload
    assert parse_sub(pkt).extensions.mid is None
    # A smaller one still gets its extensions.
    pkt = only(track.route(rtp(2, 1, ext=pub_ext(), payload=payload[:-20]), 0.0)[0], o)
    assert out_exts(pkt)[SUB_MID_ID] == SUB_MID.encode()
    assert len(pkt) <= MAX_PACKET_BYTES
    # Sequence numbering carries on either way, and both are cached for NACKs.
    assert seq_of(pkt) == (first_seq + 1) & 0xFFFF
    assert o.retransmission(first_seq) is not None
    assert o.retransmission(seq_of(pkt)) == pkt


def test_packet_whose_payload_alone_is_too_large_is_not_sent() -> None:
    track = audio_track()
    o = add_output(track, params(mid_ext_id=0, audio_level_ext_id=0, abs_send_time_ext_id=0))
    out, _ = track.route(rtp(1, payload=b"\x00" * (MAX_PACKET_BYTES - 11)), 0.0)
    assert out == []
    out, _ = track.route(rtp(2, payload=b"\x00" * (MAX_PACKET_BYTES - 12)), 0.0)
    assert len(only(out, o)) == MAX_PACKET_BYTES
