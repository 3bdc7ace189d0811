"""A publisher that numbers its packets transport-wide gets transport-cc feedback from the
server (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) that reports exactly the
numbers it left unsent as lost and every other one as received.

The camera is the light simulcast publisher (bench/simulcast.py) with ``transport_cc``: it
offers the extension and ``transport-cc`` feedback on its camera m-line, starts its numbers
just below the 16-bit wrap and skips every 7th number.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from bench.simulcast import SimulcastPublisher
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess

pytestmark = pytest.mark.timeout(120)

T = 20.0 * TIMEOUT_FACTOR


async def test_the_server_reports_exactly_the_numbers_lost_on_the_uplink(
    chime: Any, server: ServerProcess
) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="twcc"
    )
    attendee = chime.create_attendee(
        MeetingId=meeting["Meeting"]["MeetingId"], ExternalUserId="camera"
    )
    camera = SimulcastPublisher(
        DtlsCertificate.generate(), transport_cc=True, skip_transport_every=7
    )
    client = SignalingClient(meeting, attendee)
    try:
        await client.connect(T)
        await client.join(T)
        await camera.publish(client)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + T

        def reported() -> dict[int, bool]:
            """Number → received, from every feedback so far (later reports win)."""
            fates: dict[int, bool] = {}
            for feedback in camera.transport_feedback:
                for seq, delta in feedback.packet_results():
                    fates[seq] = delta is not None
            return fates

        while len(camera.transport_sent) < 300:
            assert loop.time() < deadline, f"sent only {len(camera.transport_sent)} packets"
            await asyncio.sleep(0.1)
        # Every number handed out so far, in sending order (they start at 0xFFFF - 100).
        order = sorted(
            camera.transport_sent + camera.transport_skipped, key=lambda s: (s + 101) & 0xFFFF
        )
        sent, skipped = set(camera.transport_sent), set(camera.transport_skipped)
        target = camera.transport_sent[299]
        while target not in reported():
            assert loop.time() < deadline, f"no feedback up to {target}: {len(reported())}"
            await asyncio.sleep(0.1)
        fates = reported()
        counts = [f.feedback_packet_count for f in camera.transport_feedback]
        assert counts == [c & 0xFF for c in range(counts[0], counts[0] + len(counts))]
        # From the first number reported up to the target, every number is reported:
        # received when it was sent, lost when it was skipped.
        covered = order[order.index(next(s for s in order if s in fates)) : order.index(target) + 1]
        assert {0xFFFF, 0} <= set(covered), "the report does not cross the wrap"
        assert all(s in fates for s in covered)
        assert {s for s in covered if fates[s]} == sent & set(covered)
        assert {s for s in covered if not fates[s]} == skipped & set(covered)
        assert len(skipped & set(covered)) >= 30
    finally:
        camera.close()
        await client.close()
