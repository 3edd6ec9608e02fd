"""The file side of a recording: one thread per recording, fed through a bounded queue.

The event loop only calls :meth:`WriterThread.submit`, which never blocks: when the queue
is full the item is dropped and counted (the caller resynchronises video at the next
keyframe). The queue is a deque the thread drains every ``DRAIN_SECONDS``: a frame
arriving does not wake the thread (a wake-up per frame makes the event loop hand the GIL
over hundreds of times a second). A write error (a full disk) stops the thread's
writing for good and is reported once through ``on_error``, called in the writer thread.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .ebml import MatroskaWriter, TrackSpec

__all__ = ["CloseTrack", "OpenTrack", "WriteFrame", "WriteJson", "WriterThread", "write_json"]


@dataclass(frozen=True, slots=True)
class OpenTrack:
    key: str
    path: Path
    spec: TrackSpec
    doctype: str


@dataclass(frozen=True, slots=True)
class WriteFrame:
    key: str
    ms: int
    data: bytes
    keyframe: bool


@dataclass(frozen=True, slots=True)
class CloseTrack:
    key: str
    duration_ms: float


@dataclass(frozen=True, slots=True)
class WriteJson:
    """A JSON file written whole (the manifest's checkpoints, after the frames before)."""

    path: Path
    data: dict[str, Any]


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader (or a node restarting after a kill) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


_Item = OpenTrack | WriteFrame | CloseTrack | WriteJson
#: How often the writer thread takes what was queued (what a kill can lose on top).
DRAIN_SECONDS = 0.05


class WriterThread:
    def __init__(
        self, name: str, capacity: int, on_error: Callable[[BaseException], None], app: str
    ) -> None:
        self._queue: collections.deque[_Item] = collections.deque()
        self._capacity = capacity
        self._stop = threading.Event()
        self._on_error = on_error
        self._app = app
        self._files: dict[str, tuple[BinaryIO, MatroskaWriter]] = {}
        self.failed: BaseException | None = None
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"recording-{name}", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    @property
    def full(self) -> bool:
        return len(self._queue) >= self._capacity

    def submit(self, item: _Item) -> bool:
        """Queue ``item``; False (and counted) when the queue is full or writing stopped."""
        if self._stopping or self.failed is not None:
            return False
        if len(self._queue) >= self._capacity:
            self.dropped += 1
            return False
        self._queue.append(item)  # atomic; the thread takes it within DRAIN_SECONDS
        return True

    def stop(self) -> None:
        """Ask the thread to write what is queued, close every file and end."""
        self._stopping = True
        self._stop.set()

    def join(self) -> None:
        if self._thread.ident is not None:  # (never started: nothing to wait for)
            self._thread.join()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(DRAIN_SECONDS)
            while self._queue:
                item = self._queue.popleft()
                if self.failed is not None:
                    continue
                try:
                    self._handle(item)
                except Exception as exc:
                    self.failed = exc
                    self._close_all(clean=False)
                    self._on_error(exc)
            if stopping:
                break
        self._close_all(clean=self.failed is None)

    def _handle(self, item: _Item) -> None:
        if isinstance(item, WriteFrame):
            entry = self._files.get(item.key)
            if entry is not None:
                entry[1].write(item.ms, item.data, item.keyframe)
        elif isinstance(item, WriteJson):
            write_json(item.path, item.data)
        elif isinstance(item, OpenTrack):
            item.path.parent.mkdir(parents=True, exist_ok=True)
            fh: BinaryIO = item.path.open("wb", buffering=0)  # every frame reaches the file
            try:
                writer = MatroskaWriter(fh, item.spec, doctype=item.doctype, app=self._app)
            except BaseException:
                fh.close()
                raise
            self._files[item.key] = (fh, writer)
        else:
            entry = self._files.pop(item.key, None)
            if entry is not None:
                fh, writer = entry
                try:
                    writer.close(item.duration_ms)
                finally:
                    fh.close()

    def _close_all(self, *, clean: bool) -> None:
        for fh, writer in self._files.values():
            if clean:
                fh.close()
                continue
            with contextlib.suppress(OSError):
                writer.cut_back()  # what was written stays playable
            with contextlib.suppress(OSError):
                fh.close()
        self._files.clear()
