"""Microbenchmark of the receive side (issue 13): CPU per inbound SRTP packet from the
ICE agent to the forwarding call, aiortc's queue path against the direct path.

Both paths run real code on a real (uvloop) event loop: an SRTP packet enters where a
datagram enters the server (``--entry``): ``socket``, the per-connection socket's
protocol (``_DirectProtocol.datagram_received``: on the queue path aioice's, which first
tries to parse it as STUN), or ``mux``, the UDP mux's ``_MuxProtocol.deliver``:

- ``queue``: no receive function bound, so aioice's queue → aiortc's own
  ``RTCDtlsTransport.__run``/``_recv_next`` task (pylibsrtp unprotect) → an async
  ``_handle_rtp_data`` router → an async handler: the chain before issue 13's receive
  side (``Publication.on_rtp`` was a coroutine);
- ``direct-python`` / ``direct-native``: the receive function of
  :func:`mediaserver.sfu.rxpath.publisher_receive` (pylibsrtp or native unprotect, SSRC
  route, synchronous handler).

The handler is a real ``Publication.on_rtp`` (an Opus publication with a stub participant:
receive statistics, audio level and speech, then the native ``route`` to ``--fanout``
outputs with SRTP protect + ``sendmmsg`` over loopback; 0: receive cost alone).
``--batch`` packets are delivered per event-loop turn (1: every packet wakes the DTLS
task, as with one packet per publisher per turn). No DTLS handshake, no ICE: the DTLS
transport is put in the connected state by hand.
Run: ``python -m loadtests.receive_micro [--packets 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import time
from types import SimpleNamespace
from typing import Any

import uvloop
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from pylibsrtp import Policy, Session

from mediaserver.sfu import fastpath, rxpath
from mediaserver.sfu.forwarder import InboundExtIds, OutputParams
from mediaserver.sfu.ice_sockets import _DirectProtocol, _MuxProtocol
from mediaserver.sfu.negotiation import NegotiatedTrack
from mediaserver.sfu.publication import Publication

EXT_IDS = InboundExtIds(audio_level=1, abs_send_time=3)
SSRC = 0x1234


class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


def _sessions() -> tuple[Session, Session]:
    key = os.urandom(30)
    made = []
    for kind in (Policy.SSRC_ANY_OUTBOUND, Policy.SSRC_ANY_INBOUND):
        policy = Policy(key=key, ssrc_type=kind)
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        made.append(Session(policy))
    return made[0], made[1]


def _packets(tx: Session, count: int, size: int) -> list[bytes]:
    head = struct.pack("!HH", 0xBEDE, 1) + bytes((0x10, 0x20, 0, 0))
    return [
        tx.protect(struct.pack("!BBHII", 0x90, 111, k & 0xFFFF, k * 960, SSRC) + head + bytes(size))
        for k in range(count)
    ]


async def _measure(path: str, fanout: int, batch: int, count: int, size: int, entry: str) -> float:
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send.bind(("127.0.0.1", 0))
    recv.bind(("127.0.0.1", 0))  # never read: the kernel drops what overflows
    participant = SimpleNamespace(
        room=SimpleNamespace(media_until=float("inf")),
        rtcp_ssrc=1,
        speaking_seconds=0.0,
        recent_speech=0.0,
        send_to_publisher=lambda data: None,
    )
    publication = Publication(
        participant,  # type: ignore[arg-type]
        NegotiatedTrack(
            "0",
            "audio",
            "sendrecv",
            "opus",
            "audio/opus",
            48000,
            2,
            111,
            (),
            0,
            SSRC,
            0,
            0,
            1,
            3,
            "",
        ),
    )
    track = publication.forwarding
    keep = []
    for i in range(fanout):
        output = fastpath.new_output_stream(
            OutputParams(0x1000 + i, 111, str(i), 4, 1, 3), "s", video=False
        )
        output.active = True
        session = _sessions()[0]
        keep.append(session)
        target = fastpath.new_target()
        assert fastpath.bind_target(target, session, _Transport(send), recv.getsockname())
        output.target = target  # type: ignore[attr-defined]
        track.outputs.append(output)
    done = asyncio.get_running_loop().create_future()
    seen = [0]

    handle = publication.on_rtp

    def on_rtp(data: bytes, now: float) -> None:  # the synchronous handler
        handle(data, now)
        seen[0] += 1
        if seen[0] == count and not done.done():
            done.set_result(None)

    tx, rx = _sessions()
    packets = _packets(tx, count, size)
    dtls = RTCDtlsTransport(
        RTCIceTransport(RTCIceGatherer(iceServers=[])), [RTCCertificate.generateCertificate()]
    )
    connection = dtls.transport._connection
    connection._nominated[1] = object()  # "connected": recv() reads the queue
    routes: dict[int, Any] = {SSRC: on_rtp}
    loop = asyncio.get_running_loop()
    task = None
    if path == "queue":

        async def handler(data: bytes, now: float) -> None:  # was Publication.on_rtp
            on_rtp(data, now)

        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            route = routes.get(struct.unpack_from("!I", data, 8)[0])
            if route is not None:
                await handler(data, loop.time())

        dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]
        dtls._rx_srtp = rx
        dtls._RTCDtlsTransport__handshake_done = True  # type: ignore[attr-defined]
        dtls._set_state(State.CONNECTED)
        task = asyncio.ensure_future(dtls._RTCDtlsTransport__run())  # type: ignore[attr-defined]
    else:
        session = fastpath.new_rx_session(rx, native=path == "direct-native")
        connection.direct_rx = rxpath.publisher_receive(
            session, routes, lambda data: None, lambda data: None, loop.time
        )
    candidate = type("Candidate", (), {"component": 1})()
    if entry == "mux":
        mux = _MuxProtocol(connection, type("MuxSocket", (), {"transport": None})())
        mux.local_candidate = candidate
        deliver = mux.deliver

        def receive(data: bytes, addr: Any) -> None:
            deliver(data)

    else:
        protocol = _DirectProtocol(connection)
        protocol.local_candidate = candidate
        receive = protocol.datagram_received
    addr = ("127.0.0.1", 5000)
    position = [0]

    def feed() -> None:
        start = position[0]
        for data in packets[start : start + batch]:
            receive(data, addr)
        position[0] = start + batch
        if position[0] < count:
            loop.call_soon(feed)

    started = time.process_time()
    loop.call_soon(feed)
    await asyncio.wait_for(done, 60)
    elapsed = time.process_time() - started
    if task is not None:
        task.cancel()
    send.close()
    recv.close()
    return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=20000, help="inbound packets per run")
    parser.add_argument("--size", type=int, default=1000, help="payload bytes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fanout", type=int, action="append", help="default 0 and 20")
    parser.add_argument("--batch", type=int, action="append", help="default 1 and 8")
    parser.add_argument("--entry", choices=("socket", "mux"), action="append")
    args = parser.parse_args()
    paths = ["queue", "direct-python"] + (["direct-native"] if fastpath.PATH == "native" else [])
    results: dict[str, dict[str, float]] = {}

    async def run() -> None:
        for entry in args.entry or ("socket", "mux"):
            for batch in args.batch or (1, 8):
                for fanout in args.fanout or (0, 20):
                    key = f"{entry}, batch {batch}, fan-out {fanout}"
                    results[key] = {}
                    for path in paths:
                        runs = sorted(
                            [
                                await _measure(path, fanout, batch, args.packets, args.size, entry)
                                for _ in range(args.repeats)
                            ]
                        )
                        results[key][path] = round(runs[len(runs) // 2], 2)

    uvloop.run(run())
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
