"""The SDK's receiving side: answering the server's subscribe offers (and moving to a
fresh subscriber connection when the server restarts it, make before break), and the
remote tracks with who publishes them. Mixed into :class:`~.sdk.MeetingClient`,
which holds the state declared here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamTrack

from ..sfu.aiortc_speedups import SectionCache, own_descriptions, preparsed, reused_sections

__all__ = ["Receiving", "RemoteTrack"]


@dataclass
class RemoteTrack:
    """A track forwarded to us, with the identity of whoever publishes it."""

    track: MediaStreamTrack
    mid: str
    publication_id: str
    participant_id: str
    kind: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class Receiving:
    """Subscribe offers in, answers out, remote tracks registered."""

    subscriber: RTCPeerConnection | None
    remote_tracks: dict[str, RemoteTrack]
    on_track: Callable[[RemoteTrack], None] | None
    subscriber_hook: Callable[[RTCPeerConnection], None] | None
    _track_map: dict[str, dict[str, Any]]
    _sub_lock: asyncio.Lock
    _changed: asyncio.Condition
    _tasks: set[asyncio.Task[None]]
    _ids: itertools.count[int]
    _answer_ids: set[int]
    _offer_sections: SectionCache

    async def send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        raise NotImplementedError

    def _watched_pc(self, target: str) -> RTCPeerConnection:
        raise NotImplementedError

    async def _on_subscribe_offer(self, data: dict[str, Any]) -> None:
        async with self._sub_lock:
            old: RTCPeerConnection | None = None
            old_tracks: list[RemoteTrack] = []
            if data.get("restart") and self.subscriber is not None:
                # the server replaced our subscriber connection: answer on a new one, and
                # keep the old one (its media still flows) until the new one is connected
                old, self.subscriber = self.subscriber, None
                old_tracks = list(self.remote_tracks.values())
                self.remote_tracks = {}
                self._track_map = {}
            if self.subscriber is None:
                self.subscriber = self._watched_pc("subscriber")
                self.subscriber.on("track", self._on_pc_track)
                self._offer_sections = SectionCache()
            if old is not None:
                task = asyncio.ensure_future(self._retire(old, self.subscriber, old_tracks))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            previous = self._track_map
            self._track_map = dict(data.get("tracks", {}))
            # parsed once (speedups), and each m-section unchanged since the last offer
            # (a renegotiation adds one participant's) taken from it, not parsed again
            with reused_sections(self._offer_sections):
                offer = aiortc_sdp.SessionDescription.parse(data["sdp"])
            with preparsed(data["sdp"], offer):
                await self.subscriber.setRemoteDescription(
                    RTCSessionDescription(sdp=data["sdp"], type="offer")
                )
            _route_rtx_ssrcs(self.subscriber, offer)
            if self.subscriber_hook is not None:
                self.subscriber_hook(self.subscriber)
            with own_descriptions():  # aiortc does not parse its own answer back
                await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
            answer_id = next(self._ids)
            self._answer_ids = {i for i in self._answer_ids if i > answer_id - 16} | {answer_id}
            await self.send(
                {
                    "type": "subscribe_answer",
                    "sdp": self.subscriber.localDescription.sdp,
                    "revision": data.get("revision", 0),
                    "id": answer_id,
                }
            )
            for mid in set(previous) - set(self._track_map):
                remote = self.remote_tracks.get(mid)
                if remote is not None and not remote.ended.is_set():
                    remote.ended.set()
                    remote.track.stop()
            # tracks whose 'track' event fired before their identity was known
            for t in self.subscriber.getTransceivers():
                if t.mid in self._track_map and t.mid not in self.remote_tracks:
                    track = t.receiver.track
                    if track is not None:
                        self._register_track(str(t.mid), track)
        async with self._changed:
            self._changed.notify_all()

    async def _retire(
        self, old: RTCPeerConnection, new: RTCPeerConnection, tracks: list[RemoteTrack]
    ) -> None:
        """Close a replaced subscriber connection once its successor is connected (and a
        second later: the server forwards on both until the new one has media)."""
        with contextlib.suppress(TimeoutError):
            await self.wait_for(lambda: new.connectionState in ("connected", "closed"), 10.0)
            await asyncio.sleep(1.0)
        for remote in tracks:
            remote.ended.set()
        with contextlib.suppress(Exception):
            await old.close()

    def _on_pc_track(self, track: MediaStreamTrack) -> None:
        assert self.subscriber is not None
        for t in self.subscriber.getTransceivers():
            if t.receiver.track is track and t.mid is not None and t.mid in self._track_map:
                self._register_track(str(t.mid), track)

    def _register_track(self, mid: str, track: MediaStreamTrack) -> None:
        info = self._track_map[mid]
        remote = RemoteTrack(
            track=track,
            mid=mid,
            publication_id=info["publication_id"],
            participant_id=info["participant_id"],
            kind=info["kind"],
        )
        self.remote_tracks[mid] = remote
        track.on("ended", remote.ended.set)
        if self.on_track is not None:
            self.on_track(remote)

    def live_tracks(self) -> list[RemoteTrack]:
        return [t for t in self.remote_tracks.values() if not t.ended.is_set()]

    async def wait_for_tracks(self, count: int, timeout: float = 15.0) -> list[RemoteTrack]:
        await self.wait_for(lambda: len(self.live_tracks()) >= count, timeout)
        return self.live_tracks()


def _route_rtx_ssrcs(pc: RTCPeerConnection, desc: aiortc_sdp.SessionDescription) -> None:
    """Work around aiortc routing RTX only by payload type (breaks with >1 video track):
    register each m-line's RTX SSRC (from its FID group) with that m-line's receiver."""
    by_mid = {t.mid: t for t in pc.getTransceivers()}
    for media in desc.media:
        t = by_mid.get(media.rtp.muxId)
        if t is None:
            continue
        for group in media.ssrc_group:
            if group.semantic == "FID" and len(group.items) == 2:
                router = t.receiver.transport._rtp_router
                router.ssrc_table[int(group.items[1])] = t.receiver
