"""Cheap bounds on client SDP, checked before aiortc parses or applies it.

aiortc's work grows with every m-line (a transceiver each, codec matching, an answer
section): an offer with hundreds of (even inactive) m-lines stalls the event loop for
everyone on the node. One pass over the lines, no parsing beyond line prefixes.
Pure: no aiortc, no IO.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANSWER_BYTES_PER_MLINE", "SdpError", "SdpLimits", "check_sdp_bounds"]

#: A subscribe answer may take this many bytes per m-line of the offer it answers
#: (aiortc's answers take ~1.4 KB per m-line, browsers' less).
ANSWER_BYTES_PER_MLINE = 4096


class SdpError(ValueError):
    """An SDP the server will not accept; the message says why."""


@dataclass(frozen=True, slots=True)
class SdpLimits:
    max_bytes: int = 60_000
    max_mlines: int = 32
    max_attributes_per_mline: int = 256  # also the bound for the session section


def check_sdp_bounds(text: object, limits: SdpLimits, *, expected_mlines: int | None = None) -> int:
    """Raise :class:`SdpError` unless ``text`` is within ``limits``; return its m-lines.

    ``expected_mlines``: an answer must have exactly as many m-lines as our offer, and
    is bounded by it rather than by ``limits.max_mlines``/``max_bytes`` (those bound
    what a client offers; a subscribe offer of ours grows with the room: 24 audio +
    video publishers are 48 m-lines, and aiortc answers them in ~69 KB).
    Counts every m-line, whatever its direction or port (inactive ones cost as much).
    Also refuses a section with several ``a=mid`` and a mid used twice.
    """
    if not isinstance(text, str) or not text.strip():
        raise SdpError("sdp must be a non-empty string")
    max_bytes, max_mlines = limits.max_bytes, limits.max_mlines
    if expected_mlines is not None:  # an answer: bounded by the offer it answers (ours)
        max_mlines = max(max_mlines, expected_mlines)
        max_bytes = max(max_bytes, expected_mlines * ANSWER_BYTES_PER_MLINE)
    size = len(text)
    if size * 4 > max_bytes:  # only encode when it could matter
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise SdpError(f"sdp of {size} bytes exceeds {max_bytes}")
    if not text.startswith("v=0"):
        raise SdpError("sdp must start with 'v=0'")
    mlines = 0
    attributes = 0
    section_mid: str | None = None
    mids: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("m="):
            mlines += 1
            if mlines > max_mlines:
                raise SdpError(f"sdp has more than {max_mlines} m-lines")
            attributes = 0
            section_mid = None
        elif line.startswith("a="):
            attributes += 1
            if attributes > limits.max_attributes_per_mline:
                where = f"m-line {mlines - 1}" if mlines else "the session section"
                raise SdpError(
                    f"{where} has more than {limits.max_attributes_per_mline} attributes"
                )
            if line.startswith("a=mid:") and mlines:
                mid = line[6:].strip()
                if section_mid is not None:
                    raise SdpError(f"m-line {mlines - 1} has more than one a=mid")
                section_mid = mid
                first = mids.setdefault(mid, mlines - 1)
                if first != mlines - 1:
                    raise SdpError(
                        f"duplicate a=mid {mid[:32]!r} (m-lines {first} and {mlines - 1})"
                    )
    if expected_mlines is not None and mlines != expected_mlines:
        raise SdpError(f"answer has {mlines} m-lines, the offer has {expected_mlines}")
    return mlines
