"""Simulcast receive: the SDP lines aiortc drops, and the rid header extensions.

aiortc 1.16 parses neither ``a=rid``/``a=simulcast`` nor the RTP stream-id header
extensions, so its answer to a simulcast offer makes Chrome send only its lowest layer.
:func:`munge_answer` adds to each video section of our answer what the offer asked for
(the extmap lines with the offer's ids, ``a=rid:<id> recv`` per layer and
``a=simulcast:recv``); :func:`read_extensions` reads the rid (and, on RTX packets,
repaired-rid) of an inbound packet so that its SSRC can be bound to a layer.

Pure text and bytes: no aiortc, no IO.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Collection
from dataclasses import dataclass

__all__ = [
    "EXT_REPAIRED_RID",
    "EXT_RID",
    "SimulcastOffer",
    "munge_answer",
    "parse_simulcast_offer",
    "read_extensions",
]

EXT_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
EXT_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
#: RFC 8851: a rid is 1..255 alphanumeric, '-' or '_' (browsers use 1-2 characters).
_RID_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_MAX_LAYERS = 4
_ext_hdr = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class SimulcastOffer:
    """What one offered video section asks for: rids in the offer's order."""

    mid: str
    rids: tuple[str, ...]
    rid_ext_id: int
    repaired_rid_ext_id: int  # 0: not offered (RTX is then matched by SSRC only)


def _sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    """Split an SDP into its session lines and one list of lines per m-section."""
    session: list[str] = []
    media: list[list[str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    return session, media


def _attr(section: list[str], name: str) -> list[str]:
    prefix = f"a={name}:"
    return [line[len(prefix) :].strip() for line in section if line.startswith(prefix)]


def _extmap_id(section: list[str], uri: str) -> int:
    for value in _attr(section, "extmap"):
        parts = value.split()
        if len(parts) >= 2 and parts[1] == uri:
            ident = parts[0].split("/", 1)[0]
            if ident.isdigit() and 1 <= int(ident) <= 255:
                return int(ident)
    return 0


def _send_rids(value: str) -> list[str]:
    """The rids of ``a=simulcast:send q;h;f`` (first alternative of each, paused too)."""
    parts = value.split()
    if len(parts) < 2 or parts[0] != "send":
        return []
    out: list[str] = []
    for stream in parts[1].split(";"):
        rid = stream.split(",", 1)[0].lstrip("~")
        if _RID_RE.match(rid) and rid not in out:
            out.append(rid)
    return out


def parse_simulcast_offer(offer_sdp: str) -> dict[str, SimulcastOffer]:
    """The video sections of an offer that send simulcast, by mid.

    A section counts when it has ``a=simulcast:send`` naming rids declared ``send``
    by ``a=rid`` and offers the rtp-stream-id extension; anything else is left to
    aiortc's ordinary (single stream) handling.
    """
    _, media = _sections(offer_sdp)
    found: dict[str, SimulcastOffer] = {}
    for section in media:
        if not section[0].startswith("m=video"):
            continue
        mids = _attr(section, "mid")
        sim = _attr(section, "simulcast")
        rid_ext = _extmap_id(section, EXT_RID)
        if not mids or not sim or not rid_ext:
            continue
        declared = set()
        for value in _attr(section, "rid"):
            parts = value.split()
            if len(parts) >= 2 and parts[1] == "send":
                declared.add(parts[0])
        rids = [r for r in _send_rids(sim[0]) if r in declared][:_MAX_LAYERS]
        if len(rids) < 2:
            continue
        found[mids[0]] = SimulcastOffer(
            mid=mids[0],
            rids=tuple(rids),
            rid_ext_id=rid_ext,
            repaired_rid_ext_id=_extmap_id(section, EXT_REPAIRED_RID),
        )
    return found


def munge_answer(answer_sdp: str, offers: dict[str, SimulcastOffer]) -> str:
    """Add the simulcast receive lines to the answer's sections named in ``offers``.

    A section that the answer rejected (port 0) is left alone; an extmap id the
    answer already uses for another extension is not added (the layer is then
    matched without it and the section stays single stream).
    """
    if not offers:
        return answer_sdp
    session, media = _sections(answer_sdp)
    for section in media:
        mids = _attr(section, "mid")
        offer = offers.get(mids[0]) if mids else None
        if offer is None or section[0].split()[1:2] == ["0"]:
            continue
        used = {v.split()[0].split("/", 1)[0] for v in _attr(section, "extmap")}
        extra: list[str] = []
        if str(offer.rid_ext_id) in used:
            continue
        extra.append(f"a=extmap:{offer.rid_ext_id} {EXT_RID}")
        if offer.repaired_rid_ext_id and str(offer.repaired_rid_ext_id) not in used:
            extra.append(f"a=extmap:{offer.repaired_rid_ext_id} {EXT_REPAIRED_RID}")
        extra += [f"a=rid:{rid} recv" for rid in offer.rids]
        extra.append("a=simulcast:recv " + ";".join(offer.rids))
        # after the last extmap line (or at the end): where browsers put them
        at = max((i for i, line in enumerate(section) if line.startswith("a=extmap:")), default=-1)
        if at < 0:
            section.extend(extra)
        else:
            section[at + 1 : at + 1] = extra
    lines = session + [line for section in media for line in section]
    return "\r\n".join(lines) + "\r\n"


def read_extensions(data: bytes, ids: Collection[int]) -> dict[int, bytes]:
    """The values of the header extensions ``ids`` in an RTP packet (one-byte and
    two-byte forms, RFC 8285). Malformed or absent extensions give an empty dict."""
    n = len(data)
    if n < 12 or not data[0] & 0x10:
        return {}
    off = 12 + 4 * (data[0] & 0x0F)
    if n < off + 4:
        return {}
    profile, words = _ext_hdr.unpack_from(data, off)
    i = off + 4
    end = i + 4 * words
    if end > n:
        return {}
    found: dict[int, bytes] = {}
    if profile == 0xBEDE:
        while i < end:
            h = data[i]
            if h == 0:
                i += 1
                continue
            ext_id, length = h >> 4, (h & 0x0F) + 1
            if ext_id == 15 or i + 1 + length > end:
                break
            if ext_id in ids:
                found[ext_id] = data[i + 1 : i + 1 + length]
            i += 1 + length
    elif profile & 0xFFF0 == 0x1000:
        while i + 1 < end:
            ext_id = data[i]
            if ext_id == 0:
                i += 1
                continue
            length = data[i + 1]
            if i + 2 + length > end:
                break
            if ext_id in ids:
                found[ext_id] = data[i + 2 : i + 2 + length]
            i += 2 + length
    return found
