"""Unit tests for mediaserver.sfu.rtcp (pure, no IO)."""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from mediaserver.sfu import rtcp
from mediaserver.sfu.rtcp import (
    Bye,
    Fir,
    Nack,
    Other,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    SenderReport,
    build_bye,
    build_fir,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sdes_cname,
    build_sr,
    ntp_middle32,
    ntp_now,
    ntp_to_unix,
    parse_rtcp,
)
from mediaserver.sfu.rtcp_state import (
    InboundStreamStats,
    KeyframeRequestThrottle,
    NackTracker,
    RembAggregator,
    SenderReportClock,
)

BLOCK_A = ReportBlock(
    ssrc=0x11223344,
    fraction_lost=25,
    packets_lost=-7,
    highest_seq=0x0001FFFF,
    jitter=123,
    lsr=0xDEADBEEF,
    dlsr=65536,
)
BLOCK_B = ReportBlock(
    ssrc=0xFFFFFFFF,
    fraction_lost=255,
    packets_lost=(1 << 23) - 1,
    highest_seq=0xFFFFFFFF,
    jitter=0,
    lsr=0,
    dlsr=0,
)


def _all_builders() -> list[bytes]:
    return [
        build_rr(1, []),
        build_rr(2, [BLOCK_A, BLOCK_B]),
        build_sr(3, ntp_now(1_700_000_000.5), 90000, 10, 1000),
        build_sr(4, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0, [BLOCK_A]),
        build_sdes_cname(5, "x"),
        build_sdes_cname(5, "abcdefgh-1234"),
        build_nack(6, 7, [100, 101, 117, 200]),
        build_pli(8, 9),
        build_fir(10, 11, 200),
        build_remb(12, 2_500_000, [13, 14]),
        build_bye([15, 16, 17]),
    ]


# --------------------------------------------------------------------------- round trips


def test_rr_round_trip() -> None:
    assert parse_rtcp(build_rr(0xCAFE, [])) == [ReceiverReport(0xCAFE, ())]
    assert parse_rtcp(build_rr(0xCAFE, [BLOCK_A, BLOCK_B])) == [
        ReceiverReport(0xCAFE, (BLOCK_A, BLOCK_B))
    ]


def test_rr_limits() -> None:
    data = build_rr(1, [BLOCK_A] * 31)
    assert len(data) == 8 + 31 * 24
    item = parse_rtcp(data)[0]
    assert isinstance(item, ReceiverReport) and len(item.reports) == 31
    with pytest.raises(ValueError):
        build_rr(1, [BLOCK_A] * 32)


def test_packets_lost_clamped_to_signed_24_bit() -> None:
    low = ReportBlock(1, 0, -(10**9), 0, 0, 0, 0)
    high = ReportBlock(1, 0, 10**9, 0, 0, 0, 0)
    item = parse_rtcp(build_rr(9, [low, high]))[0]
    assert isinstance(item, ReceiverReport)
    assert [r.packets_lost for r in item.reports] == [-(1 << 23), (1 << 23) - 1]


def test_sr_round_trip() -> None:
    ntp = ntp_now(1_700_000_000.25)
    data = build_sr(0xABCDEF01, ntp, 0xFFFFFFF0, 1234, 567890, [BLOCK_B])
    assert len(data) % 4 == 0 and len(data) == 28 + 24
    assert parse_rtcp(data) == [SenderReport(0xABCDEF01, ntp, 0xFFFFFFF0, 1234, 567890, (BLOCK_B,))]
    assert parse_rtcp(build_sr(1, 2, 3, 4, 5)) == [SenderReport(1, 2, 3, 4, 5, ())]


@pytest.mark.parametrize("cname", ["", "a", "ab", "abc", "abcd", "{0f7b-é}", "x" * 255])
def test_sdes_cname_alignment(cname: str) -> None:
    data = build_sdes_cname(0x1234, cname)
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == [Other(202, 1)]
    # CNAME item, followed by at least one null octet terminating the item list.
    raw = cname.encode()
    assert data[8:10] == bytes((1, len(raw)))
    assert data[10 : 10 + len(raw)] == raw
    assert data[10 + len(raw) :] and set(data[10 + len(raw) :]) == {0}
    # aiortc's SDES parser reads the item back.
    (pkt,) = RtcpPacket.parse(data)
    assert isinstance(pkt, RtcpSdesPacket)
    assert pkt.chunks[0].ssrc == 0x1234
    if raw:
        assert pkt.chunks[0].items == [(1, raw)]


def test_sdes_cname_too_long() -> None:
    with pytest.raises(ValueError):
        build_sdes_cname(1, "x" * 256)


def test_nack_round_trip_simple() -> None:
    lost = [100, 101, 117, 200, 116]
    data = build_nack(1, 2, lost)
    # 100..116 fit in one PID/BLP, 117 and 200 need new pairs.
    assert len(data) == 12 + 3 * 4
    assert parse_rtcp(data) == [Nack(1, 2, (100, 101, 116, 117, 200))]


def test_nack_wraparound_single_fci() -> None:
    data = build_nack(1, 2, [3, 0, 65535, 65534])
    assert len(data) == 16  # one PID/BLP pair
    pid, blp = struct.unpack_from("!HH", data, 12)
    assert pid == 65534
    assert blp == 0b10011  # 65535 -> bit 0, 0 -> bit 1, 3 -> bit 4
    assert parse_rtcp(data) == [Nack(1, 2, (65534, 65535, 0, 3))]


def test_nack_wraparound_many() -> None:
    lost = list(range(65500, 65536)) + list(range(0, 40, 3))
    data = build_nack(1, 2, reversed(lost))
    (item,) = parse_rtcp(data)
    assert isinstance(item, Nack)
    assert list(item.lost) == lost  # wrap-aware order, nothing lost or duplicated
    assert struct.unpack_from("!H", data, 12)[0] == 65500


def test_nack_dedup_and_masking() -> None:
    (item,) = parse_rtcp(build_nack(1, 2, [5, 5, 65536 + 6, 7]))
    assert isinstance(item, Nack)
    assert item.lost == (5, 6, 7)


def test_nack_empty_rejected() -> None:
    with pytest.raises(ValueError):
        build_nack(1, 2, [])


def test_pli_fir_round_trip() -> None:
    assert parse_rtcp(build_pli(0xAAAA, 0xBBBB)) == [Pli(0xAAAA, 0xBBBB)]
    data = build_fir(0xAAAA, 0xBBBB, 300)  # seq nr is 8 bits
    assert parse_rtcp(data) == [Fir(0xAAAA, ((0xBBBB, 300 & 0xFF),))]
    assert struct.unpack_from("!L", data, 8)[0] == 0  # header media SSRC is 0 (RFC 5104)


def test_remb_round_trip_and_encoding() -> None:
    assert parse_rtcp(build_remb(1, 300_000, [2, 3])) == [Remb(1, 300_000, (2, 3))]
    assert parse_rtcp(build_remb(1, 0, [])) == [Remb(1, 0, ())]
    # largest exact 18-bit mantissa
    data = build_remb(1, 0x3FFFF, [2])
    assert data[16:20] == b"\x01\x03\xff\xff"
    # one more needs exponent 1
    data = build_remb(1, 0x40000, [2])
    assert data[17] >> 2 == 1 and parse_rtcp(data) == [Remb(1, 0x40000, (2,))]


@pytest.mark.parametrize("bitrate", [10**9 + 7, 2**40 + 12345, (2**18 - 1) << 63, 123_456_789])
def test_remb_large_bitrates(bitrate: int) -> None:
    data = build_remb(1, bitrate, [2])
    (item,) = parse_rtcp(data)
    assert isinstance(item, Remb)
    exponent = data[17] >> 2
    assert exponent == max(bitrate.bit_length() - 18, 0)
    # truncated, never rounded up; relative error below 2**-17
    assert item.bitrate <= bitrate
    assert bitrate - item.bitrate < (1 << exponent)
    assert item.bitrate >= bitrate * (1 - 2**-17)
    # byte-identical to aiortc's encoder
    assert data[12:] == pack_remb_fci(bitrate, [2])


def test_remb_rejects_unrepresentable() -> None:
    with pytest.raises(ValueError):
        build_remb(1, -1, [])
    with pytest.raises(ValueError):
        build_remb(1, 1 << (18 + 64), [])
    with pytest.raises(ValueError):
        build_remb(1, 1000, list(range(256)))


def test_bye_round_trip() -> None:
    assert parse_rtcp(build_bye([1, 2, 0xFFFFFFFF])) == [Bye((1, 2, 0xFFFFFFFF))]
    assert parse_rtcp(build_bye([])) == [Bye(())]
    with pytest.raises(ValueError):
        build_bye(list(range(32)))


def test_all_builders_aligned_and_valid() -> None:
    for data in _all_builders():
        assert len(data) % 4 == 0
        assert data[0] >> 6 == 2 and not data[0] & 0x20  # version 2, no padding
        assert struct.unpack_from("!H", data, 2)[0] * 4 + 4 == len(data)
        assert len(parse_rtcp(data)) == 1


def test_compound_packet() -> None:
    data = (
        build_sr(1, 2, 3, 4, 5)
        + build_sdes_cname(1, "cname")
        + build_remb(1, 1_000_000, [9])
        + build_nack(1, 9, [10])
    )
    items = parse_rtcp(data)
    assert [type(i) for i in items] == [SenderReport, Other, Remb, Nack]


def test_unknown_types_become_other() -> None:
    twcc = struct.pack("!BBHLL", 0x80 | 15, 205, 3, 1, 2) + b"\x00" * 4
    app = struct.pack("!BBHL4s", 0x80 | 3, 204, 2, 1, b"name")
    psfb_afb_not_remb = struct.pack("!BBHLL4s", 0x80 | 15, 206, 3, 1, 0, b"GOOG")
    sli = struct.pack("!BBHLLL", 0x80 | 2, 206, 3, 1, 2, 0)
    assert parse_rtcp(twcc + app + psfb_afb_not_remb + sli) == [
        Other(205, 15),
        Other(204, 3),
        Other(206, 15),
        Other(206, 2),
    ]


def test_padding_is_stripped() -> None:
    payload = struct.pack("!LL", 1, 2) + b"\x00\x00\x00\x04"
    data = struct.pack("!BBH", 0xA0 | 1, 206, len(payload) // 4) + payload
    assert parse_rtcp(data) == [Pli(1, 2)]
    bad = bytearray(data)
    bad[-1] = 40  # more padding than payload
    with pytest.raises(ValueError, match="padding"):
        parse_rtcp(bytes(bad))
    bad[-1] = 0
    with pytest.raises(ValueError, match="padding"):
        parse_rtcp(bytes(bad))


# --------------------------------------------------------------------------- aiortc interop


def test_ours_parsed_by_aiortc() -> None:
    (rr,) = RtcpPacket.parse(build_rr(7, [BLOCK_A]))
    assert isinstance(rr, RtcpRrPacket) and rr.ssrc == 7
    info = rr.reports[0]
    assert (
        info.ssrc,
        info.fraction_lost,
        info.packets_lost,
        info.highest_sequence,
        info.jitter,
        info.lsr,
        info.dlsr,
    ) == (
        BLOCK_A.ssrc,
        BLOCK_A.fraction_lost,
        BLOCK_A.packets_lost,
        BLOCK_A.highest_seq,
        BLOCK_A.jitter,
        BLOCK_A.lsr,
        BLOCK_A.dlsr,
    )

    ntp = ntp_now(1_700_000_123.75)
    (sr,) = RtcpPacket.parse(build_sr(8, ntp, 1234, 56, 7890, [BLOCK_B]))
    assert isinstance(sr, RtcpSrPacket)
    assert sr.ssrc == 8
    assert sr.sender_info.ntp_timestamp == ntp
    assert sr.sender_info.rtp_timestamp == 1234
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (56, 7890)
    assert sr.reports[0].packets_lost == BLOCK_B.packets_lost

    (nack,) = RtcpPacket.parse(build_nack(1, 2, [10, 11, 30, 65535, 0]))
    assert isinstance(nack, RtcpRtpfbPacket) and nack.fmt == 1
    assert (nack.ssrc, nack.media_ssrc) == (1, 2)
    # aiortc does not wrap PID+offset, so compare modulo 2**16
    assert [s & 0xFFFF for s in nack.lost] == [65535, 0, 10, 11, 30]

    (pli,) = RtcpPacket.parse(build_pli(3, 4))
    assert isinstance(pli, RtcpPsfbPacket)
    assert (pli.fmt, pli.ssrc, pli.media_ssrc, pli.fci) == (1, 3, 4, b"")

    (fir,) = RtcpPacket.parse(build_fir(3, 4, 9))
    assert isinstance(fir, RtcpPsfbPacket) and fir.fmt == 4
    assert fir.fci == struct.pack("!LB3x", 4, 9)

    (remb,) = RtcpPacket.parse(build_remb(5, 1_234_567, [6, 7]))
    assert isinstance(remb, RtcpPsfbPacket) and remb.fmt == 15
    bitrate, ssrcs = unpack_remb_fci(remb.fci)
    assert ssrcs == [6, 7]
    assert 1_234_567 - bitrate < 1_234_567 / 2**17 and bitrate <= 1_234_567

    (bye,) = RtcpPacket.parse(build_bye([1, 2]))
    assert isinstance(bye, RtcpByePacket) and bye.sources == [1, 2]


def _aiortc_info(ssrc: int, lost: int) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(
        ssrc=ssrc,
        fraction_lost=12,
        packets_lost=lost,
        highest_sequence=70000,
        jitter=33,
        lsr=44,
        dlsr=55,
    )


def test_aiortc_parsed_by_ours() -> None:
    rr = RtcpRrPacket(ssrc=1, reports=[_aiortc_info(2, -3), _aiortc_info(3, 1000)])
    assert parse_rtcp(bytes(rr)) == [
        ReceiverReport(
            1,
            (
                ReportBlock(2, 12, -3, 70000, 33, 44, 55),
                ReportBlock(3, 12, 1000, 70000, 33, 44, 55),
            ),
        )
    ]

    sr = RtcpSrPacket(
        ssrc=9,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=0x1122334455667788,
            rtp_timestamp=99,
            packet_count=5,
            octet_count=500,
        ),
        reports=[_aiortc_info(4, 0)],
    )
    assert parse_rtcp(bytes(sr)) == [
        SenderReport(9, 0x1122334455667788, 99, 5, 500, (ReportBlock(4, 12, 0, 70000, 33, 44, 55),))
    ]

    nack = RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[5, 6, 21, 22, 40])
    assert parse_rtcp(bytes(nack)) == [Nack(1, 2, (5, 6, 21, 22, 40))]

    pli = RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2)
    assert parse_rtcp(bytes(pli)) == [Pli(1, 2)]

    fir = RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=0, fci=struct.pack("!LB3xLB3x", 7, 1, 8, 250))
    assert parse_rtcp(bytes(fir)) == [Fir(1, ((7, 1), (8, 250)))]

    remb = RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(987_654_321, [3, 4]))
    (item,) = parse_rtcp(bytes(remb))
    assert isinstance(item, Remb)
    assert item.sender_ssrc == 1 and item.ssrcs == (3, 4)
    assert item.bitrate == unpack_remb_fci(pack_remb_fci(987_654_321, [3, 4]))[0]

    sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=1, items=[(1, b"cname")])])
    bye = RtcpByePacket(sources=[1, 2])
    assert parse_rtcp(bytes(sdes) + bytes(bye)) == [Other(202, 1), Bye((1, 2))]


# --------------------------------------------------------------------------- malformed input


def test_empty_and_short_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_rtcp(b"")
    for n in range(1, 4):
        with pytest.raises(ValueError):
            parse_rtcp(b"\x80\xc9\x00"[:n])


def test_bad_version() -> None:
    data = bytearray(build_pli(1, 2))
    data[0] = (data[0] & 0x3F) | (1 << 6)
    with pytest.raises(ValueError, match="version"):
        parse_rtcp(bytes(data))


def test_every_truncation_of_every_builder_raises() -> None:
    for data in _all_builders():
        for n in range(len(data)):
            with pytest.raises(ValueError):
                parse_rtcp(data[:n])


def test_trailing_garbage_after_valid_packet() -> None:
    with pytest.raises(ValueError):
        parse_rtcp(build_pli(1, 2) + b"\x80\xc9")


def test_hand_made_inconsistent_packets() -> None:
    cases = [
        # RR claims 2 report blocks but carries 1
        struct.pack("!BBHL", 0x82, 201, 7, 1) + b"\x00" * 24,
        # SR shorter than sender info
        struct.pack("!BBHL", 0x80, 200, 1, 1),
        # RR without sender SSRC
        struct.pack("!BBH", 0x80, 201, 0),
        # BYE with SC=3 but 2 SSRCs
        struct.pack("!BBHLL", 0x83, 203, 2, 1, 2),
        # PLI without media SSRC
        struct.pack("!BBHL", 0x81, 206, 1, 1),
        # NACK without media SSRC
        struct.pack("!BBHL", 0x81, 205, 1, 1),
        # FIR with half an FCI entry
        struct.pack("!BBHLLL", 0x84, 206, 3, 1, 0, 5),
        # REMB claiming 3 SSRCs, carrying 1
        struct.pack("!BBHLL4sBBHL", 0x8F, 206, 5, 1, 0, b"REMB", 3, 0, 100, 9),
        # NACK whose padding leaves an unaligned FCI
        struct.pack("!BBHLLL", 0xA1, 205, 3, 1, 2, 0x00010002),
        # length field far past the end
        struct.pack("!BBH", 0x80, 201, 0xFFFF) + b"\x00" * 8,
    ]
    for data in cases:
        with pytest.raises(ValueError):
            parse_rtcp(data)


def test_fuzz_only_value_error() -> None:
    rng = random.Random(0xC0FFEE)
    seeds = _all_builders()
    ok = errors = 0
    for i in range(20_000):
        if i % 2:
            data = rng.randbytes(rng.randrange(0, 96))
            if data and rng.random() < 0.5:
                data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]  # force version 2
        else:
            buf = bytearray(rng.choice(seeds) + rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            if rng.random() < 0.3:
                del buf[rng.randrange(len(buf)) :]
            data = bytes(buf)
        try:
            items = parse_rtcp(data)
        except ValueError:
            errors += 1
        else:
            ok += 1
            assert isinstance(items, list) and items
    # both paths must actually have been exercised
    assert ok > 1000 and errors > 1000


# --------------------------------------------------------------------------- NTP


def test_ntp_conversions() -> None:
    assert ntp_now(0.0) == 2_208_988_800 << 32
    assert ntp_now(1.5) == ((2_208_988_800 + 1) << 32) | (1 << 31)
    t = 1_700_000_000.123456
    assert ntp_to_unix(ntp_now(t)) == pytest.approx(t, abs=1e-6)
    assert ntp_middle32(0x1122334455667788) == 0x33445566
    assert ntp_middle32(ntp_now(0.0)) == (2_208_988_800 & 0xFFFF) << 16


def test_ntp_era_rollover_2036() -> None:
    era_end = (1 << 32) - 2_208_988_800  # unix time of NTP seconds == 2**32
    ntp = ntp_now(era_end + 10.25)
    assert ntp == (10 << 32) | (1 << 30)
    assert ntp_to_unix(ntp) == pytest.approx(era_end + 10.25)
    assert ntp_to_unix(ntp_now(era_end - 10.0)) == pytest.approx(era_end - 10.0)


# --------------------------------------------------------------------------- InboundStreamStats


def _feed(stats: InboundStreamStats, seqs: list[int], start_ts: int = 0) -> None:
    # 1/32 s spacing at 48 kHz = exactly 1500 ticks: no float noise in jitter
    for i, seq in enumerate(seqs):
        stats.on_packet(seq & 0xFFFF, (start_ts + i * 1500) & 0xFFFFFFFF, 100.0 + i / 32)


def test_stats_loss_and_fraction() -> None:
    stats = InboundStreamStats(ssrc=42, clock_rate=48000)
    _feed(stats, [s for s in range(100) if s not in (10, 20, 30)])
    block = stats.report_block(now=200.0)
    assert block.ssrc == 42
    assert block.highest_seq == 99
    assert block.packets_lost == 3
    assert block.fraction_lost == (3 * 256) // 100
    assert block.jitter == 0
    assert (block.lsr, block.dlsr) == (0, 0)
    # next interval has no loss: fraction resets, cumulative stays
    for seq in range(100, 150):
        stats.on_packet(seq, seq * 1500, 100.0 + seq / 32)
    block = stats.report_block(now=201.0)
    assert block.fraction_lost == 0
    assert block.packets_lost == 3
    assert block.highest_seq == 149
    # third interval: 5 of 50 lost -> fraction over this interval only
    for seq in range(150, 200):
        if seq % 10:
            stats.on_packet(seq, seq * 1500, 100.0 + seq / 32)
    block = stats.report_block(now=202.0)
    assert block.fraction_lost == (5 * 256) // 50
    assert block.packets_lost == 8


def test_stats_reordering_and_late_arrival() -> None:
    stats = InboundStreamStats(1, 90000)
    for seq in [10, 11, 13, 12, 14, 16]:
        stats.on_packet(seq, seq * 3000, seq * 0.01)
    assert stats.extended_highest_seq == 16
    block = stats.report_block(1.0)
    assert block.packets_lost == 1  # only 15 missing
    # 15 arrives late: next interval has negative loss -> fraction 0
    stats.on_packet(15, 15 * 3000, 0.5)
    block = stats.report_block(2.0)
    assert block.packets_lost == 0
    assert block.fraction_lost == 0
    assert block.highest_seq == 16


def test_stats_late_packet_before_first_moves_base() -> None:
    stats = InboundStreamStats(1, 90000)
    stats.on_packet(10, 0, 0.0)
    stats.on_packet(8, 0, 0.01)
    assert stats.expected == 3
    assert stats.cumulative_lost == 1  # 9 missing


def test_stats_duplicates_make_loss_negative() -> None:
    stats = InboundStreamStats(1, 90000)
    for seq in [1, 2, 3, 3, 3]:
        stats.on_packet(seq, 0, 0.0)
    assert stats.report_block(1.0).packets_lost == -2


def test_stats_wraparound() -> None:
    stats = InboundStreamStats(7, 48000)
    seqs = [s & 0xFFFF for s in range(65530, 65536 + 10) if s not in (65535, 65536 + 2)]
    _feed(stats, seqs, start_ts=0xFFFFFFFF - 3000)  # RTP timestamp wraps too
    block = stats.report_block(1.0)
    assert block.highest_seq == 65536 + 9
    assert stats.expected == 16
    assert block.packets_lost == 2
    assert block.fraction_lost == (2 * 256) // 16
    # steady timing across the RTP timestamp wrap gives zero jitter
    assert block.jitter == 0


def test_stats_large_jump_resets_base() -> None:
    stats = InboundStreamStats(1, 90000)
    for seq in range(10):
        stats.on_packet(seq, seq, 0.0)
    stats.on_packet(20_000, 0, 1.0)
    block = stats.report_block(2.0)
    assert block.highest_seq == 20_000
    assert block.packets_lost == 0
    assert stats.packets_received == 1
    stats.on_packet(20_002, 0, 1.1)
    assert stats.cumulative_lost == 1
    # a jump of exactly MAX_DROPOUT is still in order
    stats.on_packet(20_002 + 3000, 0, 1.2)
    assert stats.extended_highest_seq == 23_002
    assert stats.cumulative_lost == 3000


def test_stats_jitter_rfc_a8() -> None:
    stats = InboundStreamStats(1, 48000)
    for i in range(10):
        stats.on_packet(i, i * 1500, i / 32)
    assert stats.jitter == 0
    # packet 10 arrives 1/64 s (750 ticks) late, packet 11 on time
    stats.on_packet(10, 10 * 1500, 10 / 32 + 1 / 64)
    assert stats.jitter == 750 // 16
    stats.on_packet(11, 11 * 1500, 11 / 32)
    expected = 750 / 16
    expected += (750 - expected) / 16
    assert stats.jitter == pytest.approx(expected, abs=1)
    assert stats.report_block(1.0).jitter == stats.jitter


def test_stats_jitter_ignores_same_timestamp_and_late_packets() -> None:
    stats = InboundStreamStats(1, 90000)
    # three packets per frame paced 5 ms apart, one frame every 1/32 s (~2812 ticks)
    for frame in range(5):
        for k in range(3):
            stats.on_packet(frame * 3 + k, frame * 2812, frame / 32 + k * 0.005)
    assert stats.jitter <= 1
    stats.on_packet(1, 0, 10.0)  # very late retransmission of an old packet
    assert stats.jitter <= 1


def test_stats_lsr_dlsr() -> None:
    stats = InboundStreamStats(1, 90000)
    stats.on_packet(1, 0, 0.0)
    ntp = 0x1122334455667788
    stats.on_sender_report(ntp, arrival=10.0)
    block = stats.report_block(now=10.5)
    assert block.lsr == 0x33445566
    assert block.dlsr == 32768


def test_stats_empty_report() -> None:
    block = InboundStreamStats(5, 90000).report_block(0.0)
    assert block == ReportBlock(5, 0, 0, 0, 0, 0, 0)


# --------------------------------------------------------------------------- NackTracker


def test_nack_immediate_on_gap_and_late_removal() -> None:
    t = NackTracker()
    assert t.on_packet(1, 0.0) == []
    assert t.on_packet(2, 0.0) == []
    assert t.on_packet(6, 0.01) == [3, 4, 5]
    assert list(t.missing) == [3, 4, 5]
    assert t.on_packet(4, 0.02) == []  # late / retransmitted
    assert list(t.missing) == [3, 5]
    assert t.on_packet(4, 0.03) == []  # duplicate: harmless
    assert t.on_packet(6, 0.03) == []
    assert list(t.missing) == [3, 5]


def test_nack_retries() -> None:
    t = NackTracker(retry_interval=0.25, max_retries=3, max_age=10.0)
    t.on_packet(10, 0.0)
    assert t.on_packet(12, 0.0) == [11]  # NACK #1
    assert t.due(0.125) == []
    assert t.due(0.25) == [11]  # NACK #2
    assert t.due(0.375) == []
    assert t.due(0.5) == [11]  # NACK #3
    assert list(t.missing) == [11]
    assert t.due(0.75) == []  # out of retries: forgotten
    assert not t.missing


def test_nack_max_age() -> None:
    t = NackTracker(retry_interval=0.1, max_retries=100, max_age=1.0)
    t.on_packet(0, 0.0)
    t.on_packet(2, 0.0)
    t.on_packet(4, 0.5)
    assert t.due(0.75) == [1, 3]
    assert t.due(1.0) == [3]  # 1 is 1.0 s old: forgotten
    assert list(t.missing) == [3]
    assert t.due(1.5) == []  # 3 is 1.0 s old: forgotten
    assert not t.missing


def test_nack_wraparound() -> None:
    t = NackTracker()
    t.on_packet(65533, 0.0)
    assert t.on_packet(2, 0.0) == [65534, 65535, 0, 1]
    assert t.on_packet(65535, 0.01) == []
    assert list(t.missing) == [65534, 0, 1]
    assert t.due(0.2) == [65534, 0, 1]


def test_nack_huge_gap_is_restart() -> None:
    t = NackTracker()
    t.on_packet(1, 0.0)
    t.on_packet(3, 0.0)
    assert list(t.missing) == [2]
    assert t.on_packet(1000, 0.01) == []  # gap 996 > 500
    assert not t.missing
    assert t.on_packet(1002, 0.02) == [1001]
    # exactly max_gap is still a gap
    assert len(t.on_packet(1502, 0.03)) == 499


def test_nack_backward_restart_needs_confirmation() -> None:
    t = NackTracker()
    t.on_packet(30_000, 0.0)
    assert t.on_packet(100, 0.0) == []  # stray old packet: ignored
    assert t.on_packet(30_002, 0.0) == [30_001]
    assert t.on_packet(200, 0.0) == []
    assert t.on_packet(201, 0.0) == []  # confirmed: restart at 201
    assert not t.missing
    assert t.on_packet(203, 0.0) == [202]


def test_nack_missing_capped() -> None:
    t = NackTracker(max_missing=10, max_gap=500)
    t.on_packet(0, 0.0)
    assert t.on_packet(21, 0.0) == list(range(11, 21))  # only the newest 10
    assert t.on_packet(25, 0.0) == [22, 23, 24]
    assert list(t.missing) == [*range(14, 21), 22, 23, 24]
    default = NackTracker()
    default.on_packet(0, 0.0)
    for base in range(0, 2000, 400):
        default.on_packet(base + 400, 0.0)
    assert len(default.missing) == 500


# --------------------------------------------------------------------------- throttle


def test_keyframe_throttle() -> None:
    k = KeyframeRequestThrottle(min_interval=0.25)
    assert k.should_send(5.0)
    assert not k.should_send(5.125)
    assert not k.should_send(5.2)
    assert k.should_send(5.25)
    assert not k.should_send(5.375)
    assert k.should_send(10.0)


def test_fir_sequence_wraps() -> None:
    k = KeyframeRequestThrottle()
    seqs = [k.next_fir_seq() for _ in range(258)]
    assert seqs[:3] == [0, 1, 2]
    assert seqs[255:] == [255, 0, 1]


# --------------------------------------------------------------------------- REMB aggregation


def test_remb_aggregator_min_and_expiry() -> None:
    agg = RembAggregator(max_age=5.0)
    assert agg.minimum(0.0) is None
    agg.update("a", 1_000_000, 0.0)
    agg.update("b", 500_000, 1.0)
    agg.update("c", 2_000_000, 3.0)
    assert agg.minimum(2.0) == 500_000
    assert agg.minimum(5.5) == 500_000  # a expired, b still fresh
    assert agg.minimum(6.0) == 2_000_000  # b is 5.0 s old: expired
    agg.update("b", 100, 6.5)
    assert agg.minimum(7.0) == 100
    agg.remove("b")
    agg.remove("nobody")
    assert agg.minimum(7.0) == 2_000_000
    assert agg.minimum(9.0) is None


# --------------------------------------------------------------------------- SR clock


def test_sr_clock_arithmetic() -> None:
    clock = SenderReportClock()
    assert not clock.has_reference
    with pytest.raises(RuntimeError):
        clock.rtp_at(0.0, 90000)
    ntp = ntp_now(1_700_000_000.0)
    clock.on_sender_report(ntp, 1000, arrival=10.0)
    assert clock.has_reference
    assert clock.rtp_at(10.0, 90000) == 1000
    assert clock.rtp_at(10.5, 90000) == 1000 + 45000
    assert clock.rtp_at(10.5, 48000) == 1000 + 24000
    assert clock.ntp_at(10.5) == ntp + (1 << 31)
    assert ntp_to_unix(clock.ntp_at(12.25)) == pytest.approx(1_700_000_002.25)
    assert clock.rtp_at(9.0, 1000) == 0  # before the SR arrival


def test_sr_clock_wraps() -> None:
    clock = SenderReportClock()
    clock.on_sender_report((1 << 64) - (1 << 31), 0xFFFFFFFF - 1000, arrival=0.0)
    assert clock.rtp_at(0.5, 90000) == 44_000 - 1
    assert clock.ntp_at(1.0) == 1 << 31
    clock.on_sender_report(0, 10, arrival=5.0)
    assert clock.rtp_at(4.0, 90000) == (10 - 90000) % 2**32


def test_sr_clock_keeps_audio_video_consistent() -> None:
    clock = SenderReportClock()
    clock.on_sender_report(ntp_now(1000.0), 123_456, arrival=50.0)
    for now in (50.0, 51.3, 77.7):
        ntp_elapsed = (clock.ntp_at(now) - ntp_now(1000.0)) / 2**32
        rtp_elapsed = ((clock.rtp_at(now, 48000) - 123_456) % 2**32) / 48000
        assert ntp_elapsed == pytest.approx(now - 50.0, abs=1e-6)
        assert rtp_elapsed == pytest.approx(now - 50.0, abs=1 / 48000)


def test_parse_only_feedback_skips_reports_but_still_checks_framing() -> None:
    rr = rtcp.build_rr(1, [rtcp.ReportBlock(2, 0, 0, 100, 0, 0, 0)])
    sr = rtcp.build_sr(3, 1 << 40, 90_000, 10, 1_000)
    nack = rtcp.build_nack(1, 2, [5, 7])
    remb = rtcp.build_remb(1, 300_000, [2])
    items = rtcp.parse_rtcp(sr + rr + nack + remb + rtcp.build_sdes_cname(3, "x"), rtcp.FEEDBACK)
    assert [type(i).__name__ for i in items] == ["Nack", "Remb"]
    assert rtcp.parse_rtcp(rr, rtcp.FEEDBACK) == []
    with pytest.raises(ValueError):  # a truncated report is still an error
        rtcp.parse_rtcp(rr[:-4] + nack, rtcp.FEEDBACK)
