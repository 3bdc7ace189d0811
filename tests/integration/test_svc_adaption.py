"""Server-side adaption of an SVC camera: the server drops a subscriber's spatial layers by
its downlink estimate (chime-signaling-protocol.md §4.3 SVC, §4.5; issue #5).

A light publisher (bench/svcreplay.py) replays the real Chromium VP9 ``L3T3`` camera of
tests/vectors/rtp/svc (320x180, 640x360, 1280x720) into the real server. A light
subscriber that joined asking for server-side adaption reports its downlink with REMB;
the test depacketizes and decodes (libvpx, PyAV) what it receives and checks the picture
size: the whole stream before any report, only the lowest spatial layer under a tight
downlink, the whole stream again when the downlink is roomy.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from bench.svcreplay import SvcReplayPublisher, Vp9Subscriber
from mediacodecs.vp9 import Vp9Descriptor
from mediaserver.rtp.dump import read_dump
from mediaserver.rtp.packet import RtpPacket
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess, running_server

pytestmark = pytest.mark.timeout(180)

T = 20.0 * TIMEOUT_FACTOR
VECTOR = Path(__file__).parents[1] / "vectors" / "rtp" / "svc" / "chromium_vp9_l3t3.rtp"
LOW, TOP = (320, 180), (1280, 720)
TIGHT, ROOMY = 80_000, 3_000_000
"""REMB values: only spatial layer 0 fits (about 52 kbit/s with its three temporal layers;
layer 1 adds about 150 kbit/s); everything fits (about 600 kbit/s)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("carillon") / "data"
    args = ["--api-rate", "10000", "--api-burst", "10000", "--server-side-adaption"]
    with running_server(data_dir, args) as srv:
        yield srv


class _Decoded:
    """Depacketizes and decodes a subscriber's VP9 as it arrives (one picture per RTP
    timestamp, its layer frames in one buffer), remembering each picture's size and the
    highest spatial layer it held."""

    def __init__(self, peer: Vp9Subscriber) -> None:
        self._peer = peer
        self._decoder = av.CodecContext.create("libvpx-vp9", "r")
        self._read = 0
        self._picture: list[RtpPacket] = []
        self.sizes: list[tuple[int, int]] = []
        self.spatial: list[int] = []
        self.numbers: list[tuple[int, int]] = []
        """(first, last) sequence number of each decoded picture."""
        self.errors: list[int] = []
        """For each picture the decoder refused, how many had decoded before it."""

    def update(self) -> None:
        received = self._peer.received
        while self._read < len(received):
            packet = RtpPacket.parse(received[self._read])
            self._read += 1
            if not packet.payload:
                continue
            if self._picture and packet.timestamp != self._picture[0].timestamp:
                self._decode(self._picture)
                self._picture = []
            self._picture.append(packet)

    def _decode(self, picture: list[RtpPacket]) -> None:
        descriptors = [Vp9Descriptor.parse(p.payload) for p in picture]
        data = b"".join(p.payload[d.size :] for p, d in zip(picture, descriptors, strict=True))
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError:
            self.errors.append(len(self.sizes))
            return
        for frame in frames:
            self.sizes.append((frame.width, frame.height))
            self.spatial.append(max(d.spatial_id for d in descriptors))
            self.numbers.append((picture[0].sequence_number, picture[-1].sequence_number))

    def clean(self, start: int) -> None:
        """Assert that the pictures from ``start`` on decoded without error and follow one
        another without a sequence number gap (dropped layers leave none)."""
        assert not [e for e in self.errors if e > start], (start, self.errors)
        numbers = self.numbers[start:]
        assert all((b[0] - a[1]) & 0xFFFF == 1 for a, b in itertools.pairwise(numbers)), numbers

    def showing(self, size: tuple[int, int], count: int) -> Callable[[], bool]:
        """Whether the last ``count`` pictures decoded at ``size``."""

        def check() -> bool:
            self.update()
            return len(self.sizes) >= count and set(self.sizes[-count:]) == {size}

        return check


async def _report_until(
    peer: Vp9Subscriber, bitrate: int | None, done: Callable[[], bool], what: str
) -> None:
    """Send REMB ``bitrate`` (None: nothing) twice a second until ``done()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while not done():
        assert loop.time() < deadline, what
        if bitrate is not None:
            peer.send_remb(bitrate)
        await asyncio.sleep(0.5)


async def test_the_server_drops_svc_spatial_layers_by_the_subscriber_estimate(
    chime: Any, server: ServerProcess
) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="svc"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "viewer")
    ]
    camera = SvcReplayPublisher(
        DtlsCertificate.generate(), recording=list(read_dump(VECTOR.read_bytes()))
    )
    publisher = SignalingClient(meeting, people[0])
    viewer = SignalingClient(meeting, people[1], server_side_adaption=True)
    peer = Vp9Subscriber(DtlsCertificate.generate(), receive_videos=1)
    try:
        for client in (publisher, viewer):
            await client.connect(T)
            await client.join(T)
        ack, stream_id = await camera.publish(publisher)
        assert "VP9/90000" in ack.sdp_answer
        await viewer.wait_for(lambda c: len(c.index_sources) == 1, T, "the camera")
        await peer.start()
        answer = await viewer.subscribe(peer.offer(), receive_stream_ids=[0, stream_id])
        assert "VP9/90000" in answer.sdp_answer
        await peer.connect(answer.sdp_answer)
        decoded = _Decoded(peer)

        # No estimate yet: every layer is forwarded.
        await _report_until(peer, None, decoded.showing(TOP, 10), "the whole stream")
        # A tight downlink: only spatial layer 0 reaches the subscriber.
        await _report_until(peer, TIGHT, decoded.showing(LOW, 20), "down to 320x180")
        low_from = len(decoded.sizes) - 20
        assert set(decoded.spatial[low_from:]) == {0}
        # Checked from the low pictures on: when the REMB falls, the subscriber's pacer (at
        # 2.5 x the estimate) may drop packets of the whole-stream pictures already on
        # their way (seen under load: 4 gaps, 12 pictures undecodable until the camera's
        # next key frame; this subscriber sends neither NACK nor PLI).
        decoded.clean(low_from)
        # Roomy again: up to the top layer, at one of the camera's key frames.
        await _report_until(peer, ROOMY, decoded.showing(TOP, 10), "up to 1280x720")
        decoded.clean(low_from)
        assert camera.loops >= 1
    finally:
        camera.close()
        peer.close()
        await publisher.close()
        await viewer.close()
