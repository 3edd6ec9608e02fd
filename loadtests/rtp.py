"""Cheap benchmark media: RTP pumps that never encode and counters that never decode.

A publisher peer has one sendonly transceiver per kind with an idle track (aiortc then
never encodes); once connected, :class:`RtpPump` writes RTP straight to its DTLS
transport at realistic rates: Opus-sized audio at 50 packets/s, and VP8-shaped video at
~1 Mbit/s (~100 packets/s, 25 frames/s) with a keyframe burst every 2 s or when the
server asks (PLI/FIR). Every payload carries a magic, the send time and a sequence
number, so a subscriber (:class:`RtpCounter`) can measure added latency without
decoding; it counts packets and loss from the clear RTP header of the SRTP packets and
decrypts only a sample of them for the latency (see the class).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

from mediaserver.sfu import rtcp
from mediaserver.sfu.forwarder import rtp_payload_offset
from mediaserver.sfu.negotiation import negotiated_tracks, parse_sdp
from mediaserver.sfu.peer import IdleTrack, make_configuration

__all__ = ["RtpCounter", "RtpPump", "StreamStats", "publisher_pc"]

MAGIC = b"MSBT"
_stamp = struct.Struct("!4sQI")  # magic, send time (ns), sequence
_hdr = struct.Struct("!BBHII")
AUDIO_BYTES = 120
VIDEO_PACKET_BYTES = 1150
VIDEO_PACKETS_PER_FRAME = 4  # 25 fps x 4 = 100 packets/s, ~0.95 Mbit/s
KEYFRAME_PACKETS = 16
KEYFRAME_INTERVAL = 2.0


def publisher_pc(
    ice_servers: list[dict[str, Any]] | None = None, *, video: bool = True
) -> RTCPeerConnection:
    pc = RTCPeerConnection(make_configuration(ice_servers or []))
    pc.addTransceiver(IdleTrack("audio"), direction="sendonly")
    if video:
        pc.addTransceiver(IdleTrack("video"), direction="sendonly")
    return pc


def _vp8_payload(first: bool, keyframe: bool, size: int, seq: int) -> bytes:
    if first:
        descriptor = b"\x10"  # S=1, partition 0
        if keyframe:  # P=0, show_frame, start code, 640x360
            header = b"\x10\x00\x00\x9d\x01\x2a\x80\x02\x68\x01"
        else:
            header = b"\x11\x00\x00"
    else:
        descriptor = b"\x00"
        header = b""
    stamp = _stamp.pack(MAGIC, time.time_ns(), seq)
    pad = size - len(descriptor) - len(header) - len(stamp)
    return descriptor + header + stamp + b"\x00" * max(0, pad)


class RtpPump:
    """Sends RTP on a connected publisher peer connection."""

    def __init__(self, pc: RTCPeerConnection, *, audio: bool = True, video: bool = True) -> None:
        self.pc = pc
        self.audio = audio
        self.video = video
        self.sent = 0
        self._keyframe_wanted = True
        self._tasks: list[asyncio.Task[None]] = []
        local = pc.localDescription
        remote = pc.remoteDescription
        assert local is not None and remote is not None, "negotiate first"
        offer, answer = (local, remote) if local.type == "offer" else (remote, local)
        tracks = negotiated_tracks(parse_sdp(answer.sdp, "answer"), parse_sdp(offer.sdp, "offer"))
        self.streams = {t.kind: t for t in tracks}
        dtls = pc.getTransceivers()[0].sender.transport
        self._dtls = dtls
        original = dtls._handle_rtcp_data

        async def on_rtcp(data: bytes) -> None:
            try:
                items = rtcp.parse_rtcp(data)
            except ValueError:
                return
            if any(isinstance(i, (rtcp.Pli, rtcp.Fir)) for i in items):
                self._keyframe_wanted = True

        dtls._handle_rtcp_data = on_rtcp
        self._original_rtcp = original

    async def _send(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await self._dtls._send_rtp(data)
            self.sent += 1

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.audio and "audio" in self.streams:
            self._tasks.append(loop.create_task(self._audio_loop()))
        if self.video and "video" in self.streams:
            self._tasks.append(loop.create_task(self._video_loop()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _audio_loop(self) -> None:
        s = self.streams["audio"]
        seq, ts, n = 1000, 5000, 0
        start = time.monotonic()
        while True:
            payload = _stamp.pack(MAGIC, time.time_ns(), n) + b"\x00" * (AUDIO_BYTES - 16)
            await self._send(_hdr.pack(0x80, s.payload_type, seq, ts, s.ssrc) + payload)
            seq = (seq + 1) & 0xFFFF
            ts = (ts + 960) & 0xFFFFFFFF
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))

    async def _video_loop(self) -> None:
        s = self.streams["video"]
        seq, ts, frame, n = 2000, 9000, 0, 0
        start = time.monotonic()
        last_key = -KEYFRAME_INTERVAL
        while True:
            now = time.monotonic()
            keyframe = self._keyframe_wanted or now - last_key >= KEYFRAME_INTERVAL
            if keyframe:
                self._keyframe_wanted = False
                last_key = now
            count = KEYFRAME_PACKETS if keyframe else VIDEO_PACKETS_PER_FRAME
            for i in range(count):
                marker = 0x80 if i == count - 1 else 0
                payload = _vp8_payload(i == 0, keyframe, VIDEO_PACKET_BYTES, n)
                await self._send(
                    _hdr.pack(0x80, marker | s.payload_type, seq, ts, s.ssrc) + payload
                )
                seq = (seq + 1) & 0xFFFF
                n += 1
            ts = (ts + 3600) & 0xFFFFFFFF
            frame += 1
            await asyncio.sleep(max(0.0, start + frame * 0.04 - time.monotonic()))


@dataclass
class StreamStats:
    received: int = 0
    first_seq: int | None = None  # extended RTP sequence numbers (clear header)
    max_seq: int = -1
    last_seq: int = -1  # the last 16-bit sequence number seen, and its wrap count
    cycles: int = 0
    latencies_us: list[int] = field(default_factory=list)
    #: the same samples to when the bots' event loop read them (their own delays too)
    read_latencies_us: list[int] = field(default_factory=list)


#: The bots' receive buffer per socket (root: SO_RCVBUFFORCE, past net.core.rmem_max):
#: a bot process that stalls for a moment (the machine's other work) then delays
#: packets instead of dropping them, so the loss figure is the server's.
BOT_RCVBUF = 4 << 20


def enlarge_receive_buffer(proto: Any) -> None:
    transport = getattr(proto, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, BOT_RCVBUF)
                return


#: The kernel's receive time of a socket's last datagram (ioctl SIOCGSTAMPNS, struct
#: timespec; Python does not name it). Its first call turns receive timestamps on. Not
#: SO_TIMESTAMPNS: with that option the kernel hands the time over as a control
#: message and stops updating what the ioctl reads.
SIOCGSTAMPNS = 0x8907
_timespec = struct.Struct("@qq")
_TIMESPEC_BUFFER = bytes(_timespec.size)


def timestamped_fd(proto: Any) -> int:
    """Turn on kernel receive timestamps for ``proto``'s socket; its fd (-1: none)."""
    transport = getattr(proto, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return -1
    fd = int(sock.fileno())
    kernel_receive_ns(fd)  # ENOENT now (nothing stamped yet); stamps from here on
    return fd


def kernel_receive_ns(fd: int) -> int | None:
    """When the kernel received the last datagram read from ``fd`` (None: unknown)."""
    try:
        sec, nsec = _timespec.unpack(fcntl.ioctl(fd, SIOCGSTAMPNS, _TIMESPEC_BUFFER))
    except OSError:
        return None
    return sec * 1_000_000_000 + nsec


_seq_ssrc = struct.Struct("!2xH4xI")
_NOT_OURS = -(1 << 62)


class RtpCounter:
    """Counts packets, loss and added latency on a subscriber peer connection, from
    the clear RTP header of the SRTP packets (no SRTP, no aiortc receive path).

    :meth:`hook` replaces the ``datagram_received`` of the aioice connection's UDP
    protocols (and, for protocols made later, the connection's ``data_received``,
    where every datagram that is not STUN arrives before aiortc's queue): SRTP
    packets are counted there, everything else (STUN, DTLS, SRTCP) goes on to aioice
    and aiortc as before. Loss is from the sequence numbers of each SSRC (gaps between
    the lowest and highest extended sequence number of the window). Latency has the
    same definition as the payload stamp always had (the publisher bot's send time →
    this bot's receipt), where the receipt is the kernel's receive timestamp of the
    datagram (SIOCGSTAMPNS), so the bots' own event-loop delays are not counted as the
    server's (``read_latencies`` keeps the time the bot read it): a sample of the packets
    is decrypted with the connection's own SRTP session to read the stamp — the first
    packet of every SSRC (a stream counts only if it carries the bots' stamp: RTX or
    padding would not) and then every :attr:`sample_every`-th packet of each stream.
    """

    #: Decrypt one packet in this many per stream for the latency figure (the bots
    #: set it from the scenario's size so the decrypts stay a small, fixed load).
    sample_every = 1

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.streams: dict[int, StreamStats] = {}
        self.recording = False
        self.total = 0
        self.decrypted = 0
        self.undecryptable = 0
        self._ignored: set[int] = set()  # SSRCs without the stamp (RTX, padding)
        self.seen: set[int] = set()  # SSRCs seen while recording (diagnostics)
        self._hooked: set[int] = set()  # ids of the hooked connections
        self._read_latency_us = 0  # of the last stamp read (see _stamp_of)

    def hook(self) -> None:
        """Call after each setRemoteDescription (the transports exist then)."""
        for t in self.pc.getTransceivers():
            dtls = t.receiver.transport
            if dtls is None:
                continue
            conn = dtls.transport._connection
            if getattr(conn, "_bench_counted", None) is self:
                continue
            conn._bench_counted = self
            self._hooked.add(id(conn))
            original = conn.data_received

            def data_received(
                data: bytes,
                component: int,
                dtls: Any = dtls,
                conn: Any = conn,
                original: Any = original,
            ) -> None:
                srtp = dtls._rx_srtp
                if 127 < data[0] < 192 and not 191 < data[1] < 209 and srtp is not None:
                    self._hook_sockets(conn, dtls)  # from the next datagram on
                    self.total += 1
                    if self.recording:
                        self._on_srtp(data, srtp)
                else:
                    original(data, component)

            conn.data_received = data_received
            self._hook_sockets(conn, dtls)

    def _hook_sockets(self, conn: Any, dtls: Any) -> None:
        """One step lower: the connection's UDP protocols (uvloop looks their
        ``datagram_received`` up for every datagram), so an SRTP packet skips aioice's
        STUN parse attempt (an exception per packet) and the call into the connection."""
        for proto in conn._protocols:
            if getattr(proto, "_bench_counted", None) is self:
                continue
            proto._bench_counted = self
            original = proto.datagram_received
            enlarge_receive_buffer(proto)
            fd = timestamped_fd(proto)

            def datagram_received(
                data: bytes, addr: Any, dtls: Any = dtls, original: Any = original, fd: int = fd
            ) -> None:
                srtp = dtls._rx_srtp
                if 127 < data[0] < 192 and not 191 < data[1] < 209 and srtp is not None:
                    self.total += 1
                    if self.recording:
                        self._on_srtp(data, srtp, fd)
                else:
                    original(data, addr)

            proto.datagram_received = datagram_received

    def _on_srtp(self, data: bytes, srtp: Any, fd: int = -1) -> None:
        """One SRTP datagram (``fd``: the socket it was read from, for its kernel
        receive time; -1 when it came through the connection, not a socket hook)."""
        if len(data) < 12:
            return
        seq, ssrc = _seq_ssrc.unpack_from(data)
        st = self.streams.get(ssrc)
        if st is None:
            self.seen.add(ssrc)
            if ssrc in self._ignored:
                return
            stamp = self._stamp_of(data, srtp, fd)
            if stamp is None:  # not decrypted: try the next one
                return
            if stamp == _NOT_OURS:
                self._ignored.add(ssrc)
                return
            st = self.streams[ssrc] = StreamStats(last_seq=seq)
            self._sample(st, stamp)
        elif st.received % self.sample_every == 0:
            stamp = self._stamp_of(data, srtp, fd)
            if stamp is not None and stamp != _NOT_OURS:
                self._sample(st, stamp)
        # extended sequence number
        last = st.last_seq
        if (seq - last) & 0xFFFF < 0x8000:  # forward (or equal)
            if seq < last:
                st.cycles += 0x10000
            st.last_seq = seq
            ext = st.cycles + seq
        else:  # late: from before the last one
            ext = st.cycles + seq - (0x10000 if seq > last else 0)
        st.received += 1
        if st.first_seq is None or ext < st.first_seq:
            st.first_seq = ext
        if ext > st.max_seq:
            st.max_seq = ext
        self._on_packet(data)

    def _on_packet(self, data: bytes) -> None:
        """Every counted SRTP packet (while recording): for subclasses."""

    def _sample(self, st: StreamStats, stamp: int) -> None:
        st.latencies_us.append(stamp)
        st.read_latencies_us.append(self._read_latency_us)

    def _stamp_of(self, data: bytes, srtp: Any, fd: int = -1) -> int | None:
        """Decrypt one packet and return its latency in µs to the kernel's receipt
        (None: not decrypted, ``_NOT_OURS``: no stamp in it); the latency to this read
        is left in ``_read_latency_us``."""
        now = time.time_ns()
        received = kernel_receive_ns(fd) if fd >= 0 else None
        if received is None or received > now:
            received = now
        try:
            clear = srtp.unprotect(data)
            off = rtp_payload_offset(clear)
        except Exception:  # replayed or damaged: not counted as a sample
            self.undecryptable += 1
            return None
        self.decrypted += 1
        i = clear.find(MAGIC, off, off + 24)
        if i < 0:
            return _NOT_OURS
        sent_ns = _stamp.unpack_from(clear, i)[1]
        self._read_latency_us = int((now - sent_ns) // 1000)
        return int((received - sent_ns) // 1000)

    def start_window(self) -> None:
        self.streams.clear()
        self.recording = True

    def stop_window(self) -> None:
        self.recording = False

    def summary(self) -> tuple[int, int, list[int]]:
        """(received, expected, latency samples in µs) for the last window."""
        received = expected = 0
        lat: list[int] = []
        for st in self.streams.values():
            received += st.received
            if st.first_seq is not None:
                expected += st.max_seq - st.first_seq + 1
            lat.extend(st.latencies_us)
        return received, expected, lat

    def read_latencies(self) -> list[int]:
        """The last window's latency samples (µs) to when the bot read each packet."""
        return [v for st in self.streams.values() for v in st.read_latencies_us]
