"""The one facade over the native forwarding path, with the pure-Python twin beside it.

:data:`PATH` says which path this process runs: ``"native"`` when the optional C
extension (``_fastpath``, compiled from ``csrc/*.c`` at install) loads and pylibsrtp exposes its
libsrtp, ``"python"`` otherwise or when ``MEDIASERVER_PURE_PYTHON=1`` forces it.
:data:`REASON` says why. Everything else asks this module for its objects:

- :func:`new_forwarding_track` / :func:`new_output_stream`: a
  :class:`~.forwarder.ForwardingTrack` and :class:`~.forwarder.OutputStream` (the
  reference) or their native twins, which keep the same surface. The native
  ``route`` sends every packet whose output has a ready :class:`Target` itself (one
  call per inbound packet: rewrite, cache, SRTP protect, ``sendmmsg``) and returns only
  the others (outputs with a test hook, or whose connection is not resolved yet).
- :func:`new_target` / :func:`bind_target`: one per subscriber connection, the libsrtp
  session and UDP destination the native path sends with (``None`` in the Python path).
- :func:`new_rx_session`: a connection's inbound SRTP (the direct receive path,
  :mod:`.rxpath`): ``rtp(packet)`` / ``rtcp(packet)`` give the packet unprotected or
  None; natively ``srtp_unprotect`` on aiortc's own rx session, in the Python path
  pylibsrtp's ``Session.unprotect`` (:data:`UNPROTECT` says which).

The control plane stays in Python: the native state is the set of attributes the twin
has (``_seq_offset``, ``_ts_offset``, ``_next_seq``, ``_resync``, ``waiting_keyframe``,
``params``, ``_vp8`` for the VP8 descriptor rewrite of simulcast outputs ...), set here
and applied by the C code with the twin's rules.

SRTP: for the AES-GCM profiles the native path protects RTP itself (``csrc/aead.c``,
set up by :func:`.srtp_tx.native_rtp`; Python's RTP sends on that connection use the
same state, ``Target.protect_rtp``); :data:`NATIVE_SRTP` says whether it can. Otherwise
it calls the ``srtp_protect`` of the libsrtp copy inside pylibsrtp (its cffi ``lib``) on
the very ``srtp_t`` aiortc created from the DTLS keys
(``RTCDtlsTransport._tx_srtp._srtp``): one session per connection shared with aiortc's
own sends (RTCP, RTX answers), so the replay and rollover state stay consistent.
Receiving, ``srtp_unprotect``/``srtp_unprotect_rtcp`` on
``RTCDtlsTransport._rx_srtp._srtp`` the same way. Those private names are listed in
:data:`PRIVATE_NAMES`.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pylibsrtp

from ..config import ENV_NATIVE_SRTP, ENV_PURE_PYTHON
from .forwarder import (
    AUDIO_CACHE_SIZE,
    CACHE_SIZE,
    ForwardingTrack,
    InboundExtIds,
    OutputParams,
    OutputStream,
    answer_nack,
    mid_prefix,
)

__all__ = [
    "ENV_NATIVE_SRTP",
    "ENV_PURE_PYTHON",
    "NATIVE_SRTP",
    "NATIVE_SRTP_REASON",
    "PATH",
    "PRIVATE_NAMES",
    "REASON",
    "SRTP_PROTECT_TYPE",
    "UNPROTECT",
    "PyRxSession",
    "RxSession",
    "Target",
    "bind_target",
    "new_forwarding_track",
    "new_output_stream",
    "new_rx_session",
    "new_target",
    "route_function",
    "status",
]

#: Private pylibsrtp names the native path relies on (checked by the canary test).
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("pylibsrtp._binding", "ffi"),
    ("pylibsrtp._binding", "lib"),
    ("pylibsrtp.Session()", "_srtp"),
)

_CODECS = {"VP8": 1, "H264": 2}
#: The libsrtp 2.x ``srtp_protect`` the C code calls (pylibsrtp 1.0 ships libsrtp 2.x);
#: ``srtp_unprotect`` and ``srtp_unprotect_rtcp`` have the same type.
SRTP_PROTECT_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"


def _unprotect_functions() -> tuple[int, int] | None:
    """Addresses of pylibsrtp's srtp_unprotect and srtp_unprotect_rtcp, or None when
    they do not have the libsrtp 2.x signature (then pylibsrtp unprotects)."""
    try:
        from pylibsrtp._binding import ffi, lib

        found = []
        for name in ("srtp_unprotect", "srtp_unprotect_rtcp"):
            fn = ffi.addressof(lib, name)
            if ffi.typeof(fn).cname != SRTP_PROTECT_TYPE:
                return None
            found.append(int(ffi.cast("uintptr_t", fn)))
    except Exception:  # pragma: no cover - pylibsrtp changed shape
        return None
    return found[0], found[1]


def _load() -> tuple[Any, int, str]:
    """(the extension module or None, address of srtp_protect, reason)."""
    if os.environ.get(ENV_PURE_PYTHON, "").strip() not in ("", "0"):
        return None, 0, f"{ENV_PURE_PYTHON} is set"
    try:
        from . import _fastpath
    except ImportError as exc:
        return None, 0, f"native extension not available ({exc})"
    try:
        from pylibsrtp._binding import ffi, lib

        fn = ffi.addressof(lib, "srtp_protect")
        if ffi.typeof(fn).cname != SRTP_PROTECT_TYPE:
            # libsrtp 3 changed the signature: calling it the 2.x way would crash
            return None, 0, f"pylibsrtp's srtp_protect is {ffi.typeof(fn).cname}"
        protect = int(ffi.cast("uintptr_t", fn))
    except Exception as exc:  # pragma: no cover - pylibsrtp changed shape
        return None, 0, f"pylibsrtp's srtp_protect not reachable ({exc})"
    return _fastpath, protect, "native extension loaded"


_native, _PROTECT, REASON = _load()
PATH: Literal["native", "python"] = "native" if _native is not None else "python"
_UNPROTECT = _unprotect_functions() if _native is not None else None


def _native_srtp() -> tuple[bool, str]:
    if _native is None:
        return False, REASON
    if os.environ.get(ENV_NATIVE_SRTP, "").strip() == "0":
        return False, f"{ENV_NATIVE_SRTP}=0"
    available, why = _native.native_srtp()
    return bool(available), str(why)


#: Whether the native path protects the RTP of AES-GCM connections itself
#: (``csrc/aead.c``, :mod:`.srtp_tx`) instead of libsrtp, and why not.
NATIVE_SRTP, NATIVE_SRTP_REASON = _native_srtp()
#: Who unprotects inbound SRTP on the direct receive path: libsrtp called from C
#: (``native``) or pylibsrtp's ``Session.unprotect`` (``python``).
UNPROTECT: Literal["native", "python"] = "native" if _UNPROTECT is not None else "python"


class RxSession(Protocol):
    """A connection's inbound SRTP: the packet unprotected, or None when refused."""

    def rtp(self, packet: bytes, /) -> bytes | None: ...

    def rtcp(self, packet: bytes, /) -> bytes | None: ...


class PyRxSession:
    """The pure-Python twin of the native ``RxSession``: pylibsrtp's ``Session``."""

    __slots__ = ("_rtcp", "_rtp", "refused")

    def __init__(self, session: pylibsrtp.Session) -> None:
        self._rtp = session.unprotect
        self._rtcp = session.unprotect_rtcp
        self.refused = 0

    def rtp(self, packet: bytes) -> bytes | None:
        try:
            return self._rtp(packet)
        except (pylibsrtp.Error, ValueError):  # ValueError: longer than its buffer
            self.refused += 1
            return None

    def rtcp(self, packet: bytes) -> bytes | None:
        try:
            return self._rtcp(packet)
        except (pylibsrtp.Error, ValueError):
            self.refused += 1
            return None


def new_rx_session(session: pylibsrtp.Session, *, native: bool = True) -> RxSession:
    """Unprotect with ``session`` (aiortc's ``RTCDtlsTransport._rx_srtp``): natively
    when :data:`UNPROTECT` is ``native`` (and ``native``), else through pylibsrtp."""
    if _UNPROTECT is not None and native and PATH == "native":
        from pylibsrtp._binding import ffi

        address = int(ffi.cast("uintptr_t", session._srtp[0]))
        made: RxSession = _native.RxSession(address, _UNPROTECT[0], _UNPROTECT[1], session)
        return made
    return PyRxSession(session)


if TYPE_CHECKING:
    from ._fastpath import Output, Target

    class _OutputBase(OutputStream, Output):  # the native class offers the twin's surface
        pass

else:
    Target = _native.Target if _native is not None else None
    _OutputBase = _native.Output if _native is not None else object


class NativeOutputStream(_OutputBase):
    """:class:`~.forwarder.OutputStream` whose rewrite state and NACK cache live in C."""

    __slots__ = ("_drop", "_params", "_rtx_seq", "rtx_sent", "sink", "subscriber_id")

    def __init__(self, params: OutputParams, subscriber_id: str, *, video: bool) -> None:
        # The random draws in the twin's order: seeded tests compare both byte for byte.
        self._ts_offset = random.getrandbits(32)
        self._next_seq = random.randrange(0, 0x8000)
        self._seq_offset = 0
        self._resync = True
        self._rebase_ts = 0  # timestamp step to the next source (0: no rebase)
        self._started_at_seq = 0
        self._rtx_seq = random.randrange(0, 0x8000)
        self._cache_slots = CACHE_SIZE if video else AUDIO_CACHE_SIZE  # as the twin's
        self.params = params
        self.subscriber_id = subscriber_id
        self.active = False
        self.waiting_keyframe = video
        self.packets = 0
        self.octets = 0
        self.last_rtp_ts = 0
        self.rtx_sent = 0
        self._drop: Callable[[int], bool] | None = None
        self.sink: Callable[[bytes], bool] | None = None

    @property
    def params(self) -> OutputParams:
        return self._params

    @params.setter
    def params(self, params: OutputParams) -> None:
        """Set from the control plane: the C state follows (SSRC, PT, extension ids)."""
        self._params = params
        self._ssrc = params.ssrc
        self._payload_type = params.payload_type
        self._al_id = params.audio_level_ext_id
        self._ast_id = params.abs_send_time_ext_id
        self._ext_prefix = mid_prefix(params)

    @property
    def drop_filter(self) -> Callable[[int], bool] | None:
        """Test hook (simulated loss): outputs with one send from Python."""
        return self._drop

    @drop_filter.setter
    def drop_filter(self, fn: Callable[[int], bool] | None) -> None:
        self._drop = fn
        self._python_send = fn is not None

    if not TYPE_CHECKING:  # the twin's own rules, one copy (they touch only C fields)
        pause = OutputStream.pause
        output_ts = OutputStream.output_ts

    def rewrite_vp8(self) -> None:
        """The twin's :meth:`~.forwarder.OutputStream.rewrite_vp8`, applied in C."""
        self._vp8 = True

    def vp8_switch(self) -> None:
        if self._vp8:
            self._vp8_rebase = True

    def build(
        self, b0: int, b1: int, seq: int, ts: int, audio_level: bytes, ast: bytes, payload: bytes
    ) -> bytes | None:
        raise NotImplementedError("the native path builds packets inside route()")

    def retransmission(self, out_seq: int) -> bytes | None:
        return answer_nack(self, self.cached(out_seq), out_seq)


class NativeForwardingTrack(ForwardingTrack):
    """:class:`~.forwarder.ForwardingTrack` whose ``route`` is one native call."""

    __slots__ = ("_codec_id",)

    def __init__(self, codec: str, *, video: bool, ext_ids: InboundExtIds) -> None:
        super().__init__(codec, video=video, ext_ids=ext_ids)
        self._codec_id = _CODECS.get(codec.upper(), 0)

    def route(self, data: bytes, now: float) -> tuple[list[tuple[OutputStream, bytes]], bool]:
        out, keyframe, self.level, sent, octets = _native.route(
            data,
            self.outputs,
            self._codec_id,
            self.video,
            self.ext_ids.audio_level,
            self.muted,
            now,
        )
        if sent:
            self.sent_packets += sent
            self.sent_octets += octets
            _totals[0] += sent
        return out, keyframe


#: Packets sent by the native path in this process (``/healthz`` shows it).
_totals = [0]


def status() -> dict[str, object]:
    """Which path is active and why; how many packets the native path has sent, in how
    many ``sendmmsg`` calls (one per subscriber socket, or one per inbound packet for all
    subscribers on the UDP mux)."""
    calls = _native.sendmmsg_calls() if _native is not None else 0
    return {
        "path": PATH,
        "reason": REASON,
        "native_packets": _totals[0],
        "native_sendmmsg_calls": calls,
        "unprotect": UNPROTECT,
        "srtp_protect": "native-aead" if NATIVE_SRTP and PATH == "native" else "libsrtp",
        "srtp_protect_reason": NATIVE_SRTP_REASON,
    }


def route_function() -> Any:
    """The native ``route`` in use (None in the Python path)."""
    return None if _native is None else _native.route


def new_forwarding_track(codec: str, *, video: bool, ext_ids: InboundExtIds) -> ForwardingTrack:
    """A publication's forwarding track on the path this process runs."""
    cls = NativeForwardingTrack if PATH == "native" else ForwardingTrack
    return cls(codec, video=video, ext_ids=ext_ids)


def new_output_stream(
    params: OutputParams,
    subscriber_id: str,
    *,
    video: bool,
    target: Target | None = None,
) -> OutputStream:
    """An output; with the native path, sent through ``target`` (its connection's)."""
    if PATH != "native":
        return OutputStream(params, subscriber_id, video=video)
    output = NativeOutputStream(params, subscriber_id, video=video)
    output.target = target
    return output


def new_target() -> Target | None:
    """A send target for one subscriber connection (None in the Python path)."""
    return Target() if PATH == "native" else None


def bind_target(target: Target | None, srtp_session: Any, transport: Any, addr: Any) -> bool:
    """Point ``target`` at a connection's SRTP session (pylibsrtp ``Session``), its UDP
    transport and the remote address. False (target cleared) when any part is missing."""
    if target is None:
        return False
    try:
        from pylibsrtp._binding import ffi

        session = int(ffi.cast("uintptr_t", srtp_session._srtp[0]))
        sock = transport.get_extra_info("socket")
        fd = sock.fileno()
        family = int(sock.family)
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError("not an IP socket")
        target.set(session, _PROTECT, srtp_session, fd, family, str(addr[0]), int(addr[1]))
    except Exception:
        target.clear()
        return False
    return True
