"""The server's own join timing, read from its Prometheus /metrics by the bots.

``mediaserver_join_connected_seconds`` (mediaserver/telemetry.py) times each join on
the server: from the ``join`` message's arrival to the participant's publisher
connection ``connected``. The bots scrape the histogram before and after a scenario
and report quantiles of the difference, estimated from the buckets the way
Prometheus' ``histogram_quantile`` does (linear inside a bucket): so a figure is only
as fine as the buckets around it (25 ms steps up to 100 ms, then 50 to 500 ms).
"""

from __future__ import annotations

import math
import re
from typing import Any

import aiohttp

__all__ = [
    "JOIN_HISTOGRAM",
    "histogram_quantile",
    "metrics_url",
    "parse_buckets",
    "scrape_buckets",
    "server_join_figures",
]

JOIN_HISTOGRAM = "mediaserver_join_connected_seconds"
_BUCKET = re.compile(r'^(\w+)_bucket\{le="([^"]+)"\}\s+(\S+)$')


def parse_buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative counts by upper bound (``le``) of histogram ``name``."""
    out: dict[float, float] = {}
    for line in text.splitlines():
        m = _BUCKET.match(line.strip())
        if m and m.group(1) == name:
            out[float(m.group(2))] = float(m.group(3))
    return out


async def scrape_buckets(url: str, name: str = JOIN_HISTOGRAM) -> dict[float, float]:
    """The histogram's buckets from the server's /metrics ({} if it cannot be read)."""
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
            if r.status != 200:
                return {}
            return parse_buckets(await r.text(), name)
    except (aiohttp.ClientError, TimeoutError):
        return {}


def histogram_quantile(
    before: dict[float, float], after: dict[float, float], q: float
) -> tuple[float, int]:
    """(quantile ``q`` in seconds, observations) of what was observed between the two
    scrapes; nan when nothing was."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return math.nan, 0
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if math.isinf(bound):  # above the largest finite bucket
                return lower, int(total)
            inside = cumulative - below
            frac = (rank - below) / inside if inside else 1.0
            return lower + (bound - lower) * frac, int(total)
        lower, below = bound, cumulative
    return lower, int(total)


def metrics_url(ws_url: str) -> str:
    """The /metrics address next to the signalling WebSocket's (the bench's config
    serves both on one port)."""
    return ws_url.replace("ws://", "http://", 1).rsplit("/ws", 1)[0] + "/metrics"


async def server_join_figures(ws_url: str, before: dict[float, float]) -> dict[str, Any]:
    """server_join_ms_p50/p99 and server_joins since ``before`` (empty when the
    server does not export the histogram, e.g. Janus)."""
    after = await scrape_buckets(metrics_url(ws_url))
    if not after:
        return {}
    p50, n = histogram_quantile(before, after, 0.5)
    p99, _ = histogram_quantile(before, after, 0.99)
    return {
        "server_join_ms_p50": p50 * 1000,
        "server_join_ms_p99": p99 * 1000,
        "server_joins": n,
        # cumulative joins by bucket ("le" in ms), to read the quantiles' resolution
        "server_join_buckets": {
            f"{b * 1000:g}": int(after[b] - before.get(b, 0.0)) for b in sorted(after)
        },
    }
