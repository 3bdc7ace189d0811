"""Per-subscriber pacing in the server's video fan-out (mediaserver/sfu/pacer.py): a
subscriber with a tiny downlink loses its own old video, counted, and the others lose
nothing.

One camera (bench/simulcast.py with a single 320x240 layer of noise pictures, about
500 kbit/s, so no layer choice can help) reaches two light subscribers
(bench/twccpeer.py in its REMB-only mode, which count the RTP sequence numbers they
miss). Neither asks for server-side adaption. One reports a roomy downlink with REMB, the
other 40 kbit/s: the server paces the latter at its floor (100 kbit/s), far below the
stream, so its pacer queue overflows its time bound and drops.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bench.simulcast import SimulcastPublisher, VideoLayer
from bench.twccpeer import TwccSubscriber
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess

pytestmark = pytest.mark.timeout(120)

T = 20.0 * TIMEOUT_FACTOR
ROOMY, TINY = 5_000_000, 40_000
"""REMB bits/s of the two subscribers."""


def _metrics(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _pacer_drops(text: str) -> float:
    return sum(
        _value(text, f'carillon_dropped_packets_total{{reason="{reason}"}}')
        for reason in ("egress_queue_full", "egress_stale")
    )


async def _until(done: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while not done():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.2)


async def _report(peers: list[tuple[TwccSubscriber, int]]) -> None:
    """REMB twice a second, as receivers repeat it."""
    while True:
        for peer, bitrate in peers:
            peer.send_remb(bitrate)
        await asyncio.sleep(0.5)


async def test_a_slow_subscriber_drops_its_own_video_and_the_fast_one_loses_nothing(
    chime: Any, server: ServerProcess
) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="pace"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "fast", "slow")
    ]
    camera = SimulcastPublisher(
        DtlsCertificate.generate(), noise=True, layers=[VideoLayer("hi", 320, 240, 500_000)]
    )
    publisher = SignalingClient(meeting, people[0])
    viewers = [SignalingClient(meeting, p) for p in people[1:]]
    fast, slow = (
        TwccSubscriber(DtlsCertificate.generate(), receive_videos=1, transport_cc=False)
        for _ in viewers
    )
    reporter: asyncio.Task[None] | None = None
    try:
        for client in (publisher, *viewers):
            await client.connect(T)
            await client.join(T)
        _, (stream_id,) = await camera.publish(publisher)
        for client, peer in zip(viewers, (fast, slow), strict=True):
            await client.wait_for(lambda c: len(c.index_sources) == 1, T, "the INDEX")
            await peer.start()
            answer = await client.subscribe(peer.offer(), receive_stream_ids=[0, stream_id])
            await peer.connect(answer.sdp_answer)
        reporter = asyncio.create_task(_report([(fast, ROOMY), (slow, TINY)]))

        # The slow subscriber's pacer drops (counted), and it misses packets.
        await _until(lambda: slow.sequence_gaps >= 20, f"slow gaps: {slow.sequence_gaps}")
        text = await asyncio.to_thread(_metrics, server)
        assert _pacer_drops(text) > 0
        assert _value(text, "carillon_paced_packets_total") > 0
        # The server keeps serving both: the fast one at the full rate, the slow one at
        # its pace.
        fast_before, slow_before = fast.video_packets, slow.video_packets
        await _until(
            lambda: (
                fast.video_packets >= fast_before + 200 and slow.video_packets >= slow_before + 5
            ),
            f"still serving: fast {fast.video_packets}, slow {slow.video_packets}",
        )
        gaps = slow.sequence_gaps
        dropped = _pacer_drops(await asyncio.to_thread(_metrics, server))
        # Every packet the slow subscriber missed was dropped by its pacer and counted.
        assert 0 < gaps <= dropped
        # The fast subscriber lost nothing: no sequence gap at all on loopback.
        assert fast.sequence_gaps == 0, f"fast subscriber missed {fast.sequence_gaps} packets"
        assert fast.video_packets > 2 * slow.video_packets
        assert fast.srtp_errors == 0 and slow.srtp_errors == 0
    finally:
        if reporter is not None:
            reporter.cancel()
        camera.close()
        fast.close()
        slow.close()
        await publisher.close()
        for client in viewers:
            await client.close()
