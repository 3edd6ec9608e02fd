"""Types of the native forwarding extension (mediaserver/sfu/csrc/*.c)."""

from typing import Any

CACHE_SIZE: int
AUDIO_CACHE_SIZE: int
MAX_PACKET_BYTES: int

class Target:
    """One subscriber connection's SRTP session and UDP destination."""

    errors: int
    @property
    def ready(self) -> bool: ...
    def set(
        self, session: int, protect: int, keep: object, fd: int, family: int, host: str, port: int
    ) -> None: ...
    def clear(self) -> None: ...
    @property
    def aead(self) -> bool: ...
    def set_aead(self, master_key_and_salt: bytes, /) -> None: ...
    def protect_rtp(self, packet: bytes, /) -> bytes: ...

class RxSession:
    """One connection's inbound SRTP session (srtp_unprotect / srtp_unprotect_rtcp)."""

    refused: int
    def __init__(
        self, session: int, unprotect: int, unprotect_rtcp: int, keep: object, /
    ) -> None: ...
    def rtp(self, packet: bytes, /) -> bytes | None: ...
    def rtcp(self, packet: bytes, /) -> bytes | None: ...

class Output:
    """Rewrite state and NACK cache of one output (see forwarder.OutputStream)."""

    _ssrc: int
    _payload_type: int
    _seq_offset: int
    _ts_offset: int
    _al_id: int
    _ast_id: int
    _next_seq: int
    _started_at_seq: int
    _resync: bool
    _rebase_ts: int
    _cache_slots: int
    _python_send: bool
    _vp8: bool
    _vp8_rebase: bool
    _ext_prefix: bytes
    active: bool
    waiting_keyframe: bool
    packets: int
    octets: int
    last_rtp_ts: int
    target: Target | None
    def cached(self, out_seq: int, /) -> bytes | None: ...

def route(
    data: bytes,
    outputs: list[Any],
    codec: int,
    video: bool,
    audio_level_id: int,
    muted: bool,
    now: float,
    /,
) -> tuple[list[tuple[Any, bytes]], bool, int, int, int]: ...
def sendmmsg_calls() -> int: ...
def is_keyframe_start(codec: int, payload: bytes, /) -> bool: ...
def native_srtp() -> tuple[bool, str]: ...
