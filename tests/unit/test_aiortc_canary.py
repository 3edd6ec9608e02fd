"""Canary: every private aiortc/aioice name the SFU relies on must still exist.

If this fails after an aiortc upgrade, the forwarding path is broken: see
mediaserver/sfu/peer.py (AIORTC_PRIVATE_NAMES) and docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import importlib
from importlib.metadata import version

import pytest

from mediaserver.sfu import aiortc_speedups, ice_pacing
from mediaserver.sfu.peer import AIORTC_PRIVATE_NAMES


class _Source:
    """hasattr() on source text: the attribute is assigned somewhere in the class."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __getattr__(self, name: str) -> object:
        if name in self.text:
            return True
        raise AttributeError(name)


CLIENT_PRIVATE_NAMES = (("aiortc.rtcdtlstransport.RTCDtlsTransport()", "_rtp_router"),)


def test_aiortc_is_the_pinned_version():
    assert version("aiortc") == "1.16.0", "aiortc must stay pinned: re-check the canary list"


def _resolve(spec: str) -> object:
    if spec.endswith(" source"):  # an attribute set later in the object's life: check the code
        import inspect

        module, _, name = spec[: -len(" source")].rpartition(".")
        return _Source(inspect.getsource(getattr(importlib.import_module(module), name)))
    instantiate = spec.endswith("()")
    path = spec[:-2] if instantiate else spec
    try:
        return importlib.import_module(path)
    except ImportError:
        module, _, name = path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    if not instantiate:
        return cls
    if name == "RTCRtpSender":
        from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
        from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport

        dtls = RTCDtlsTransport(
            RTCIceTransport(RTCIceGatherer(iceServers=[])),
            [RTCCertificate.generateCertificate()],
        )
        return cls("video", dtls)
    if name == "RTCDtlsTransport":
        from aiortc.rtcdtlstransport import RTCCertificate
        from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport

        return cls(
            RTCIceTransport(RTCIceGatherer(iceServers=[])),
            [RTCCertificate.generateCertificate()],
        )
    if name == "Connection":
        return cls(ice_controlling=False)
    if name == "RTCIceTransport":
        from aiortc.rtcicetransport import RTCIceGatherer

        return cls(RTCIceGatherer(iceServers=[]))
    raise AssertionError(f"no recipe to instantiate {spec}")


@pytest.mark.parametrize(
    ("owner", "attribute"),
    list(AIORTC_PRIVATE_NAMES)
    + list(aiortc_speedups.PRIVATE_NAMES)
    + list(ice_pacing.PRIVATE_NAMES)
    + list(CLIENT_PRIVATE_NAMES),
    ids=lambda x: str(x),
)
async def test_private_name_exists(owner: str, attribute: str):
    await asyncio.sleep(0)
    obj = _resolve(owner)
    assert hasattr(obj, attribute), (
        f"aiortc changed: {owner}.{attribute} is gone; the SFU's forwarding path "
        "(mediaserver/sfu/peer.py) depends on it"
    )


def test_codec_factories_the_guard_wraps_exist():
    import aiortc.rtcrtpreceiver
    import aiortc.rtcrtpsender

    assert callable(aiortc.rtcrtpreceiver.get_decoder)
    assert callable(aiortc.rtcrtpsender.get_encoder)
