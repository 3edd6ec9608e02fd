"""The join-path speed-ups patched into aiortc (mediaserver/sfu/aiortc_speedups.py) give
the same results as aiortc's own code, and only the server's peers skip the estimator."""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.rtcdtlstransport import RTCCertificate, certificate_digest

from mediaserver.sfu import peer
from mediaserver.sfu.aiortc_speedups import captured_parse, preparsed


def test_fingerprints_are_cached_and_unchanged(monkeypatch):
    cert = RTCCertificate.generateCertificate()
    first = cert.getFingerprints()
    assert [(f.algorithm, f.value) for f in first] == [
        (f.algorithm, certificate_digest(cert._cert, f.algorithm)) for f in first
    ]
    calls = []
    monkeypatch.setattr(
        "aiortc.rtcdtlstransport.certificate_digest", lambda *a: calls.append(a) or "x"
    )
    again = cert.getFingerprints()
    assert calls == []
    assert [(f.algorithm, f.value) for f in again] == [(f.algorithm, f.value) for f in first]
    again[0].value = "changed"  # callers get their own objects
    assert cert.getFingerprints()[0].value == first[0].value


async def _offer_text() -> str:
    pc = RTCPeerConnection(peer.make_configuration([]))
    pc.addTransceiver("audio", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    text = pc.localDescription.sdp
    await pc.close()
    return text


async def test_preparsed_description_is_handed_to_aiortc():
    text = await _offer_text()
    parsed = aiortc_sdp.SessionDescription.parse(text)
    with preparsed(text, parsed):
        assert aiortc_sdp.SessionDescription.parse(text) is parsed
        assert aiortc_sdp.SessionDescription.parse(text + "\r\n") is not parsed
    assert aiortc_sdp.SessionDescription.parse(text) is not parsed
    answerer = RTCPeerConnection(peer.make_configuration([]))
    with preparsed(text, parsed):
        await answerer.setRemoteDescription(RTCSessionDescription(sdp=text, type="offer"))
    assert [t.kind for t in answerer.getTransceivers()] == ["audio", "video"]
    with captured_parse() as got:
        await answerer.setLocalDescription(await answerer.createAnswer())
    assert len(got) == 1
    assert str(got[0]) == answerer.localDescription.sdp
    await answerer.close()


def _estimator(receiver: Any) -> object:
    return receiver._RTCRtpReceiver__remote_bitrate_estimator


async def test_only_server_side_receivers_skip_the_estimator():
    client = RTCPeerConnection(peer.make_configuration([]))
    video = client.addTransceiver("video", direction="recvonly")
    assert _estimator(video.receiver) is not None
    await client.close()
    sub = peer.SubscriberPeer([], "", on_rtcp=_no_rtcp)
    assert sub.pc.getTransceivers() == []
    sub.add_transceiver("video", _vp8(), "stream", lambda sender: None)
    assert _estimator(sub.pc.getTransceivers()[0].receiver) is None
    await sub.close()


def _no_rtcp(data: bytes) -> None:
    return None


def _vp8() -> peer.NegotiatedTrack:
    return _track("video", "VP8", 90000, 96)


def _track(kind: str, codec: str, clock_rate: int, pt: int) -> peer.NegotiatedTrack:
    return peer.NegotiatedTrack(
        mid="0",
        kind=kind,
        direction="sendonly",
        codec=codec,
        mime_type=f"{kind}/{codec}",
        clock_rate=clock_rate,
        channels=2 if kind == "audio" else None,
        payload_type=pt,
        codec_parameters=(),
        rtx_payload_type=0 if kind == "audio" else pt + 1,
        ssrc=1,
        rtx_ssrc=0 if kind == "audio" else 2,
        mid_ext_id=1,
        audio_level_ext_id=0,
        abs_send_time_ext_id=0,
        msid="",
    )


async def test_own_offer_is_not_parsed_back_and_round_trips():
    """setLocalDescription takes createOffer's own description: that is only the same
    as aiortc's behaviour if parsing its text back gives the same description."""
    sub = peer.SubscriberPeer([], "", on_rtcp=_no_rtcp)
    for kind in ("audio", "video", "audio", "video"):
        sub.add_transceiver(kind, _vp8() if kind == "video" else _opus(), "s", lambda s: None)
    calls: list[str] = []
    original = aiortc_sdp.SessionDescription.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, sdp: str) -> Any:
        calls.append(sdp)
        return original(cls, sdp)

    aiortc_sdp.SessionDescription.parse = classmethod(counting)  # type: ignore[method-assign]
    try:
        offer = await sub.create_offer()
    finally:
        aiortc_sdp.SessionDescription.parse = classmethod(original)  # type: ignore[method-assign]
    assert len(calls) == 1  # aiortc's parse was called, and handed the created object:
    codecs = sub.pc.getTransceivers()[0]._codecs  # createOffer shares these, a parse not
    assert sub._offer.media[0].rtp.codecs[0] is codecs[0]
    local = sub.pc.localDescription.sdp
    assert offer == local
    assert str(aiortc_sdp.SessionDescription.parse(local)) == local
    assert sub.offered_mlines == 4
    reparsed = aiortc_sdp.SessionDescription.parse(local)
    assert [(m.kind, m.rtp.muxId, [s.ssrc for s in m.ssrc], m.msid) for m in reparsed.media] == [
        (m.kind, m.rtp.muxId, [s.ssrc for s in m.ssrc], m.msid) for m in sub._offer.media
    ]
    await sub.close()


def _opus() -> peer.NegotiatedTrack:
    return _track("audio", "opus", 48000, 111)
