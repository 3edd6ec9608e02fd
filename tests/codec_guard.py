"""Test instrumentation: records every encoder/decoder aiortc creates in a process, and
every codec context created through PyAV directly (``av.CodecContext.create``).

The SFU forwards RTP as bytes, so a server process must create none. The server-process
test starts ``mediaserver serve`` through this file (``python tests/codec_guard.py serve
...``) with ``CODEC_GUARD_LOG`` naming a file: the file is created empty at start-up
and gets one line per codec created.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av

_originals: dict[str, Callable[..., Any]] = {}


def install(log_path: str | None = None) -> list[str]:
    """Wrap aiortc's codec factories (as its receiver and sender look them up)."""
    created: list[str] = []
    if log_path:
        open(log_path, "w").close()

    def record(kind: str, codec: Any) -> None:
        line = f"{kind} {getattr(codec, 'mimeType', '?')}"
        created.append(line)
        if log_path:
            with open(log_path, "a") as f:
                f.write(line + "\n")

    def wrap(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def factory(codec: Any) -> Any:
            record(kind, codec)
            return original(codec)

        return factory

    def wrap_pyav(original: Callable[..., Any]) -> Callable[..., Any]:
        def create(codec: Any, mode: Any = None, *args: Any, **kwargs: Any) -> Any:
            name = getattr(codec, "name", codec)
            line = f"pyav {name} {mode or 'r'}"
            created.append(line)
            if log_path:
                with open(log_path, "a") as f:
                    f.write(line + "\n")
            return original(codec, mode, *args, **kwargs)

        return create

    _originals["decoder"] = aiortc.rtcrtpreceiver.get_decoder
    _originals["encoder"] = aiortc.rtcrtpsender.get_encoder
    _originals["pyav"] = av.CodecContext.create
    aiortc.rtcrtpreceiver.get_decoder = wrap("decoder", _originals["decoder"])
    aiortc.rtcrtpsender.get_encoder = wrap("encoder", _originals["encoder"])
    av.CodecContext.create = staticmethod(wrap_pyav(_originals["pyav"]))
    return created


def uninstall() -> None:
    if _originals:
        aiortc.rtcrtpreceiver.get_decoder = _originals.pop("decoder")
        aiortc.rtcrtpsender.get_encoder = _originals.pop("encoder")
        av.CodecContext.create = staticmethod(_originals.pop("pyav"))


if __name__ == "__main__":
    # run as a script, this file's folder (tests/) is first on sys.path: drop it so
    # nothing in tests/ can shadow the server's own packages
    sys.path.pop(0)
    install(os.environ.get("CODEC_GUARD_LOG"))
    from mediaserver.cli import main

    raise SystemExit(main(sys.argv[1:]))
