"""One recording of one meeting: a writer thread, a :class:`TrackRecorder` per published
track, and the JSON manifest (written when the recording starts, with state "recording",
every ``CHECKPOINT_SECONDS`` while it runs, so that a node killed mid-recording leaves a
manifest that lists its files, and again when it ends) so that a player or editor can
line the files up."""

from __future__ import annotations

import asyncio
import errno
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..telemetry import get_logger
from .track import CODECS, ParticipantClock, TrackRecorder
from .writer import WriteJson, WriterThread, write_json

if TYPE_CHECKING:
    from ..sfu.publication import Publication

__all__ = [
    "CHECKPOINT_SECONDS",
    "MANIFEST",
    "RoomRecording",
    "mark_interrupted",
    "new_recording_id",
]

MANIFEST = "manifest.json"
#: Space kept aside at the start of a recording and given back before its last manifest
#: is written, so that a full disk still gets a finished manifest.
RESERVE = ".reserve"
RESERVE_BYTES = 64 * 1024
#: A track waiting for a keyframe asks for one at most this often (on top of the
#: publication's own throttle): publishers that do not answer NACKs lose packets for good,
#: and each PLI costs them a keyframe burst.
KEYFRAME_REQUEST_SECONDS = 1.0
#: While recording, the manifest is rewritten this often (through the writer thread, after
#: the frames queued before it): what an "interrupted" recording's manifest lists.
CHECKPOINT_SECONDS = 2.0


def new_recording_id() -> str:
    return "RE" + secrets.token_hex(8)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomically (a reader never sees half a manifest)."""
    write_json(directory / MANIFEST, manifest)


def mark_interrupted(root: Path) -> list[dict[str, Any]]:
    """At start-up: recordings whose manifest still says "recording" were cut by a crash
    of this node; mark them "interrupted". Returns their manifests."""
    found: list[dict[str, Any]] = []
    if not root.is_dir():
        return found
    for path in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("state") == "recording":
            manifest["state"] = "interrupted"
            (path.parent / RESERVE).unlink(missing_ok=True)
            write_manifest(path.parent, manifest)
            found.append(manifest)
    return found


class RoomRecording:
    """Created and started by the room; ``on_stopped`` is awaited once when it ends (by a
    host, the API, the room closing or a write error)."""

    def __init__(
        self,
        *,
        room_id: str,
        root: Path,
        queue_frames: int,
        loop: asyncio.AbstractEventLoop,
        on_stopped: Callable[[RoomRecording], Awaitable[None]],
        started_by: str | None = None,
        link_id: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        self.id = new_recording_id()
        self.room_id = room_id
        self.link_id = link_id
        self.tenant_id = tenant_id
        self.directory = root / self.id
        self.loop = loop
        self.started_at = time.time()
        self.started_local = loop.time()
        self.started_by = started_by
        self.state = "recording"
        self.reason: str | None = None
        self.tracks: dict[str, TrackRecorder] = {}
        #: Where each track taps packets (its publication, or its top simulcast layer).
        self._sources: dict[str, Publication] = {}
        self.track_info: dict[str, dict[str, Any]] = {}
        self._clocks: dict[str, ParticipantClock] = {}
        self._on_stopped = on_stopped
        self._stopping: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self.stopped_at: float | None = None
        self.log = get_logger(room=room_id, recording=self.id)
        self.writer = WriterThread(self.id, queue_frames, self._writer_failed, "mediaserver")

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=False)
        write_manifest(self.directory, self.manifest())
        (self.directory / RESERVE).write_bytes(b"\0" * RESERVE_BYTES)
        self.writer.start()
        self.log.info("recording started")

    def start_checkpoints(self) -> None:
        """On the event loop, once started: rewrite the manifest every CHECKPOINT_SECONDS."""
        if self._checkpoints is None:
            self._checkpoints = asyncio.ensure_future(self._checkpoint_loop())

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            if not self.active:
                return
            if not self.writer.full:  # else the next one (a checkpoint is never counted)
                self.writer.submit(WriteJson(self.directory / MANIFEST, self.manifest()))

    @property
    def active(self) -> bool:
        return self.state == "recording" and self._stopping is None

    def attach(self, pub: Publication) -> None:
        """Record ``pub`` from now on (one cheap call per packet on its hot path)."""
        if not self.active or pub.closed or pub.id in self.tracks:
            return
        codec = pub.track.codec.upper()
        if codec not in CODECS:
            self.log.warning("track not recorded: codec", codec=codec, publication=pub.id)
            return
        participant = pub.participant
        clock = self._clocks.setdefault(participant.id, ParticipantClock())
        key = f"{participant.id}-{pub.kind}-{pub.id}"
        last_request = [0.0]

        def request_keyframe() -> None:
            now = self.loop.time()
            if now - last_request[0] >= KEYFRAME_REQUEST_SECONDS and not pub.closed:
                last_request[0] = now
                pub.request_keyframe(now)  # sent at once

        track = TrackRecorder(
            key=key,
            codec=codec,
            clock_rate=pub.track.clock_rate,
            path=self.directory / f"{key}.{CODECS[codec].extension}",
            clock=clock,
            submit=self.writer.submit,
            request_keyframe=request_keyframe,
        )
        self.tracks[pub.id] = track
        self.track_info[pub.id] = {
            "participant_id": participant.id,
            "name": participant.name,
            "role": participant.role,
            "kind": pub.kind,
            "publication_id": pub.id,
        }
        source = pub.recording_source()  # simulcast: its top layer
        source.recorder = track
        self._sources[pub.id] = source
        if track.video:
            request_keyframe()

    def detach(self, pub: Publication) -> None:
        """The publication ended: its file ends here."""
        track = self.tracks.get(pub.id)
        source = pub.recording_source()
        if source.recorder is track:
            source.recorder = None
        if track is not None:
            track.close()

    def _writer_failed(self, exc: BaseException) -> None:
        """In the writer thread: hand the failure to the event loop."""
        self.loop.call_soon_threadsafe(self.stop_soon, "write_failed", repr(exc))

    def stop_soon(self, reason: str, detail: str | None = None) -> None:
        if self._stopping is None:
            if detail:
                self.log.warning("recording failed", detail=detail)
            self._stopping = asyncio.ensure_future(self.stop(reason))

    async def stop(self, reason: str) -> None:
        """Close every file, write the manifest; idempotent."""
        if self.state != "recording":
            return
        self.state = "stopping"
        if self._checkpoints is not None:
            self._checkpoints.cancel()
        for pub_id, track in self.tracks.items():
            track.close()
            source = self._sources.get(pub_id)
            if source is not None and source.recorder is track:
                source.recorder = None  # not recording: no call per packet
        self._sources.clear()
        self.stopped_at = time.time()
        await asyncio.to_thread(self._finish_writer)
        failed = self.writer.failed
        # the files are playable up to the failure either way
        self.reason = reason if failed is None else _failure_reason(failed)
        self.state = "ready"
        try:
            await asyncio.to_thread(self._final_manifest, self.manifest())
        except OSError as exc:
            self.log.warning("manifest not written", error=repr(exc))
        self.log.info("recording stopped", reason=self.reason, state=self.state)
        await self._on_stopped(self)

    def _final_manifest(self, manifest: dict[str, Any]) -> None:
        (self.directory / RESERVE).unlink(missing_ok=True)
        write_manifest(self.directory, manifest)

    def _finish_writer(self) -> None:
        self.writer.stop()
        self.writer.join()

    def manifest(self) -> dict[str, Any]:
        tracks = []
        for pub_id, track in self.tracks.items():
            tracks.append({**self.track_info[pub_id], **track.describe(self.started_local)})
        return {
            "id": self.id,
            "room_id": self.room_id,
            "link_id": self.link_id,
            "tenant_id": self.tenant_id,
            "state": self.state,
            "reason": self.reason,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "started_by": self.started_by,
            "dropped_by_writer": self.writer.dropped,
            "participants": _participants(tracks),
            "tracks": tracks,
        }


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk_full"
    return "write_failed"


def _participants(tracks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everyone recorded, once, in the order they were first recorded."""
    seen: dict[str, dict[str, Any]] = {}
    for t in tracks:
        pid = t["participant_id"]
        seen.setdefault(pid, {"id": pid, "name": t["name"], "role": t["role"]})
    return list(seen.values())
