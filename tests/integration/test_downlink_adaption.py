"""Server-side adaption: the server picks a subscriber's simulcast layer from its downlink
estimate (chime-signaling-protocol.md §3.2, §4.4-§4.6).

A simulcast camera (bench/simulcast.py: real libvpx VP8 at 160x120 ~150 kbit/s and
320x240 ~500 kbit/s, noise pictures so each layer spends its bitrate) reaches a subscriber
that joined asking for BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION:

* an aiortc subscriber reports its downlink with RTCP REMB; the test checks which picture
  size it decodes, the S→C PAUSE/RESUME frames and BITRATES'
  ``server_available_outgoing_bitrate``;
* a light subscriber speaking transport-cc (bench/twccpeer.py) gets every video packet
  numbered, reports loss in its feedback, then the truth; the test checks which keyframe
  sizes arrive and that the server probed its way back up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench.peer import ChimePeer
from bench.simulcast import SimulcastPublisher
from bench.twccpeer import TwccSubscriber
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from signaling.messages import (
    ServerSideNetworkAdaption,
)
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess, running_server

pytestmark = pytest.mark.timeout(180)

T = 20.0 * TIMEOUT_FACTOR
LOW, HI = (160, 120), (320, 240)
ROOMY, TIGHT, STARVED = 2_000_000, 240_000, 40_000
"""REMB values: both layers fit; only the low layer fits; not even that one."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("carillon") / "data"
    args = [
        "--api-rate",
        "10000",
        "--api-burst",
        "10000",
        "--server-side-adaption",
        "--log-level",
        "debug",
    ]
    with running_server(data_dir, args) as srv:
        yield srv


async def _report_until(
    peer: ChimePeer, bitrate: int | None, done: Callable[[], bool], what: str
) -> None:
    """Send REMB ``bitrate`` (None: nothing) twice a second, as receivers repeat it,
    until ``done()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while not done():
        assert loop.time() < deadline, f"{what}: decoded sizes {peer.video_sizes}"
        if bitrate is not None:
            await peer.send_remb(bitrate)
        await asyncio.sleep(0.5)


def _decoding(
    peer: ChimePeer, size: tuple[int, int], count: int, mid: str = "2"
) -> Callable[[], bool]:
    """Whether at least ``count`` frames of ``size`` were decoded since it became current."""

    def check() -> bool:
        sizes = peer.video_sizes.get(mid, [])
        if not sizes or sizes[-1][0] != size:
            return False
        return peer.video_frames_received[mid] - sizes[-1][1] >= count

    return check


async def _publish(
    chime: Any, name: str, viewers: int, **kwargs: Any
) -> tuple[SimulcastPublisher, SignalingClient, list[SignalingClient], int, int]:
    """A meeting with a started noise simulcast camera and joined adaptive viewers."""
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId=name
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=f"{name}-{i}")
        for i in range(1 + viewers)
    ]
    camera = SimulcastPublisher(DtlsCertificate.generate(), noise=True)
    publisher = SignalingClient(meeting, people[0])
    clients = [SignalingClient(meeting, p, server_side_adaption=True) for p in people[1:]]
    for client in (publisher, *clients):
        await client.connect(T)
        await client.join(T)
    _, (low, hi) = await camera.publish(publisher)
    for client in clients:
        await client.wait_for(lambda c: len(c.index_sources) == 2, T, "both layers")
    return camera, publisher, clients, low, hi


async def _until(done: Callable[[], bool], what: str, limit: float = T) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not done():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.1)


async def test_transport_cc_feedback_moves_a_subscriber_down_and_probes_bring_it_back(
    chime: Any, server: ServerProcess
) -> None:
    camera, publisher, (viewer,), _, hi = await _publish(chime, "twcc", 1)
    peer = TwccSubscriber(DtlsCertificate.generate(), receive_videos=1)
    try:
        await peer.start()
        offer = peer.offer()
        answer = await viewer.subscribe(offer, receive_stream_ids=[0, hi])
        assert "transport-wide-cc" in answer.sdp_answer and "transport-cc" in answer.sdp_answer
        await peer.connect(answer.sdp_answer)
        await _until(lambda: HI in peer.keyframe_sizes and peer.feedback_sent >= 10, "HI")
        # Every forwarded packet carries its transport-wide number.
        assert peer.stamped == peer.video_packets > 0

        # The feedback reports 12 % loss: the estimate falls below the high layer.
        peer.report_loss = 0.12
        await _until(lambda: peer.keyframe_sizes[-1] == LOW, f"LOW: {peer.keyframe_sizes}")
        peer.report_loss = 0.0
        padding = peer.padding
        # Honest feedback again: probes (padding packets) show room, the layer goes up.
        # (The estimate climbs about 8 % a second, hence the longer bound.)
        await _until(
            lambda: peer.keyframe_sizes[-1] == HI, f"HI again: {peer.keyframe_sizes}", 4 * T
        )
        assert peer.padding > padding, "the server probed with padding"
        assert peer.stamped == peer.video_packets
        assert peer.srtp_errors == 0
    finally:
        camera.close()
        peer.close()
        await publisher.close()
        await viewer.close()


async def test_the_server_moves_a_subscriber_between_layers_by_its_estimate(
    chime: Any, server: ServerProcess
) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="bwe"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "viewer")
    ]
    camera = SimulcastPublisher(DtlsCertificate.generate(), noise=True)
    publisher = SignalingClient(meeting, people[0])
    viewer = SignalingClient(meeting, people[1], server_side_adaption=True)
    peer = ChimePeer(None, receive_videos=1)
    try:
        for client in (publisher, viewer):
            await client.connect(T)
            await client.join(T)
        assert publisher.join_ack is not None and viewer.join_ack is not None
        # Granted explicitly to the client that asked; the other keeps client-side adaption.
        assert (
            viewer.join_ack.default_server_side_network_adaption
            is ServerSideNetworkAdaption.BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION
        )
        assert publisher.join_ack.default_server_side_network_adaption is None

        _, (_, hi) = await camera.publish(publisher)

        await viewer.wait_for(lambda c: len(c.index_sources) == 2, T, "both layers")
        (group,) = {s.group_id for s in viewer.index_sources}
        # The client names the source by its high layer; with no estimate yet the server
        # forwards what was asked.
        answer = await viewer.subscribe(await peer.create_offer(), receive_stream_ids=[0, hi])
        await peer.set_answer(answer.sdp_answer)
        await _report_until(peer, None, _decoding(peer, HI, 10), "the requested layer")

        # A constrained downlink: the server moves the m-line to the low layer.
        await _report_until(peer, TIGHT, _decoding(peer, LOW, 10), "down to the low layer")
        # BITRATES carries the subscriber's estimate in kbps (§4.4).
        await viewer.wait_for(
            lambda c: (
                c.bitrates is not None
                and c.bitrates.server_available_outgoing_bitrate == TIGHT // 1000
            ),
            T,
            "BITRATES with the estimate",
        )

        # Room again: back up to the high layer, on the same m-line, still decoding.
        await _report_until(peer, ROOMY, _decoding(peer, HI, 10), "back up to the high layer")

        # Not even the low layer fits: the server pauses the source's group (§4.6) ...
        await _report_until(peer, STARVED, lambda: group in viewer.paused_groups, "PAUSE")
        # ... and resumes it when the downlink recovers.
        frames = peer.video_frames_received["2"]
        await _report_until(
            peer,
            ROOMY,
            lambda: (
                group not in viewer.paused_groups and peer.video_frames_received["2"] >= frames + 10
            ),
            "RESUME",
        )
        assert viewer.pause_log == [(group, True), (group, False)]
        # Every size the subscriber decoded was one of the two layers, on one m-line.
        assert [size for size, _ in peer.video_sizes["2"]] == [HI, LOW, HI]
    finally:
        camera.close()
        await publisher.close()
        await viewer.close()
        await peer.close()


async def test_a_paused_m_line_moved_to_another_source_resumes_the_old_group(
    chime: Any, server: ServerProcess
) -> None:
    """S→C PAUSE names the source's group (§4.6). A client that moves a paused m-line to
    another camera gets RESUME for the group it no longer receives there, and the new
    source is paused under its own group while the downlink stays starved."""
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="move"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera-1", "camera-2", "viewer")
    ]
    cameras = [SimulcastPublisher(DtlsCertificate.generate(), noise=True) for _ in range(2)]
    publishers = [SignalingClient(meeting, p) for p in people[:2]]
    viewer = SignalingClient(meeting, people[2], server_side_adaption=True)
    peer = ChimePeer(None, receive_videos=1)
    try:
        for client in (*publishers, viewer):
            await client.connect(T)
            await client.join(T)
        his = [
            (await cam.publish(client))[1][1]
            for cam, client in zip(cameras, publishers, strict=True)
        ]
        await viewer.wait_for(lambda c: len(c.index_sources) == 4, T, "both cameras")
        group_of = {s.stream_id: s.group_id for s in viewer.index_sources}
        first, second = group_of[his[0]], group_of[his[1]]
        assert first != second
        answer = await viewer.subscribe(await peer.create_offer(), receive_stream_ids=[0, his[0]])
        await peer.set_answer(answer.sdp_answer)
        await _report_until(peer, None, _decoding(peer, HI, 10), "the first camera")
        await _report_until(peer, STARVED, lambda: first in viewer.paused_groups, "PAUSE")

        # Still starved, the client moves the m-line to the second camera.
        await viewer.update_remote_video("2", his[1])
        await _report_until(
            peer,
            STARVED,
            lambda: first not in viewer.paused_groups and second in viewer.paused_groups,
            "RESUME of the first camera's group, PAUSE of the second's",
        )
        assert viewer.pause_log == [(first, True), (first, False), (second, True)]
    finally:
        for camera in cameras:
            camera.close()
        for client in (*publishers, viewer):
            await client.close()
        await peer.close()
