"""Starting and stopping a room's recording, and telling everyone in it.

Everyone admitted gets ``{"type": "recording", "active": ...}`` whenever the state
changes, and ``joined.recording`` says whether the meeting is being recorded
(docs/protocol.md, "Recording")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .session import RoomRecording, mark_interrupted

if TYPE_CHECKING:
    from ..sfu.participant import Participant
    from ..sfu.publication import Publication
    from ..sfu.room import Room

__all__ = [
    "RecordingRefused",
    "mark_interrupted_at_startup",
    "on_first_join",
    "on_published",
    "recording_state",
    "start_recording",
    "stop_recording",
]


class RecordingRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def recording_state(room: Room) -> dict[str, Any]:
    """The ``recording`` object of ``joined`` and of the lobby's notice."""
    rec = room.recording
    active = rec is not None and rec.active
    return {
        "active": active,
        "policy": room.recording_policy,
        "recording_id": rec.id if rec is not None and active else None,
    }


async def start_recording(room: Room, by: Participant | None = None) -> RoomRecording:
    """Start recording ``room`` (idempotent while a recording runs)."""
    if room.recording_policy == "off":
        raise RecordingRefused("forbidden", "recording is off for this meeting")
    if room.closed:
        raise RecordingRefused("bad_state", "the meeting has ended")
    current = room.recording
    if current is not None and current.active:
        return current
    config = room.manager.config

    async def stopped(rec: RoomRecording) -> None:
        if room.recording is rec:
            room.recording = None
        _count(room, rec)
        room.manager.emit(
            room, "recording.ready", {"recording_id": rec.id, "recording": rec.manifest()}
        )
        await _tell_everyone(
            room,
            {"type": "recording", "active": False, "recording_id": rec.id, "reason": rec.reason},
        )

    rec = RoomRecording(
        room_id=room.id,
        root=Path(config.recording_directory),
        queue_frames=config.recording.queue_frames,
        loop=asyncio.get_running_loop(),
        on_stopped=stopped,
        started_by=by.id if by is not None else None,
        link_id=room.link_id,
        tenant_id=room.tenant_id,
    )
    room.recording = rec  # before the await: a second start meanwhile gets this one
    room.manager.metrics.recordings.inc()
    try:
        await asyncio.to_thread(rec.start)
    except OSError as exc:
        if room.recording is rec:
            room.recording = None
        room.manager.metrics.recordings.dec()
        raise RecordingRefused("bad_state", f"cannot write recordings: {exc.strerror}") from None
    if not rec.active:  # stopped while starting (the meeting ended)
        return rec
    for participant in room.participants.values():
        for pub in participant.publications.values():
            rec.attach(pub)
    rec.start_checkpoints()
    room.manager.emit(
        room,
        "recording.started",
        {"recording_id": rec.id, "by": rec.started_by, "recording": rec.manifest()},
    )
    await _tell_everyone(
        room, {"type": "recording", "active": True, "recording_id": rec.id, "by": rec.started_by}
    )
    return rec


def _count(room: Room, rec: RoomRecording) -> None:
    metrics = room.manager.metrics
    metrics.recordings.dec()
    metrics.recordings_stopped.labels(rec.reason or "stopped").inc()
    for track in rec.tracks.values():
        kind = "video" if track.video else "audio"
        metrics.recorded_frames.labels(kind).inc(track.frames)
        metrics.recording_dropped_frames.labels("assembly").inc(track.assembly_dropped)
        metrics.recording_dropped_frames.labels("queue").inc(track.dropped_queue)


async def _tell_everyone(room: Room, message: dict[str, Any]) -> None:
    """Participants and the guests waiting in the lobby."""
    await room.broadcast(message)
    await room.lobby.tell_waiting(message)


async def stop_recording(room: Room, reason: str = "stopped") -> RoomRecording | None:
    rec = room.recording
    if rec is None:
        return None
    await rec.stop(reason)
    return rec


async def on_first_join(room: Room) -> None:
    """A meeting whose policy is "always" is recorded from its first participant."""
    if room.recording_policy == "always" and room.recording is None:
        try:
            await start_recording(room)
        except RecordingRefused as exc:
            room.log.warning("recording not started", reason=exc.message)


def on_published(room: Room, pubs: list[Publication]) -> None:
    rec = room.recording
    if rec is not None:
        for pub in pubs:
            rec.attach(pub)


def mark_interrupted_at_startup(directory: str) -> list[dict[str, Any]]:
    return mark_interrupted(Path(directory))
