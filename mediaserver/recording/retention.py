"""Retention: recordings older than ``recording.retention_days`` are deleted (their
folder on this node, and their manifest in the store)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from ..telemetry import get_logger
from .session import MANIFEST

__all__ = ["SWEEP_SECONDS", "expired", "retention_task", "sweep"]

SWEEP_SECONDS = 3600.0


def expired(root: Path, days: float, now: float) -> list[Path]:
    """Folders of finished recordings that started more than ``days`` ago."""
    if days <= 0 or not root.is_dir():
        return []
    out = []
    for path in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        started = manifest.get("started_at")
        if (
            manifest.get("state") in ("ready", "interrupted")
            and isinstance(started, int | float)
            and now - started > days * 86400
        ):
            out.append(path.parent)
    return out


async def sweep(
    root: Path, days: float, delete_record: Callable[[str], Awaitable[Any]] | None = None
) -> list[str]:
    """Delete what :func:`expired` finds; returns the recording ids."""
    folders = await asyncio.to_thread(expired, root, days, time.time())
    for folder in folders:
        if delete_record is not None:
            await delete_record(folder.name)
        await asyncio.to_thread(shutil.rmtree, folder, True)
    if folders:
        get_logger().info("recordings deleted (retention)", recordings=[f.name for f in folders])
    return [f.name for f in folders]


@contextlib.asynccontextmanager
async def retention_task(
    root: Path, days: float, delete_record: Callable[[str], Awaitable[Any]] | None
) -> AsyncIterator[None]:
    """Sweeps at start-up and then every hour while the server runs."""

    async def loop() -> None:
        while True:
            try:
                await sweep(root, days, delete_record)
            except Exception:
                get_logger().exception("recording retention sweep failed")
            await asyncio.sleep(SWEEP_SECONDS)

    task = asyncio.ensure_future(loop()) if days > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
