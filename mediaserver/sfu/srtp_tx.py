"""What a connection's outbound packets are protected with (issue 13).

aiortc protects everything a connection sends with one libsrtp session. For the
AES-GCM profiles (RFC 7714: what browsers and aiortc negotiate first) the native path
protects RTP itself (``csrc/aead.c``: one AES-GCM context per connection, the packet
index per SSRC), because libsrtp 2.x's per-packet overhead (a linked-list walk over every
SSRC of the session, a 1024-bit replay window shifted bit by bit, an unoptimised build)
was about a quarter of the server's CPU at full room 25.

One rule keeps SRTP safe: every RTP packet of a connection goes through one state, so
no packet index is used twice with different contents. Once :func:`native_rtp` has
set a connection's target up, both the native sends and Python's
(:class:`TxSrtp`'s ``protect_rtp``: RTX answers, packets the native path hands back)
use the target's state. RTCP (SRTCP: its own keys and index) stays with libsrtp. The
AES_CM_128_HMAC_SHA1_80 profile, and every connection when native SRTP is unavailable,
keep libsrtp for everything, as before.

The keys are exported again from the DTLS connection with RFC 5764's label and split by
aiortc's own profile table (``RTCDtlsTransport._setup_srtp`` does the same and keeps
none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pylibsrtp

__all__ = ["AEAD_PROFILES", "PRIVATE_NAMES", "TxSrtp", "native_rtp", "tx_key_of"]

_log = logging.getLogger(__name__)

#: aiortc names :func:`tx_key_of` relies on (checked by the canary test).
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("aiortc.rtcdtlstransport.RTCDtlsTransport()", "_ssl"),
    ("aiortc.rtcdtlstransport.RTCDtlsTransport()", "_role"),
    ("aiortc.rtcdtlstransport", "SRTP_PROFILES"),
    ("aiortc.rtcdtlstransport.SRTPProtectionProfile", "get_key_and_salt"),
)

#: libsrtp profiles the native path protects RTP for.
AEAD_PROFILES = frozenset(
    (
        pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    )
)


def tx_key_of(dtls: Any) -> tuple[bytes, int] | None:
    """(master key + salt, libsrtp profile) of what ``dtls`` (a connected aiortc
    ``RTCDtlsTransport``) sends, or None when they cannot be had."""
    try:
        from aiortc.rtcdtlstransport import SRTP_PROFILES

        ssl = dtls._ssl
        selected = ssl.get_selected_srtp_profile()
        for profile in SRTP_PROFILES:
            if profile.openssl_profile == selected:
                break
        else:
            return None
        material = ssl.export_keying_material(
            b"EXTRACTOR-dtls_srtp", 2 * (profile.key_length + profile.salt_length)
        )
        # RFC 5764 4.2: the client's key first; aiortc as the DTLS server sends with the second
        key = profile.get_key_and_salt(material, 1 if dtls._role == "server" else 0)
        return bytes(key), int(profile.libsrtp_profile)
    except Exception:  # aiortc or pyOpenSSL changed shape: libsrtp for everything
        _log.warning("native SRTP unavailable: DTLS keys not exported", exc_info=True)
        return None


def native_rtp(target: Any, dtls: Any) -> bool:
    """Set ``target`` (a native ``Target``) up to protect the RTP ``dtls``'s connection
    sends, when its profile is AES-GCM; False: libsrtp keeps doing it."""
    if target is None:
        return False
    found = tx_key_of(dtls)
    if found is None or found[1] not in AEAD_PROFILES:
        return False
    try:
        target.set_aead(found[0])
    except (ValueError, RuntimeError):
        _log.warning("native SRTP unavailable for a connection", exc_info=True)
        return False
    return True


class TxSrtp:
    """The outbound SRTP of one connection: ``shared`` (aiortc's libsrtp session) for
    RTCP, and for RTP too unless ``target`` protects it natively."""

    __slots__ = ("native", "protect_rtcp", "protect_rtp", "shared")

    def __init__(self, shared: pylibsrtp.Session, target: Any = None) -> None:
        self.shared = shared
        self.native = target is not None
        self.protect_rtp: Callable[[bytes], bytes] = (
            target.protect_rtp if target is not None else shared.protect
        )
        self.protect_rtcp: Callable[[bytes], bytes] = shared.protect_rtcp
