"""The file side of a recording: one thread per recording, fed through a bounded queue.

The event loop only calls :meth:`WriterThread.submit`, which never blocks: when the queue
is full the item is dropped and counted (the caller resynchronises video at the next
keyframe). A write error (a full disk) stops the thread's writing for good and is
reported once through ``on_error``, called in the writer thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .ebml import MatroskaWriter, TrackSpec

__all__ = ["CloseTrack", "OpenTrack", "WriteFrame", "WriterThread"]


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


_Item = OpenTrack | WriteFrame | CloseTrack | None


class WriterThread:
    def __init__(
        self, name: str, capacity: int, on_error: Callable[[BaseException], None], app: str
    ) -> None:
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=capacity)
        self._on_error = on_error
        self._app = app
        self._files: dict[str, tuple[BinaryIO, MatroskaWriter]] = {}
        self.failed: BaseException | None = None
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"recording-{name}", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: OpenTrack | WriteFrame | CloseTrack) -> bool:
        """Queue ``item``; False (and counted) when the queue is full or writing stopped."""
        if self._stopping or self.failed is not None:
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def stop(self) -> None:
        """Ask the thread to close every file and end (blocks until there is room for the
        request: call it from a thread, see :meth:`join`)."""
        self._stopping = True
        self._queue.put(None)

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self.failed is not None:
                continue
            try:
                self._handle(item)
            except Exception as exc:
                self.failed = exc
                self._close_all(clean=False)
                self._on_error(exc)
        self._close_all(clean=self.failed is None)

    def _handle(self, item: OpenTrack | WriteFrame | CloseTrack) -> None:
        if isinstance(item, WriteFrame):
            entry = self._files.get(item.key)
            if entry is not None:
                entry[1].write(item.ms, item.data, item.keyframe)
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
