"""A Matroska/WebM writer for frames that are already encoded (pure, over a binary file).

Written to survive a kill: the Segment and every Cluster have unknown size (the live
Matroska layout), each block is complete when written, so a file cut anywhere plays up
to its last whole block. A clean :meth:`MatroskaWriter.close` fills in the Duration it
reserved space for. Cues are not written (players seek by scanning clusters).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["MatroskaWriter", "TrackSpec", "opus_head"]

_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
_DURATION_ID = b"\x44\x89"
#: Void element of 11 bytes (1 id + 1 size + 9 data): the room for Duration (2+1+8).
_VOID_11 = b"\xec\x89" + bytes(9)


def _vint(n: int) -> bytes:
    for length in range(1, 9):
        if n < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | n).to_bytes(length, "big")
    raise ValueError(f"EBML size {n} is too large")


def _el(element_id: bytes, body: bytes) -> bytes:
    return element_id + _vint(len(body)) + body


def _uint(element_id: bytes, value: int) -> bytes:
    return _el(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _float(element_id: bytes, value: float) -> bytes:
    return _el(element_id, struct.pack(">d", value))


def _str(element_id: bytes, value: str) -> bytes:
    return _el(element_id, value.encode())


def opus_head(channels: int = 2, sample_rate: int = 48000, pre_skip: int = 0) -> bytes:
    """The Opus identification header (RFC 7845 §5.1), Matroska's CodecPrivate for Opus."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, sample_rate, 0, 0)


@dataclass(frozen=True, slots=True)
class TrackSpec:
    #: Matroska codec id: V_VP8, A_OPUS, V_MPEG4/ISO/AVC.
    codec_id: str
    video: bool
    width: int = 0
    height: int = 0
    sample_rate: int = 48000
    channels: int = 2
    codec_private: bytes = b""


class MatroskaWriter:
    """One track per file. ``doctype`` is "webm" (VP8, Opus) or "matroska" (H264)."""

    CLUSTER_MS = 1000

    def __init__(self, file: BinaryIO, spec: TrackSpec, *, doctype: str, app: str) -> None:
        if doctype not in ("webm", "matroska"):
            raise ValueError(f"doctype must be webm or matroska, got {doctype!r}")
        self._file = file
        self._spec = spec
        self._cluster_ms: int | None = None
        self.last_ms: int | None = None
        self.first_ms: int | None = None
        self.frames = 0
        self.bytes = 0
        #: Bytes of the file that are whole elements (what a failed write is cut back to).
        self.size = 0
        self._last_gap = 0
        header = _el(
            b"\x1a\x45\xdf\xa3",
            _uint(b"\x42\x86", 1)
            + _uint(b"\x42\xf7", 1)
            + _uint(b"\x42\xf2", 4)
            + _uint(b"\x42\xf3", 8)
            + _str(b"\x42\x82", doctype)
            + _uint(b"\x42\x87", 4)
            + _uint(b"\x42\x85", 2),
        )
        segment_head = b"\x18\x53\x80\x67" + _UNKNOWN_SIZE
        info_body = (
            _uint(b"\x2a\xd7\xb1", 1_000_000) + _str(b"\x4d\x80", app) + _str(b"\x57\x41", app)
        )
        info_head = b"\x15\x49\xa9\x66" + _vint(len(info_body) + len(_VOID_11))
        self._duration_at = len(header) + len(segment_head) + len(info_head) + len(info_body)
        self._write(
            header
            + segment_head
            + info_head
            + info_body
            + _VOID_11
            + _el(b"\x16\x54\xae\x6b", self._track_entry())
        )

    def _track_entry(self) -> bytes:
        spec = self._spec
        body = (
            _uint(b"\xd7", 1)
            + _uint(b"\x73\xc5", 1)
            + _uint(b"\x83", 1 if spec.video else 2)
            + _uint(b"\x9c", 0)
            + _str(b"\x86", spec.codec_id)
        )
        if spec.codec_private:
            body += _el(b"\x63\xa2", spec.codec_private)
        if spec.video:
            body += _el(b"\xe0", _uint(b"\xb0", spec.width) + _uint(b"\xba", spec.height))
        else:
            body += _el(
                b"\xe1", _float(b"\xb5", float(spec.sample_rate)) + _uint(b"\x9f", spec.channels)
            )
        if spec.codec_id == "A_OPUS":
            body += _uint(b"\x56\xaa", 0) + _uint(b"\x56\xbb", 80_000_000)
        return _el(b"\xae", body)

    def write(self, ms: int, data: bytes, keyframe: bool) -> None:
        """One frame at ``ms`` milliseconds (not before the previous frame's time)."""
        if self.last_ms is not None and ms < self.last_ms:
            ms = self.last_ms
        cluster = self._cluster_ms
        head = b""
        if (
            cluster is None
            or ms - cluster >= self.CLUSTER_MS
            or ms - cluster > 32767
            or (keyframe and self._spec.video and ms > cluster)
        ):
            head = b"\x1f\x43\xb6\x75" + _UNKNOWN_SIZE + _uint(b"\xe7", ms)
            self._cluster_ms = cluster = ms
        block = b"\x81" + struct.pack(">hB", ms - cluster, 0x80 if keyframe else 0) + data
        # one write per frame: on an unbuffered file a kill leaves whole blocks only
        self._write(head + b"\xa3" + _vint(len(block)) + block)
        if self.first_ms is None:
            self.first_ms = ms
        if self.last_ms is not None and ms > self.last_ms:
            self._last_gap = ms - self.last_ms
        self.last_ms = ms
        self.frames += 1
        self.bytes += len(data)

    def _write(self, data: bytes) -> None:
        """All of ``data`` (an unbuffered file may take part of it), or OSError."""
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            if not n:
                raise OSError(errno.ENOSPC, "short write")
            view = view[n:]
        self.size += len(data)

    def cut_back(self) -> None:
        """After a failed write: drop the partial element, fill in the Duration of what
        the file holds (the disk may be full: this only rewrites bytes in place)."""
        self._file.truncate(self.size)
        end = 0 if self.last_ms is None else self.last_ms + self._last_gap
        self.close(float(end))

    def close(self, duration_ms: float) -> None:
        """Fill in the Duration (the file is complete without it too)."""
        self._file.seek(self._duration_at)
        self._file.write(_float(_DURATION_ID, float(duration_ms)))
        self._file.seek(0, 2)
