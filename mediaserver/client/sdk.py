"""Python client SDK: connect, join, publish aiortc tracks, receive remote tracks.

    client = MeetingClient("ws://127.0.0.1:8080/ws", name="Ada", ice_addresses=["127.0.0.1"])
    await client.connect()
    await client.join("standup", token)           # a room token (mediaserver room-token)
    await client.publish([audio_track, video_track])
    remote = await client.wait_for_tracks(2)      # RemoteTrack(track, participant_id, ...)
    await client.leave()

Used by the tests and the load bots; speaks signalling protocol v1 (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from ..sfu.aiortc_speedups import SectionCache
from ..sfu.peer import IdleTrack, configure_ice_addresses, make_configuration
from . import liveness
from .receiving import Receiving, RemoteTrack

__all__ = ["BUSY_RETRIES", "ClientError", "MeetingClient", "RemoteTrack"]

PROTOCOL_VERSION = 1
#: A ``publish`` refused with ``busy`` is sent again this many times at most.
BUSY_RETRIES = 12


class ClientError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class MeetingClient(Receiving):
    def __init__(
        self,
        url: str,
        *,
        name: str,
        ice_addresses: Sequence[str] | None = None,
        ice_servers: Sequence[dict[str, Any]] = (),
        reconnect_urls: Sequence[str] = (),
        reconnect_seconds: float = 0.0,
        ping_seconds: float = 10.0,
        ping_timeout: float = 5.0,
        ice_transport_policy: str = "all",
    ) -> None:
        """``reconnect_seconds`` > 0: when the connection drops (or the meeting moves to
        another server), reconnect for up to that long, trying ``url`` then each of
        ``reconnect_urls``; rejoin and republish (see :meth:`publish_with`). Then also
        a ``ping`` every ``ping_seconds`` unanswered for ``ping_timeout`` counts as a
        dropped connection (:mod:`.liveness`). A peer connection whose ICE failed is
        replaced over the same signalling connection (:meth:`restart_media`)."""
        self.ping_seconds = ping_seconds
        self.ping_timeout = ping_timeout
        self._keepalive: asyncio.Task[None] | None = None
        self.url = url
        self.urls = [url, *reconnect_urls]
        self.reconnect_seconds = reconnect_seconds
        self.reconnects = 0
        self.media_restarts = 0
        self.busy_retries = 0  # publish sent again after busy
        self._join_message: dict[str, Any] | None = None
        self._publish_factory: Callable[[], Sequence[MediaStreamTrack]] | None = None
        self._leaving = False
        self._reconnecting: asyncio.Task[None] | None = None
        self.name = name
        #: Given ones win; otherwise those of each ``joined`` (TURN credentials are fresh).
        self.ice_servers = list(ice_servers)
        self._own_ice_servers = bool(ice_servers)
        self.ice_transport_policy = ice_transport_policy  # "relay": TURN candidates only
        if ice_addresses is not None:
            configure_ice_addresses(ice_addresses)
        self.participant_id: str | None = None
        self.room: str | None = None
        #: The participant key of the meeting (from ``joined`` or ``lobby``): sent with
        #: every later join, reconnects included, so that a removal holds against this
        #: client. Settable (e.g. to keep it across processes); None: none yet.
        self.key: str | None = None
        self.participants: dict[str, dict[str, Any]] = {}
        self.remote_tracks: dict[str, RemoteTrack] = {}  # by mid
        self.publications: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.publisher: RTCPeerConnection | None = None
        self.subscriber: RTCPeerConnection | None = None
        self.on_track: Callable[[RemoteTrack], None] | None = None
        #: Called with the subscriber connection after each remote description is set
        #: (load bots use it to count packets without decoding).
        self.subscriber_hook: Callable[[RTCPeerConnection], None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._track_map: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Condition()
        self._sub_lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: ids of our recent subscribe answers: a refused one restarts the subscriber
        self._answer_ids: set[int] = set()
        #: the subscriber connection's last offer, by m-section (parsed once: receiving.py)
        self._offer_sections = SectionCache()

    def _configuration(self) -> Any:
        return make_configuration(self.ice_servers, self.ice_transport_policy)

    # --- connection -----------------------------------------------------------------

    async def connect(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self.closed.clear()
        self._ws = await self._session.ws_connect(
            self.url, max_msg_size=4 << 20, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
        )
        self._reader = asyncio.ensure_future(self._read())
        await self.request({"type": "hello", "version": PROTOCOL_VERSION, "client": "python-sdk"})
        if self.reconnect_seconds > 0 and self.ping_seconds > 0:
            await liveness.cancel(self._keepalive)
            self._keepalive = asyncio.ensure_future(
                liveness.keepalive(
                    self.request,
                    self._close_socket,
                    interval=self.ping_seconds,
                    timeout=self.ping_timeout,
                )
            )

    async def send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None, "connect() first"
        await self._ws.send_str(json.dumps(message))

    async def request(self, message: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send a message carrying an ``id``; wait for the reply or error with that ref."""
        ref = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ref] = fut
        try:
            await self.send({**message, "id": ref})
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(ref, None)
        if reply.get("type") == "error":
            raise ClientError(str(reply.get("code")), str(reply.get("message")))
        return reply

    async def wait_message(self, mtype: str, timeout: float = 15.0) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(mtype, []).append(fut)
        return await asyncio.wait_for(fut, timeout)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                await self._handle(data)
        finally:
            self.closed.set()
            if (
                self.reconnect_seconds > 0
                and not self._leaving
                and self._join_message is not None
                and (self._reconnecting is None or self._reconnecting.done())
            ):
                self._reconnecting = asyncio.ensure_future(self._reconnect())
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("signalling connection closed"))

    async def _handle(self, data: dict[str, Any]) -> None:
        mtype = data.get("type")
        ref = data.get("ref")
        if mtype == "error":
            self.errors.append(data)
            if ref in self._answer_ids and data.get("code") != "bad_state":
                # The server refused our answer: its offer would stay outstanding and
                # this subscriber connection stuck. Ask for a fresh one. (bad_state: a
                # stale revision; the newer offer is on its way.)
                self._answer_ids.discard(ref)
                task = asyncio.ensure_future(self.restart_media("subscriber", self.subscriber))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        else:
            self.events.append(data)
        if ref is not None and ref in self._pending and not self._pending[ref].done():
            self._pending[ref].set_result(data)
        for fut in self._waiters.pop(str(mtype), []):
            if not fut.done():
                fut.set_result(data)
        if mtype in ("joined", "lobby") and isinstance(data.get("key"), str):
            self.key = data["key"]
        if mtype == "joined":
            self.participant_id = data["participant_id"]
            self.room = data["room"]
            if not self._own_ice_servers:
                self.ice_servers = list(data.get("ice_servers") or [])
            for p in data["participants"]:
                self.participants[p["id"]] = p
        elif mtype == "participant_joined":
            self.participants[data["participant"]["id"]] = data["participant"]
        elif mtype == "participant_left":
            self.participants.pop(data["participant_id"], None)
        elif mtype == "room_closed" and data.get("reason") in ("moved", "server_shutdown"):
            if self.reconnect_seconds > 0 and self._ws is not None:
                task = asyncio.ensure_future(self._close_socket())  # the reader reconnects
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif mtype == "subscribe_offer":
            task = asyncio.ensure_future(self._on_subscribe_offer(data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        async with self._changed:
            self._changed.notify_all()

    # --- room -----------------------------------------------------------------------

    async def join(self, room: str, token: str) -> dict[str, Any]:
        """Join an ad-hoc room with a room token (minted by ``mediaserver room-token`` or
        ``POST /v1/rooms/{room}/tokens``); the token decides the name and role."""
        return await self.join_with({"type": "join", "room": room, "token": token})

    async def join_with(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send a join message (by room or by link); remembered for reconnects. The
        participant key, if the client has one, is added (unless the message has one)."""
        self._join_message = dict(message)
        return await self.request(self._with_key(message))

    def _with_key(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.key is None or "key" in message:
            return message
        return {**message, "key": self.key}

    async def publish_with(
        self, factory: Callable[[], Sequence[MediaStreamTrack]]
    ) -> list[dict[str, Any]]:
        """Publish ``factory()``'s tracks, and fresh ones from it after a reconnect."""
        self._publish_factory = factory
        return await self.publish(factory())

    async def _close_socket(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def _reconnect(self) -> None:
        """The connection dropped: the room may have moved to another node."""
        for pc in (self.publisher, self.subscriber):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        self.publisher = self.subscriber = None
        self._track_map = {}
        for remote in self.remote_tracks.values():
            remote.ended.set()
        self.remote_tracks = {}
        deadline = asyncio.get_running_loop().time() + self.reconnect_seconds
        delay = 0.2
        attempt = 0
        while asyncio.get_running_loop().time() < deadline and not self._leaving:
            self.url = self.urls[attempt % len(self.urls)]
            attempt += 1
            try:
                await asyncio.wait_for(self.connect(), 5.0)  # a silent node: next URL
                assert self._join_message is not None
                await self.request(self._with_key(self._join_message))
                if self._publish_factory is not None:
                    await self.publish(self._publish_factory())
                self.reconnects += 1
                return
            except (ClientError, OSError, aiohttp.ClientError, ConnectionError, TimeoutError):
                if self._ws is not None:
                    with contextlib.suppress(Exception):
                        await self._ws.close()
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    async def publish(
        self, tracks: Sequence[MediaStreamTrack], *, video_codec: str | None = None
    ) -> list[dict[str, Any]]:
        """Publish aiortc tracks (one negotiation); returns the server's publications.

        ``video_codec`` ("VP8" or "H264") restricts video tracks to that codec.
        """
        if self.publisher is None:
            self.publisher = self._watched_pc("publisher")
        for track in tracks:
            transceiver = self.publisher.addTransceiver(track, direction="sendonly")
            if video_codec and track.kind == "video":
                caps = RTCRtpSender.getCapabilities("video").codecs
                wanted = f"video/{video_codec}".lower()
                transceiver.setCodecPreferences(
                    [c for c in caps if c.mimeType.lower() in (wanted, "video/rtx")]
                )
        await self.publisher.setLocalDescription(await self.publisher.createOffer())
        local = self.publisher.localDescription
        reply = await self._publish_request({"type": "publish", "sdp": local.sdp})
        await self.publisher.setRemoteDescription(
            RTCSessionDescription(sdp=reply["sdp"], type="answer")
        )
        self.publications = list(reply["publications"])
        return self.publications

    async def _publish_request(self, message: dict[str, Any]) -> dict[str, Any]:
        """``publish``, sent again after ``busy`` (the node is applying as many SDPs as
        it allows: "try again in a moment", protocol.md §4) with a growing pause, up to
        :data:`BUSY_RETRIES` times; ``busy_retries`` counts them."""
        for attempt in range(BUSY_RETRIES + 1):
            try:
                return await self.request(message)
            except ClientError as exc:
                if exc.code != "busy" or attempt == BUSY_RETRIES:
                    raise
            self.busy_retries += 1
            await asyncio.sleep(min(1.0, 0.05 * 2 ** (attempt + 1)))
        raise AssertionError("unreachable")

    def _watched_pc(self, target: str) -> RTCPeerConnection:
        """A peer connection whose failure starts media recovery (aiortc reports
        "failed" when ICE consent or DTLS fails)."""
        pc = RTCPeerConnection(self._configuration())

        @pc.on("connectionstatechange")
        def _changed() -> None:
            if pc.connectionState == "failed" and not self._leaving and not self.closed.is_set():
                task = asyncio.ensure_future(self.restart_media(target, pc))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        return pc

    async def restart_media(self, target: str, failed: RTCPeerConnection | None = None) -> None:
        """Replace the publisher or subscriber connection with a fresh one, without
        leaving: the publisher re-offers its tracks (``publish`` with ``restart``, the
        publications keep their ids); the subscriber asks for a fresh offer."""
        current = self.publisher if target == "publisher" else self.subscriber
        if current is None or (failed is not None and current is not failed):
            return  # already replaced
        self.media_restarts += 1
        if target == "subscriber":
            async with self._sub_lock:
                self.subscriber = None
                for remote in self.remote_tracks.values():
                    remote.ended.set()
                self.remote_tracks, self._track_map = {}, {}
            with contextlib.suppress(Exception):
                await current.close()
            await self.request({"type": "restart_subscriber"})
            return
        tracks = []
        for t in current.getTransceivers():
            if t.sender.track is not None:
                # aiortc stops the track of a stopped sender: keep ours alive
                tracks.append(t.sender.track)
                t.sender.replaceTrack(IdleTrack(t.sender.track.kind))
        self.publisher = pc = self._watched_pc("publisher")
        with contextlib.suppress(Exception):
            await current.close()
        for track in tracks:
            pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self._publish_request(
            {"type": "publish", "sdp": pc.localDescription.sdp, "restart": True}
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        self.publications = list(reply["publications"])

    async def set_muted(self, publication_id: str, muted: bool) -> None:
        await self.send({"type": "mute", "publication_id": publication_id, "muted": muted})

    async def set_video_size(self, publication_id: str, width: int, height: int) -> None:
        """Layer preference: the size this client renders a video at (0, 0: not shown,
        nothing is forwarded); the server picks the simulcast layer from it."""
        await self.send(
            {
                "type": "video_size",
                "publication_id": publication_id,
                "width": width,
                "height": height,
            }
        )

    async def pin(self, participant_id: str, pinned: bool = True) -> list[str]:
        """Pin (or unpin) a participant: with ``rooms.last_n`` its camera video reaches
        us even outside the last N. Returns our pins; :class:`ClientError` ``not_found``
        or ``too_many_pins``. Pins last for this membership (not across a reconnect)."""
        reply = await self.request(
            {"type": "pin", "participant_id": participant_id, "pinned": pinned}
        )
        return [str(p) for p in reply["participant_ids"]]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # arrives as the inner wait finishes (CPython gh-86296), and this loop would go on
        async with asyncio.timeout(timeout), self._changed:
            # messages notify the condition; track ends (RTCP BYE) do not: poll as well
            while not predicate():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await self._changed.wait()

    # --- teardown -------------------------------------------------------------------

    async def leave(self) -> None:
        self._leaving = True
        with contextlib.suppress(Exception):
            await self.request({"type": "leave"}, timeout=5.0)
        await self.close()

    async def close(self) -> None:
        self._leaving = True
        await liveness.cancel(self._keepalive)
        if self._reconnecting is not None and not self._reconnecting.done():
            self._reconnecting.cancel()
        for pc in (self.publisher, self.subscriber):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5.0)
        if self._session is not None:
            await self._session.close()
