"""Logging set-up and every Prometheus metric, in one place.

Metrics live in their own registry (not the process-global default) so several apps in
one process (tests) do not collide. The hot path never touches prometheus objects:
it counts in plain ints and :meth:`Metrics.flush_forwarding` adds them up periodically.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "configure_logging", "get_logger"]


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """structlog to stderr, JSON by default; stdlib logging routed the same way."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiohttp, aiortc, aioice) log through stdlib logging: render those
    # records with the same processors so every line on stderr has the same format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
        )
    )
    logging.basicConfig(level=max(lvl, logging.WARNING), handlers=[handler], force=True)


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("mediaserver").bind(**bound)


class Metrics:
    """Every metric the server exports (units in the names)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.rooms = Gauge("mediaserver_rooms", "Rooms open on this node", registry=r)
        self.participants = Gauge(
            "mediaserver_participants", "Participants joined on this node", registry=r
        )
        self.publications = Gauge(
            "mediaserver_publications", "Tracks being published", ["kind"], registry=r
        )
        self.forwarded_packets = Counter(
            "mediaserver_forwarded_packets_total",
            "RTP packets forwarded to subscribers",
            ["kind"],
            registry=r,
        )
        self.forwarded_bytes = Counter(
            "mediaserver_forwarded_bytes_total",
            "RTP bytes (clear) forwarded to subscribers",
            ["kind"],
            registry=r,
        )
        self.received_packets = Counter(
            "mediaserver_received_packets_total",
            "RTP packets received from publishers",
            ["kind"],
            registry=r,
        )
        self.rtcp_feedback = Counter(
            "mediaserver_rtcp_feedback_total",
            "RTCP feedback received from subscribers",
            ["type"],  # pli, fir, nack, remb
            registry=r,
        )
        self.keyframe_requests = Counter(
            "mediaserver_keyframe_requests_sent_total",
            "PLIs sent to publishers (after throttling)",
            registry=r,
        )
        self.nacks_sent = Counter(
            "mediaserver_nacks_sent_total",
            "NACKed sequence numbers sent to publishers",
            registry=r,
        )
        self.rtx_sent = Counter(
            "mediaserver_rtx_packets_sent_total",
            "Retransmissions sent to subscribers in answer to NACKs",
            registry=r,
        )
        self.join_duration = Histogram(
            "mediaserver_join_duration_seconds",
            "From join request to joined reply",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.join_connected = Histogram(
            "mediaserver_join_connected_seconds",
            "From the join request (message received) to the participant's first"
            " publisher connection connected (joins that publish)",
            buckets=(0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2.5, 5, 10),
            registry=r,
        )
        self.signalling_errors = Counter(
            "mediaserver_signalling_errors_total",
            "Error replies sent to signalling clients",
            ["code"],
            registry=r,
        )
        self.websockets = Gauge(
            "mediaserver_websocket_connections", "Open signalling connections", registry=r
        )
        self.knocks = Counter(
            "mediaserver_lobby_knocks_total", "Guests who entered a waiting room", registry=r
        )
        self.admits = Counter(
            "mediaserver_lobby_admits_total", "Knocks admitted by a host", registry=r
        )
        self.refusals = Counter(
            "mediaserver_lobby_refusals_total", "Knocks refused by a host", registry=r
        )
        self.lobby_timeouts = Counter(
            "mediaserver_lobby_timeouts_total", "Knocks that waited too long", registry=r
        )
        self.lobby_wait = Histogram(
            "mediaserver_lobby_wait_seconds",
            "Time from knock to admission, refusal or timeout",
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.removals = Counter(
            "mediaserver_participants_removed_total", "Participants removed by a host", registry=r
        )
        self.recordings = Gauge(
            "mediaserver_recordings", "Meetings being recorded on this node", registry=r
        )
        self.recordings_stopped = Counter(
            "mediaserver_recordings_stopped_total",
            "Recordings that ended, by reason (disk_full, write_failed, room_closed, ...)",
            ["reason"],
            registry=r,
        )
        self.recorded_frames = Counter(
            "mediaserver_recorded_frames_total",
            "Frames written to recordings (counted when a recording ends)",
            ["kind"],
            registry=r,
        )
        self.recording_dropped_frames = Counter(
            "mediaserver_recording_dropped_frames_total",
            "Frames not recorded: incomplete or waiting for a keyframe (assembly), or the"
            " writer's queue was full (queue); counted when a recording ends",
            ["cause"],
            registry=r,
        )
        self.simulcast_layers_bound = Gauge(
            "mediaserver_simulcast_layers_bound",
            "Simulcast layers (rids) of live publications whose SSRC is bound",
            registry=r,
        )
        self.layer_switches = Counter(
            "mediaserver_simulcast_layer_switches_total",
            "Subscriber outputs moved to another simulcast layer (at a keyframe)",
            registry=r,
        )

    def flush_forwarding(self, kind: str, packets: int, octets: int, received: int) -> None:
        if packets:
            self.forwarded_packets.labels(kind).inc(packets)
            self.forwarded_bytes.labels(kind).inc(octets)
        if received:
            self.received_packets.labels(kind).inc(received)
