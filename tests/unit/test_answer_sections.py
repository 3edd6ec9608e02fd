"""Subscribe answers parsed with the previous answer's m-sections reused
(aiortc_speedups.SectionCache) and codecs negotiated without deepcopy
(aiortc_speedups.find_common_codecs) give what aiortc's own code gives, on SDPs from
real aiortc peers and on a Chromium-like answer."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS
from aiortc.sdp import candidate_from_sdp

from mediaserver.sfu import peer
from mediaserver.sfu.aiortc_speedups import (
    ORIGINALS,
    SectionCache,
    find_common_codecs,
    preparsed,
    reused_sections,
)

original_parse = ORIGINALS["parse"]
ORIGINAL_TO_SDP = aiortc_sdp.ipaddress_to_sdp.__wrapped__  # type: ignore[attr-defined]


def _plain(value: Any) -> Any:
    """A comparable tree of an aiortc object (their classes mostly lack __eq__)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dict__"):
        return (type(value).__name__, _plain(vars(value)))
    return value


def _same(a: aiortc_sdp.SessionDescription, b: aiortc_sdp.SessionDescription) -> None:
    assert str(a) == str(b)
    assert _plain(a) == _plain(b)


def _cached(cache: SectionCache, text: str) -> aiortc_sdp.SessionDescription:
    with reused_sections(cache):
        return aiortc_sdp.SessionDescription.parse(text)


async def _answers(rounds: int = 3) -> list[str]:
    """Answers of one aiortc client to a server that adds audio + video each round."""
    server = RTCPeerConnection(peer.make_configuration([]))
    client = RTCPeerConnection(peer.make_configuration([]))
    answers = []
    try:
        for _ in range(rounds):
            server.addTransceiver("audio", direction="sendonly")
            server.addTransceiver("video", direction="sendonly")
            await server.setLocalDescription(await server.createOffer())
            await client.setRemoteDescription(server.localDescription)
            await client.setLocalDescription(await client.createAnswer())
            answers.append(client.localDescription.sdp)
            await server.setRemoteDescription(client.localDescription)
    finally:
        await client.close()
        await server.close()
    return answers


async def test_aiortc_answers_parse_the_same_and_unchanged_sections_are_reused():
    answers = await _answers()
    cache = SectionCache()
    previous: aiortc_sdp.SessionDescription | None = None
    for text in answers:
        got = _cached(cache, text)
        _same(got, original_parse(text))
        if previous is not None:  # the earlier m-lines come from the previous answer
            assert len(got.media) == len(previous.media) + 2
            assert all(a is b for a, b in zip(got.media, previous.media, strict=False))
        previous = got
    assert aiortc_sdp.SessionDescription.parse(answers[-1]) is not previous  # only inside


def _chromium_answer(mids: int, origin: int, ufrag: str = "Qx7e") -> str:
    lines = [
        "v=0",
        f"o=- {origin} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(str(i) for i in range(mids)),
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS",
    ]
    for mid in range(mids):
        video = mid % 2 == 1
        common = [
            "c=IN IP4 0.0.0.0",
            "a=rtcp:9 IN IP4 0.0.0.0",
            f"a=ice-ufrag:{ufrag}",
            "a=ice-pwd:hHh9Yl0GyqAXs0JtV1uD4b0s",
            "a=ice-options:trickle",
            "a=fingerprint:sha-256 0B:7A:5E:C5:13:29:6F:0A:55:8C:3D:49:A1:D4:09:E9:"
            "2D:7C:BC:2A:51:9E:C5:51:8E:19:5D:F8:12:34:56:78",
            "a=setup:active",
            f"a=mid:{mid}",
            "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
            "a=recvonly",
            "a=rtcp-mux",
        ]
        if video:
            lines += ["m=video 9 UDP/TLS/RTP/SAVPF 97 98 99 100", *common]
            lines += [
                "a=rtcp-rsize",
                "a=rtpmap:97 VP8/90000",
                "a=rtcp-fb:97 goog-remb",
                "a=rtcp-fb:97 transport-cc",
                "a=rtcp-fb:97 ccm fir",
                "a=rtcp-fb:97 nack",
                "a=rtcp-fb:97 nack pli",
                "a=rtpmap:98 rtx/90000",
                "a=fmtp:98 apt=97",
                "a=rtpmap:99 H264/90000",
                "a=rtcp-fb:99 nack",
                "a=rtcp-fb:99 nack pli",
                "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
                "a=rtpmap:100 rtx/90000",
                "a=fmtp:100 apt=99",
            ]
        else:
            lines += ["m=audio 9 UDP/TLS/RTP/SAVPF 111 0", *common]
            lines += [
                "a=rtpmap:111 opus/48000/2",
                "a=rtcp-fb:111 transport-cc",
                "a=fmtp:111 minptime=10;useinbandfec=1",
                "a=rtpmap:0 PCMU/8000",
            ]
    return "\r\n".join(lines) + "\r\n"


def test_chromium_like_answers_parse_the_same():
    cache = SectionCache()
    first = _cached(cache, _chromium_answer(6, origin=11))
    _same(first, original_parse(_chromium_answer(6, origin=11)))
    text = _chromium_answer(8, origin=12)  # new origin and groups: sections still reused
    got = _cached(cache, text)
    _same(got, original_parse(text))
    assert all(a is b for a, b in zip(got.media, first.media, strict=False))
    text = _chromium_answer(8, origin=13, ufrag="New1")  # ICE restart: all parsed again
    again = _cached(cache, text)
    _same(again, original_parse(text))
    assert not any(a is b for a, b in zip(again.media, got.media, strict=True))


def test_a_section_changed_since_is_parsed_again():
    cache = SectionCache()
    text = _chromium_answer(4, origin=1)
    first = _cached(cache, text)
    first.media[1].ice_candidates.append(  # what addIceCandidate does to the remote one
        candidate_from_sdp("1 1 udp 2122260223 192.0.2.1 50000 typ host")
    )
    again = _cached(cache, text)
    _same(again, original_parse(text))
    assert again.media[0] is first.media[0]
    assert again.media[1] is not first.media[1]


def test_duplicate_sections_get_their_own_objects():
    text = _chromium_answer(2, origin=1)
    _head, sep, video = text.partition("m=video")
    doubled = text + sep + video  # the same section twice (rejected later, by mid)
    cache = SectionCache()
    got = _cached(cache, doubled)
    _same(got, original_parse(doubled))
    assert got.media[1] is not got.media[2]


def test_malformed_answers_raise_as_aiortc_does():
    cache = SectionCache()
    good = _chromium_answer(2, origin=1)
    _cached(cache, good)
    bad = good.replace("a=rtpmap:97 VP8/90000", "a=rtpmap:x VP8/90000")
    with pytest.raises(ValueError):
        original_parse(bad)
    with pytest.raises(ValueError):
        _cached(cache, bad)
    _same(_cached(cache, good), original_parse(good))


def _codecs_of(text: str) -> list[Any]:
    return [m.rtp.codecs for m in original_parse(text).media]


async def test_common_codecs_equal_aiortcs():
    answers = await _answers(1)
    remote = _codecs_of(answers[0]) + _codecs_of(_chromium_answer(2, origin=1))
    for codecs in remote:
        kind = codecs[0].mimeType.split("/")[0]
        ours = find_common_codecs(CODECS[kind], codecs)
        theirs = ORIGINALS["find_common_codecs"](CODECS[kind], codecs)
        assert ours == theirs and ours
        for a, b in zip(ours, codecs + CODECS[kind], strict=False):
            assert a is not b
        ours[0].parameters["x"] = 1  # a copy: the local capabilities stay as they were
        ours[0].rtcpFeedback.clear()
        assert "x" not in CODECS[kind][0].parameters
        assert ORIGINALS["find_common_codecs"](CODECS[kind], codecs) == theirs


async def test_server_peer_applies_answers_with_reused_sections():
    """Through the subscriber peer: the remote description aiortc keeps is the answer."""
    server = RTCPeerConnection(peer.make_configuration([]))
    client = RTCPeerConnection(peer.make_configuration([]))
    cache = SectionCache()
    try:
        for _ in range(2):
            server.addTransceiver("audio", direction="sendonly")
            server.addTransceiver("video", direction="sendonly")
            await server.setLocalDescription(await server.createOffer())
            await client.setRemoteDescription(server.localDescription)
            await client.setLocalDescription(await client.createAnswer())
            text = client.localDescription.sdp
            with reused_sections(cache):
                await server.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))
            assert server.remoteDescription.sdp == str(original_parse(text))
        assert [t.currentDirection for t in server.getTransceivers()] == ["sendonly"] * 4
    finally:
        await client.close()
        await server.close()


async def test_client_applies_offers_with_reused_sections():
    """The SDK's side (client/receiving.py): subscribe offers that grow by two m-lines
    each round parse the same through the cache, reuse the earlier m-sections, and the
    answers aiortc makes from them are the answers made from a plain parse."""
    server = RTCPeerConnection(peer.make_configuration([]))
    cached_client = RTCPeerConnection(peer.make_configuration([]))
    plain_client = RTCPeerConnection(peer.make_configuration([]))
    cache = SectionCache()
    previous: aiortc_sdp.SessionDescription | None = None
    try:
        for _ in range(3):
            server.addTransceiver("audio", direction="sendonly")
            server.addTransceiver("video", direction="sendonly")
            await server.setLocalDescription(await server.createOffer())
            text = server.localDescription.sdp
            got = _cached(cache, text)
            _same(got, original_parse(text))
            if previous is not None:
                assert all(a is b for a, b in zip(got.media, previous.media, strict=False))
            previous = got
            answers = []
            for client in (cached_client, plain_client):
                offer = RTCSessionDescription(sdp=text, type="offer")
                if client is cached_client:
                    with preparsed(text, got):
                        await client.setRemoteDescription(offer)
                else:
                    await client.setRemoteDescription(offer)
                await client.setLocalDescription(await client.createAnswer())
                answers.append(original_parse(client.localDescription.sdp))
            cached_answer, plain_answer = answers
            # the same but for what is each connection's own (ICE, DTLS, origin)
            for a, b in zip(cached_answer.media, plain_answer.media, strict=True):
                assert (a.kind, a.direction, a.rtp.muxId) == (b.kind, b.direction, b.rtp.muxId)
                assert _plain(a.rtp.codecs) == _plain(b.rtp.codecs)
                assert _plain(a.rtp.headerExtensions) == _plain(b.rtp.headerExtensions)
            await server.setRemoteDescription(cached_client.localDescription)
    finally:
        for pc in (server, cached_client, plain_client):
            await pc.close()


async def test_subscriber_offers_are_the_local_description():
    """create_offer's text, serialised once, is what aiortc's localDescription gives,
    on the first offer (gathering in setLocalDescription) and on renegotiations."""
    from tests.unit.test_aiortc_speedups import _track, _vp8

    sub = peer.SubscriberPeer([], "", on_rtcp=lambda data: None)
    client = RTCPeerConnection(peer.make_configuration([]))
    try:
        for _ in range(3):
            sub.add_transceiver("audio", _track("audio", "opus", 48000, 111), "s", lambda s: None)
            sub.add_transceiver("video", _vp8(), "s", lambda s: None)
            offer = await sub.create_offer()
            assert offer == sub._local_sdp()
            await client.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await client.setLocalDescription(await client.createAnswer())
            await sub.apply_answer(client.localDescription.sdp)
    finally:
        await client.close()
        await sub.close()


def test_sdp_addresses_are_the_same():
    for addr in ("192.0.2.1", "0.0.0.0", "2001:db8::1", "::1", "192.0.2.1"):
        assert aiortc_sdp.ipaddress_to_sdp(addr) == ORIGINAL_TO_SDP(addr)
    with pytest.raises(ValueError):
        aiortc_sdp.ipaddress_to_sdp("not an address")


async def test_a_large_answer_to_a_large_offer_is_applied():
    """A subscribe answer is bounded by the offer it answers (check_sdp_bounds'
    bound), not by the 60 KB of a client's own SDP: a dual-stack aiortc client answers
    48 m-lines in ~61 KB."""
    from mediaserver.sfu.negotiation import MAX_SDP_BYTES
    from tests.unit.test_aiortc_speedups import _track, _vp8

    sub = peer.SubscriberPeer([], "", on_rtcp=lambda data: None)
    client = RTCPeerConnection(peer.make_configuration([]))
    try:
        for _ in range(24):
            sub.add_transceiver("audio", _track("audio", "opus", 48000, 111), "s", lambda s: None)
            sub.add_transceiver("video", _vp8(), "s", lambda s: None)
        offer = await sub.create_offer()
        await client.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await client.setLocalDescription(await client.createAnswer())
        text = client.localDescription.sdp
        head, sep, rest = text.partition("m=")
        pad = "a=x-pad:" + "p" * 1000 + "\r\n"  # ignored by the parser, like any a=x-
        padded = head + pad * ((MAX_SDP_BYTES + 5000 - len(text)) // len(pad) + 1) + sep + rest
        assert len(padded) > MAX_SDP_BYTES
        tracks = await sub.apply_answer(padded)
        assert len(tracks) == 48
    finally:
        await client.close()
        await sub.close()
