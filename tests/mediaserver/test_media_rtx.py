"""Publisher RTX in the media engine: Chromium's simulcast RTX streams carry no SSRC in the
offer, only the repaired RID (RFC 8852 §4.4); the engine finds the stream they repair,
unwraps them (RFC 4588 §4) and fills the gap its NACK generator saw."""

from __future__ import annotations

from typing import Any

from mediaserver.config import ServerConfig
from mediaserver.gateway.room import Member
from mediaserver.media import MediaServer
from mediaserver.rtp.packet import RtpPacket
from mediaserver.transport.peer import PeerTransport
from signaling.events import SubscribeReceived
from signaling.messages import StreamServiceType
from signaling.session import SignalingSession
from tests.helpers.clock import FakeClock
from tests.helpers.vectors import load

RID_ID, REPAIRED_RID_ID = 10, 11  # the offer's extmap ids
VP8, RTX = 96, 97  # the offer's VP8 and its rtx (apt=96)


def _packet(pt: int, seq: int, ssrc: int, ext: dict[int, bytes], payload: bytes) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence_number=seq, timestamp=9000, ssrc=ssrc,
        extension_profile=0xBEDE, extensions=ext, payload=payload,
    ).serialize()  # fmt: skip


def test_simulcast_rtx_is_matched_by_its_repaired_rid_and_fills_the_gap() -> None:
    clock = FakeClock()
    media = MediaServer(ServerConfig(), clock)
    now = clock.monotonic()
    session = SignalingSession(now=now, wall_clock=clock.wall, idle_timeout=None)
    member = Member(session, "a-1", "alice", connected_at=now, last_activity=now)
    event = SubscribeReceived(
        duplex=StreamServiceType.DUPLEX, sdp_offer=load("sdp/chrome_simulcast_offer.sdp").decode(),
        compressed_sdp_offer=None, send_streams=(), receive_stream_ids=(0, 0, 0),
        audio_host=None, audio_checkin=False, audio_muted=False,
        video_subscription_configuration=(),
    )  # fmt: skip
    result = media.subscribe(member, event, now)
    assert "a=rtpmap:97 rtx/90000" in result.answer and "a=fmtp:97 apt=96" in result.answer
    media.publish(member, [11, 12, 13], now)  # low, mid, hi
    peer = member.app_data["peer"]
    assert isinstance(peer, PeerTransport)
    low, hi = 0x1111, 0x3333
    vp8 = b"\x10\x00\x9d\x01\x2a"
    for ssrc, rid in ((low, b"low"), (hi, b"hi")):
        for seq in (100, 101, 103):  # 102 lost
            media._on_rtp(peer, _packet(VP8, seq, ssrc, {RID_ID: rid}, vp8), now)
    downlink: Any = peer.owner
    assert downlink.nacks[hi].missing == [102] and downlink.nacks[low].missing == [102]
    # The publisher answers the NACK for "hi" on an RTX SSRC the offer never named.
    repair = _packet(RTX, 7, 0x9999, {REPAIRED_RID_ID: b"hi"}, (102).to_bytes(2, "big") + vp8)
    media._on_rtp(peer, repair, now)
    assert media.video_repaired == 1
    assert downlink.nacks[hi].missing == [] and downlink.nacks[low].missing == [102]
    # A padding-only probe on the same RTX stream repairs nothing and breaks nothing.
    probe = RtpPacket(payload_type=RTX, sequence_number=8, ssrc=0x9999, padding=bytes(9) + b"\x0a")
    media._on_rtp(peer, probe.serialize(), now)
    assert media.video_repaired == 1 and media.malformed_rtp == 0
    # A retransmission of a packet that arrived (libwebrtc's payload padding, a probe) is
    # not forwarded: a subscriber's SRTP replay check would drop the copy, and its
    # transport-cc feedback would count it lost.
    again = _packet(RTX, 9, 0x9999, {REPAIRED_RID_ID: b"hi"}, (101).to_bytes(2, "big") + vp8)
    media._on_rtp(peer, again, now)
    assert media.video_repaired == 1 and media.rtx_duplicates == 1
    # The offer numbers packets transport-wide (extmap 3, rtcp-fb transport-cc): the engine
    # notes each one that carries a number, for the publisher's transport-cc feedback.
    assert downlink.uplink_twcc_id == 3 and downlink.uplink_feedback.received == 0
    media._on_rtp(peer, _packet(VP8, 104, hi, {RID_ID: b"hi", 3: b"\x00\x05"}, vp8), now)
    assert downlink.uplink_feedback.received == 1
