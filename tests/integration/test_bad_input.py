"""Bad input on the signaling socket and the UDP port is dropped or answered as the spec
says, and never disturbs the other attendees of the meeting."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import pytest
import websockets

from bench.join import Bot, join_one
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient, signaling_subprotocols, signaling_url


async def _two_bots(server: Any) -> tuple[list[Bot], dict[str, Any], list[dict[str, Any]]]:
    chime = server.client()
    meeting = chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="bad-input")[
        "Meeting"
    ]
    attendees = [
        chime.create_attendee(MeetingId=meeting["MeetingId"], ExternalUserId=name)["Attendee"]
        for name in ("alice", "bob", "mallory")
    ]
    certificate = DtlsCertificate.generate()
    bots = [await join_one(meeting, a, certificate) for a in attendees[:2]]
    return bots, meeting, attendees


async def _audio_rate(bots: list[Bot], seconds: float) -> list[float]:
    """Audio packets per second each bot receives. The server sends 50; the JS client
    calls a connection poor below 25 (chime-signaling-protocol.md §6.3)."""
    before = [b.peer.audio_packets for b in bots]
    await asyncio.sleep(seconds)
    return [(b.peer.audio_packets - n) / seconds for b, n in zip(bots, before, strict=True)]


async def test_udp_garbage_is_dropped_and_others_keep_their_audio(server: Any) -> None:
    bots, _, _ = await _two_bots(server)
    try:
        target = ("127.0.0.1", server.udp_port)
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        garbage = [
            b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12),  # STUN, no integrity
            b"\x16\xfe\xfd" + os.urandom(60),  # DTLS from an unknown 5-tuple
            b"\x80\x6f" + os.urandom(100),  # RTP from an unknown 5-tuple
            b"\xff" * 50,  # no protocol
            b"",
        ]
        alice = bots[0].peer
        assert alice._transport is not None and alice._remote is not None
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for datagram in garbage:
                stranger.sendto(datagram, target)
            # From alice's own 5-tuple: SRTP that fails authentication, and garbage DTLS.
            alice._transport.sendto(b"\x80\x6f" + os.urandom(60), target)
            alice._transport.sendto(b"\x17\xfe\xfd" + os.urandom(40), target)
            await asyncio.sleep(0.005)
        stranger.close()
        rates = await _audio_rate(bots, 1.0)
        assert all(rate > 25 for rate in rates), rates
    finally:
        for bot in bots:
            await bot.close()


async def test_replayed_srtp_is_dropped(server: Any) -> None:
    bots, _, _ = await _two_bots(server)
    try:
        peer = bots[0].peer
        assert peer._srtp is not None and peer._transport is not None and peer._remote is not None
        packet = bytes([0x80, 111]) + (1234).to_bytes(2, "big") + bytes(8) + b"\xf8\xff\xfe"
        protected = peer._srtp.protect_rtp(packet)
        for _ in range(20):
            peer._transport.sendto(protected, peer._remote.address)
        rates = await _audio_rate(bots, 0.5)
        assert all(rate > 25 for rate in rates), rates
    finally:
        for bot in bots:
            await bot.close()


async def test_malformed_sdp_gets_an_error_status_and_the_session_continues(
    server: Any,
) -> None:
    bots, meeting, attendees = await _two_bots(server)
    client = SignalingClient({"Meeting": meeting}, {"Attendee": attendees[2]})
    try:
        await client.connect()
        await client.join()
        ack = await client.subscribe("v=0\r\nthis is not sdp\r\n")
        assert not ack.sdp_answer
        assert client.error_statuses[0].status == 400
        assert client.is_open
        rates = await _audio_rate(bots, 0.5)
        assert all(rate > 25 for rate in rates), rates
    finally:
        await client.close()
        for bot in bots:
            await bot.close()


async def test_bad_websocket_frames(server: Any) -> None:
    bots, meeting, attendees = await _two_bots(server)
    url = signaling_url(meeting["MediaPlacement"]["SignalingUrl"])
    protocols: Any = signaling_subprotocols(attendees[2]["JoinToken"])
    try:
        # A frame that is not a signaling frame before JOIN: close 4400 (bad request).
        async with websockets.connect(url, subprotocols=protocols) as ws:
            await ws.send(os.urandom(64))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None and info.value.rcvd.code == 4400
        # A text frame before JOIN: the same.
        async with websockets.connect(url, subprotocols=protocols) as ws:
            await ws.send("hello")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None and info.value.rcvd.code == 4400
        # An oversized frame: the WebSocket layer closes that connection with 1009.
        async with websockets.connect(url, subprotocols=protocols, max_size=None) as ws:
            await ws.send(b"\x05" + bytes(300 * 1024))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        rates = await _audio_rate(bots, 0.5)
        assert all(rate > 25 for rate in rates), rates
        assert set(bots[0].client.present_attendees()) >= {
            bots[0].client.attendee_id,
            bots[1].client.attendee_id,
        }
    finally:
        for bot in bots:
            await bot.close()
