"""Microbenchmark of the forwarding function itself: CPU per forwarded packet.

One inbound packet is routed to N outputs and each copy SRTP-protected and sent over
loopback UDP, on both
paths: the pure-Python reference (route + ``SubscriberPeer.send_rtp_now``'s protect and
``sendto``) and the native path (one ``route`` call: rewrite, cache, protect,
``sendmmsg``). No aiortc receive path, no event loop: this isolates what issue 13's
first step changes. Run: ``python -m loadtests.forwarding_micro [--packets 20000]``.

``--srtp`` picks the protection: ``cm`` (libsrtp AES-128-CM/HMAC-SHA1-80), ``gcm``
(libsrtp AEAD AES-128-GCM, what browsers and aiortc negotiate first) or ``gcm-native``
(the native path protects AES-128-GCM itself, ``csrc/aead.c``; the Python path keeps
libsrtp GCM, as the server does).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import time
from typing import Any

from pylibsrtp import Policy, Session

from mediaserver.sfu import fastpath
from mediaserver.sfu.forwarder import ForwardingTrack, InboundExtIds, OutputParams, OutputStream

EXT_IDS = InboundExtIds(audio_level=1, abs_send_time=3)


class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


#: --srtp choice -> (libsrtp profile, master key + salt length)
_PROFILES = {
    "cm": (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "gcm": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "gcm-native": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
}


def _session(srtp: str) -> tuple[Session, bytes]:
    profile, length = _PROFILES[srtp]
    key = os.urandom(length)
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return Session(policy), key


def _packets(count: int, size: int) -> list[bytes]:
    head = struct.pack("!HH", 0xBEDE, 1) + bytes((0x10, 0x20, 0, 0))
    return [
        struct.pack("!BBHII", 0x90, 111, k & 0xFFFF, k * 960, 0x1234) + head + bytes(size)
        for k in range(count)
    ]


def measure(path: str, fanout: int, packets: list[bytes], srtp: str = "cm") -> float:
    """CPU microseconds per forwarded packet (per output copy)."""
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send.bind(("127.0.0.1", 0))
    recv.bind(("127.0.0.1", 0))  # never read: the kernel drops what overflows
    addr = recv.getsockname()
    native = path == "native"
    track: ForwardingTrack = (fastpath.NativeForwardingTrack if native else ForwardingTrack)(
        "opus", video=False, ext_ids=EXT_IDS
    )
    sessions = []
    for i in range(fanout):
        params = OutputParams(0x1000 + i, 111, str(i), 4, 1, 3)
        output: OutputStream = (fastpath.NativeOutputStream if native else OutputStream)(
            params, f"s{i}", video=False
        )
        output.active = True
        session, key = _session(srtp)
        sessions.append(session)
        if native:
            target = fastpath.new_target()
            assert target is not None
            assert fastpath.bind_target(target, session, _Transport(send), addr)
            if srtp == "gcm-native":
                target.set_aead(key)
            output.target = target  # type: ignore[attr-defined]
        else:
            protect, sendto = session.protect, send.sendto

            def send_one(pkt: bytes, protect: Any = protect, sendto: Any = sendto) -> bool:
                sendto(protect(pkt), addr)
                return True

            output.sink = send_one
        track.outputs.append(output)
    started = time.process_time()
    now = 1.0
    for data in packets:
        out, _ = track.route(data, now)
        for o, pkt in out:
            sink = o.sink
            if sink is not None:
                sink(pkt)
    elapsed = time.process_time() - started
    send.close()
    recv.close()
    return elapsed / (len(packets) * fanout) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=20000, help="inbound packets per run")
    parser.add_argument("--size", type=int, default=1000, help="payload bytes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--path", choices=("python", "native"), action="append")
    parser.add_argument("--fanout", type=int, action="append", help="default 1, 10, 20, 80")
    parser.add_argument("--srtp", choices=tuple(_PROFILES), default="cm")
    parser.add_argument(
        "--exact", action="store_true", help="route exactly --packets packets (for callgrind)"
    )
    args = parser.parse_args()
    random.seed(1)
    results: dict[str, dict[int, float]] = {}
    paths = args.path or (["python", "native"] if fastpath.PATH == "native" else ["python"])
    for path in paths:
        results[path] = {}
        for fanout in args.fanout or (1, 10, 20, 80):
            count = args.packets if args.exact else max(200, args.packets // fanout)
            runs = sorted(
                measure(path, fanout, _packets(count, args.size), args.srtp)
                for _ in range(args.repeats)
            )
            results[path][fanout] = round(runs[len(runs) // 2], 2)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
