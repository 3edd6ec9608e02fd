"""Recording without transcoding: forwarded RTP packets are reassembled into frames and
muxed into WebM files by a writer thread (docs/architecture.md, "Recording")."""

from .session import MANIFEST, RoomRecording, mark_interrupted
from .track import CODECS, TrackRecorder

__all__ = ["CODECS", "MANIFEST", "RoomRecording", "TrackRecorder", "mark_interrupted"]
