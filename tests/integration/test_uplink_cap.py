"""A sender over its video bitrate cap gets REMB limits, then loses whole frames
(meetings-digest.md §4.5), and its subscribers keep decoding.

The server runs with ``--max-video-kbps 300``; the simulcast camera (bench/simulcast.py,
noise pictures so each layer spends its bitrate) sends about 450 kbit/s and ignores REMB.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench.peer import ChimePeer
from bench.simulcast import SimulcastPublisher
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess, running_server

pytestmark = pytest.mark.timeout(120)

T = 20.0 * TIMEOUT_FACTOR
CAP_KBPS = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("carillon") / "data"
    args = ["--api-rate", "10000", "--api-burst", "10000", "--max-video-kbps", str(CAP_KBPS)]
    with running_server(data_dir, args) as srv:
        yield srv


def _metric(server: ServerProcess, name: str) -> float:
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _until(done: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while not done():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.2)


async def test_a_sender_over_its_cap_gets_remb_then_frames_are_dropped(
    chime: Any, server: ServerProcess
) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="cap"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "viewer")
    ]
    camera = SimulcastPublisher(DtlsCertificate.generate(), noise=True)
    publisher = SignalingClient(meeting, people[0])
    viewer = SignalingClient(meeting, people[1])
    peer = ChimePeer(None, receive_videos=1)
    try:
        for client in (publisher, viewer):
            await client.connect(T)
            await client.join(T)
        _, (_, hi) = await camera.publish(publisher)
        await viewer.wait_for(lambda c: len(c.index_sources) == 2, T, "both layers")
        answer = await viewer.subscribe(await peer.create_offer(), receive_stream_ids=[0, hi])
        await peer.set_answer(answer.sdp_answer)

        # REMB with the cap first ...
        await _until(lambda: CAP_KBPS * 1000 in camera.rembs, f"REMB: {camera.rembs}")
        # ... then, as the camera ignores it, whole frames are dropped.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + T
        frames_dropped = "carillon_video_frames_dropped_over_cap_total"
        while await asyncio.to_thread(_metric, server, frames_dropped) < 1:
            assert loop.time() < deadline, "no frames dropped over the cap"
            await asyncio.sleep(0.5)
        assert set(camera.rembs) == {CAP_KBPS * 1000}
        dropped = await asyncio.to_thread(
            _metric, server, 'carillon_dropped_packets_total{reason="over_bitrate_cap"}'
        )
        keyframes = camera.layers[1].keyframes
        frames = peer.video_frames_received.get("2", 0)
        # The subscriber keeps decoding: each dropped run ends at a keyframe the server
        # asked the camera for.
        await _until(
            lambda: (
                peer.video_frames_received.get("2", 0) >= frames + 10
                and camera.layers[1].keyframes > keyframes
            ),
            f"decoding after drops: {peer.video_frames_received} {camera.layers[1].keyframes}",
        )
        assert dropped > 0
        assert [size for size, _ in peer.video_sizes["2"]] == [(320, 240)]
    finally:
        camera.close()
        await publisher.close()
        await viewer.close()
        await peer.close()
