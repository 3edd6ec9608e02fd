"""Node registry, room placement with fenced leases, and the inter-node relay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.exceptions import RedisError

from ..state.redis_conn import RedisTarget, connect
from ..telemetry import get_logger
from .roomstate import STATE_TTL_MS
from .scripts import CLAIM, RELEASE, RENEW, SAVE_STATE, SETTLE_PLACED, SINGLETON

__all__ = ["Cluster", "Lease", "PeerGone", "RoomRevoked", "Unavailable"]

KEY_NODE = "{p}node:{node}"
KEY_NODES = "{p}nodes"
KEY_ROOM_OWNER = "{p}room:{room}:owner"
KEY_ROOM_FENCE = "{p}room:{room}:fence"
KEY_ROOM_HOST = "{p}room:{room}:host"
KEY_ROOM_STATE = "{p}room:{room}:state"
#: Set when the room's link is revoked: no claim of the room succeeds (a day).
KEY_ROOM_REVOKED = "{p}room:{room}:revoked"
REVOKED_TTL_MS = 86_400_000
CHANNEL_RELAY = "{p}relay:{node}"
KEY_SINGLETON = "{p}singleton:{name}"
KEY_PLACED = "{p}placed:{node}"


class Unavailable(Exception):
    """Redis cannot be reached: cluster decisions (placement) are impossible now."""


class RoomRevoked(Exception):
    """The room's link was revoked: no node may claim (open) it."""


class PeerGone(Unavailable):
    """A relay message found no subscriber on the other node for ``relay_timeout``."""


@dataclass(frozen=True)
class Lease:
    room: str
    node: str
    token: int

    @property
    def value(self) -> str:
        return f"{self.node}|{self.token}"

    @classmethod
    def parse(cls, room: str, value: str) -> Lease:
        node, _, token = value.rpartition("|")
        return cls(room, node, int(token))


class Cluster:
    def __init__(
        self,
        redis_url: str | RedisTarget,
        node_id: str,
        *,
        lease_seconds: float,
        heartbeat_seconds: float,
        prefix: str = "ms:",
        load: Callable[[], int] = lambda: 0,
    ) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self.lease_ms = int(lease_seconds * 1000)
        self.heartbeat = heartbeat_seconds
        #: How long a relay message is retried while the other node does not listen.
        self.relay_timeout = max(2.0, 2 * heartbeat_seconds)
        self.load = load
        self.draining = False
        self.held_since_beat = 0  # rooms this node started hosting since its heartbeat
        self.redis = connect(redis_url, timeout=1.0)
        self._claim = self.redis.register_script(CLAIM)
        self._renew = self.redis.register_script(RENEW)
        self._release = self.redis.register_script(RELEASE)
        self._singleton = self.redis.register_script(SINGLETON)
        self._save_state = self.redis.register_script(SAVE_STATE)
        self._settle_placed = self.redis.register_script(SETTLE_PLACED)
        #: The state of a room (roomstate.snapshot), None when it is not open here.
        self.room_state: Callable[[str], str | None] = lambda room: None
        self.saved_state: dict[str, str] = {}  # last written, per held room
        #: States read with a new lease, for the room about to open here.
        self.restored: dict[str, bytes] = {}
        self.leases: dict[str, Lease] = {}  # rooms this node holds
        self.held_since: dict[str, float] = {}
        #: Per held room, when its lease may expire in Redis at the earliest (monotonic:
        #: the start of the last successful renewal + the lease).
        self.valid_until: dict[str, float] = {}
        #: Fence this long before ``valid_until`` (clock rates of this host and Redis).
        self.fence_margin = min(0.2, lease_seconds / 20)
        #: Called with (room, monotonic time after which its media must stop).
        self.on_valid_until: Callable[[str, float], None] | None = None
        #: Whether a room is open here (a lease whose room never opened is released).
        self.has_room: Callable[[str], bool] = lambda room: True
        self.on_relay: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.on_lease_lost: Callable[[str], Awaitable[None]] | None = None
        self.healthy = False
        #: Until then (monotonic) this node does not judge other nodes dead: it has just
        #: (re)connected, or Redis has just restarted (keys that expired meanwhile are
        #: missing for live nodes too, until their next heartbeat).
        self.judge_after = time.monotonic() + lease_seconds
        self.log = get_logger(node=node_id, component="cluster")
        self._tasks: list[asyncio.Task[None]] = []
        self.started = time.time()

    def _k(self, template: str, **kw: str) -> str:
        return template.format(p=self.prefix, **kw)

    # --- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.beat()
        except RedisError as exc:
            self.log.warning("redis unavailable at start-up", error=str(exc))
        self._tasks = [
            asyncio.ensure_future(self._heartbeat_loop()),
            asyncio.ensure_future(self._relay_loop()),
            asyncio.ensure_future(self._fence_loop()),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(RedisError, OSError):
            for lease in list(self.leases.values()):
                await self.release(lease)
            await self.redis.delete(self._k(KEY_NODE, node=self.node_id))
        await self.redis.aclose()

    async def beat(self) -> None:
        info = {
            "id": self.node_id,
            "load": self.load(),
            "draining": self.draining,
            "started": self.started,
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self._k(KEY_NODE, node=self.node_id), json.dumps(info), px=self.lease_ms)
        pipe.sadd(self._k(KEY_NODES), self.node_id)
        # rooms placed here that this node holds now are counted in "load" from now on
        held, self.held_since_beat = self.held_since_beat, 0
        await self._settle_placed(
            keys=[self._k(KEY_PLACED, node=self.node_id)], args=[held], client=pipe
        )
        pipe.info("server")
        try:
            results = await pipe.execute()
        except BaseException:
            self.held_since_beat += held
            raise
        now = time.monotonic()
        if not self.healthy:  # (re)connected: registered again, now wait for the others
            self.judge_after = max(self.judge_after, now + self.lease_ms / 1000)
        uptime = float(results[-1].get("uptime_in_seconds", 1e9))
        if uptime * 1000 < self.lease_ms:  # Redis restarted: its registry is not complete
            self.judge_after = max(self.judge_after, now + self.lease_ms / 1000 - uptime)
        self.healthy = True

    @property
    def can_judge(self) -> bool:
        """Whether a missing registration means a dead node (not just "unknown")."""
        return self.healthy and time.monotonic() >= self.judge_after

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                # leases first: a node key that is back means its leases are back too
                await self._renew_leases()
                await self.beat()
            except (RedisError, OSError) as exc:
                if self.healthy:
                    self.log.warning("redis unavailable", error=str(exc))
                self.healthy = False
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("heartbeat failed")
            # while Redis is away, try more often: re-register as soon as it is back
            await asyncio.sleep(self.heartbeat if self.healthy else min(self.heartbeat, 0.2))

    async def _renew_leases(self) -> None:
        for room, lease in list(self.leases.items()):
            age = time.monotonic() - self.held_since.get(room, 0.0)
            if not self.has_room(room) and age > 2 * self.heartbeat:
                await self.release(lease)  # the join was refused: no room here
                continue
            if await self._fence_if_expired(room):
                continue
            started = time.monotonic()
            result = await self._renew(
                keys=[self._k(KEY_ROOM_OWNER, room=room)], args=[lease.value, self.lease_ms]
            )
            if self.leases.get(room) != lease:
                continue
            if int(result) == 0:  # someone else holds the room now: never touch it again
                await self._drop(room, "room lease lost")
            elif self.valid_until.get(room, 0.0) > started:  # not fenced meanwhile
                self._valid(room, started + self.lease_ms / 1000)
                await self.save_state(lease)

    async def save_state(self, lease: Lease, *, delete: bool = False) -> None:
        """Write the room's state if it changed (fenced: only while the lease is ours);
        ``delete``: the meeting is over, drop it."""
        state = "" if delete else self.room_state(lease.room)
        if state is None or (not delete and self.saved_state.get(lease.room) == state):
            return
        await self._save_state(
            keys=[
                self._k(KEY_ROOM_OWNER, room=lease.room),
                self._k(KEY_ROOM_STATE, room=lease.room),
            ],
            args=[lease.value, state, STATE_TTL_MS],
        )
        self.saved_state[lease.room] = state

    def _valid(self, room: str, until: float) -> None:
        self.valid_until[room] = until
        if self.on_valid_until is not None:
            self.on_valid_until(room, until - self.fence_margin)

    async def _fence_if_expired(self, room: str) -> bool:
        """Self-fencing: a lease that may have expired in Redis (renewals failed, or this
        process was paused) is given up before another node can take the room."""
        if time.monotonic() < self.valid_until.get(room, 0.0) - self.fence_margin:
            return False
        await self._drop(room, "room lease expired: fenced")
        return True

    async def _drop(self, room: str, why: str) -> None:
        self.leases.pop(room, None)
        self.valid_until.pop(room, None)
        self.saved_state.pop(room, None)
        self.log.warning(why, room=room)
        if self.on_lease_lost is not None:
            await self.on_lease_lost(room)

    async def _fence_loop(self) -> None:
        """Runs apart from the heartbeat, which may be stuck on an unreachable Redis."""
        while True:
            try:
                for room in list(self.leases):
                    await self._fence_if_expired(room)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("fencing failed")
            await asyncio.sleep(min(0.1, self.fence_margin))

    # --- registry and placement ----------------------------------------------------

    async def live_nodes(self) -> list[dict[str, Any]]:
        try:
            members = await self.redis.smembers(self._k(KEY_NODES))
            ids = sorted(x.decode() if isinstance(x, bytes) else str(x) for x in members)
            if not ids:
                return []
            values = await self.redis.mget([self._k(KEY_NODE, node=n) for n in ids])
        except (RedisError, OSError) as exc:
            raise Unavailable(str(exc)) from None
        nodes = []
        dead = []
        for node, raw in zip(ids, values, strict=True):
            if raw is None:
                dead.append(node)
            else:
                nodes.append(json.loads(raw))
        if dead and self.can_judge:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.srem(self._k(KEY_NODES), *dead)
        return nodes

    async def is_alive(self, node: str) -> bool:
        """False only for a node known dead: its registration expired, read from a Redis
        that kept it for a lease, by a node that has been connected for a lease."""
        if not self.can_judge:
            return True  # cannot tell (an outage, a reconnect, a Redis restart)
        try:
            alive = bool(await self.redis.exists(self._k(KEY_NODE, node=node)))
        except (RedisError, OSError):
            return True
        return alive or not self.can_judge

    async def claim(self, room: str) -> Lease:
        """The lease of ``room``: the live holder's, or a new one for the least-loaded
        live node (atomic: concurrent first joins through different nodes agree)."""
        nodes = [n for n in await self.live_nodes() if not n.get("draining")]
        if not nodes:
            raise Unavailable("no live node can host rooms")
        nodes.sort(key=lambda n: (n["load"], n["id"] != self.node_id, n["id"]))
        candidates = [str(x) for n in nodes for x in (n["id"], int(n["load"]))]
        try:
            value = await self._claim(
                keys=[
                    self._k(KEY_ROOM_OWNER, room=room),
                    self._k(KEY_ROOM_FENCE, room=room),
                    self._k(KEY_ROOM_HOST, room=room),
                    self._k(KEY_ROOM_REVOKED, room=room),
                ],
                args=[
                    "",
                    self.lease_ms,
                    self._k(KEY_NODE, node=""),
                    "1" if self.can_judge else "0",
                    str(math.ceil(self.lease_ms / 1000)),
                    self._k(KEY_PLACED, node=""),
                    *candidates,
                ],
            )
        except (RedisError, OSError) as exc:
            raise Unavailable(str(exc)) from None
        if value in (b"revoked", "revoked"):
            raise RoomRevoked(room)
        if not value:
            raise Unavailable("the room's host is not known yet (Redis just came back)")
        lease = Lease.parse(room, value.decode() if isinstance(value, bytes) else str(value))
        return lease

    async def mark_revoked(self, room: str) -> None:
        """From now on no claim of ``room`` succeeds (checked inside the claim script)."""
        try:
            await self.redis.set(self._k(KEY_ROOM_REVOKED, room=room), b"1", px=REVOKED_TTL_MS)
        except (RedisError, OSError) as exc:
            raise Unavailable(str(exc)) from None

    async def singleton(self, name: str) -> bool:
        """True while this node runs the cluster-wide job ``name`` (a renewed lease)."""
        try:
            got = await self._singleton(
                keys=[self._k(KEY_SINGLETON, name=name)], args=[self.node_id, self.lease_ms]
            )
        except (RedisError, OSError):
            return False
        return int(got) == 1

    async def owner_of(self, room: str) -> str | None:
        """The node holding ``room`` now, if any."""
        try:
            value = await self.redis.get(self._k(KEY_ROOM_OWNER, room=room))
        except (RedisError, OSError):
            return None
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.rpartition("|")[0]

    async def hold(self, lease: Lease) -> bool:
        """This node starts hosting ``lease.room``; False if the lease is stale."""
        if lease.node != self.node_id:
            return False
        started = time.monotonic()
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(self._k(KEY_ROOM_OWNER, room=lease.room))
            pipe.pttl(self._k(KEY_ROOM_OWNER, room=lease.room))
            pipe.get(self._k(KEY_ROOM_STATE, room=lease.room))
            current, ttl_ms, state = await pipe.execute()
        except (RedisError, OSError):
            return False  # outage: the lease cannot be checked
        if (
            current is None
            or (current.decode() if isinstance(current, bytes) else str(current)) != lease.value
        ):
            return False
        self.leases[lease.room] = lease
        self.held_since[lease.room] = time.monotonic()
        self.held_since_beat += 1
        if state is not None:
            self.restored[lease.room] = state
            self.saved_state[lease.room] = state.decode() if isinstance(state, bytes) else state
        self._valid(lease.room, started + max(int(ttl_ms), 0) / 1000)
        return True

    async def release(self, lease: Lease) -> None:
        if self.leases.get(lease.room) == lease:
            del self.leases[lease.room]
            self.valid_until.pop(lease.room, None)
            self.saved_state.pop(lease.room, None)
            self.restored.pop(lease.room, None)
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[self._k(KEY_ROOM_OWNER, room=lease.room)], args=[lease.value])

    # --- relay -----------------------------------------------------------------------

    async def send(self, node: str, message: dict[str, Any]) -> None:
        """Publish ``message`` to ``node``. Nobody subscribed (PUBLISH = 0: the node is
        resubscribing after a reconnect, or gone) and Redis errors are retried for
        ``relay_timeout``; then :class:`PeerGone` / :class:`Unavailable`."""
        deadline = time.monotonic() + self.relay_timeout
        delay = 0.05
        while True:
            try:
                if await self.publish(node, message) > 0:
                    return
                failure: Unavailable = PeerGone(f"{node} does not listen")
            except Unavailable as exc:
                failure = exc
            if time.monotonic() + delay > deadline:
                self.log.warning("relay message undelivered", to=node, error=str(failure))
                raise failure
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def publish(self, node: str, message: dict[str, Any]) -> int:
        """One PUBLISH to ``node``'s relay channel: how many subscribers got it."""
        try:
            return int(
                await self.redis.publish(
                    self._k(CHANNEL_RELAY, node=node), msgpack.packb(message, use_bin_type=True)
                )
            )
        except (RedisError, OSError) as exc:
            raise Unavailable(str(exc)) from None

    async def _relay_loop(self) -> None:
        channel = self._k(CHANNEL_RELAY, node=self.node_id)
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    data = msgpack.unpackb(msg["data"], raw=False)
                    if self.on_relay is not None:
                        try:
                            await self.on_relay(data)
                        except Exception:
                            self.log.exception("relay message failed")
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError):
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(0.5)  # Redis away: retry the subscription
