"""H264 for recordings (pure): the SPS's picture size, the avcC record, and access units
from single NAL, STAP-A and FU-A packets, dropped after a loss until the next IDR."""

from __future__ import annotations

import fractions
import struct

import av
import numpy as np

from mediaserver.h264 import sps_size
from mediaserver.recording.h264 import H264Assembler, avcc_record


def encoded_nals(width: int, height: int, frames: int) -> list[list[bytes]]:
    """Access units as NAL lists (encoded here, in the test), IDR every 10 frames."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    enc.gop_size = 10
    enc.options = {"tune": "zerolatency", "annexb": "1", "sc_threshold": "0"}
    units = []
    for i in range(frames):
        rgb = np.full((height, width, 3), (i * 9) % 255, np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for packet in enc.encode(frame):
            data = bytes(packet).replace(b"\x00\x00\x00\x01", b"\x00\x00\x01")
            units.append([n for n in data.split(b"\x00\x00\x01") if n])
    return units


def packets(nals: list[bytes], mtu: int = 300) -> list[tuple[bytes, bool]]:
    """RFC 6184 mode 1: small NALs in a STAP-A, big ones in FU-A; marker on the last."""
    out: list[bytes] = []
    small = [n for n in nals if len(n) < 100]
    if small:
        out.append(b"\x18" + b"".join(struct.pack(">H", len(n)) + n for n in small))
    for nal in (n for n in nals if len(n) >= 100):
        body = nal[1:]
        chunks = [body[i : i + mtu] for i in range(0, len(body), mtu)]
        for i, chunk in enumerate(chunks):
            header = (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
            out.append(bytes([(nal[0] & 0xE0) | 28, header | (nal[0] & 0x1F)]) + chunk)
    return [(p, i == len(out) - 1) for i, p in enumerate(out)]


def test_sps_size_with_cropping_and_avcc() -> None:
    units = encoded_nals(170, 98, 1)
    sps = next(n for n in units[0] if n[0] & 0x1F == 7)
    pps = next(n for n in units[0] if n[0] & 0x1F == 8)
    assert sps_size(sps) == (170, 98)
    record = avcc_record(sps, pps)
    assert record[:2] == b"\x01" + sps[1:2] and record[5] == 0xE1 and record.endswith(pps)


def test_access_units_from_stap_a_and_fu_a_and_loss_until_the_next_idr() -> None:
    units = encoded_nals(160, 120, 25)
    asm = H264Assembler()
    got = []
    for n, nals in enumerate(units):
        pkts = packets(nals)
        for i, (payload, marker) in enumerate(pkts):
            if n == 3:
                continue  # unit 3 is lost
            frame = asm.push(n * 3000, payload, marker, gap=(n == 4 and i == 0))
            if frame is not None:
                got.append((n, frame.keyframe))
    assert got[0] == (0, True)
    received = [n for n, _ in got]
    assert received[:3] == [0, 1, 2]
    assert 3 not in received and 4 not in received  # dropped until the IDR of unit 10
    assert received[3] == 10 and dict(got)[10] is True
    assert received[3:] == list(range(10, 25))
    # the frames are AVCC: 4-byte lengths that add up
    asm2 = H264Assembler()
    for payload, marker in packets(units[0]):
        frame = asm2.push(0, payload, marker, gap=False)
    assert frame is not None
    pos, count = 0, 0
    while pos < len(frame.data):
        (size,) = struct.unpack_from(">I", frame.data, pos)
        pos += 4 + size
        count += 1
    assert pos == len(frame.data) and count == len(units[0])
