"""A two-layer simulcast camera published through the real server, for video tests."""

from __future__ import annotations

from bench.simulcast import SimulcastPublisher
from signaling.client import SignalingClient, SubscribeAck
from signaling.messages import MediaType, StreamDescriptor, StreamServiceType

__all__ = ["layer", "publish_two_layers"]


def layer(rid: str, kbps: int, attendee_id: str) -> StreamDescriptor:
    """The SUBSCRIBE descriptor of one simulcast encoding (chime-signaling-protocol.md §4.2)."""
    return StreamDescriptor(
        stream_id=0, group_id=0, track_label=rid, media_type=MediaType.VIDEO,
        max_bitrate_kbps=kbps, framerate=15, attendee_id=attendee_id,
    )  # fmt: skip


async def publish_two_layers(
    camera: SimulcastPublisher, publisher: SignalingClient
) -> tuple[int, int, SubscribeAck]:
    """Start ``camera`` as ``publisher``'s simulcast camera (RIDs low at 150 kbit/s and hi
    at 500) and return the two allocated stream ids and the SUBSCRIBE_ACK."""
    await camera.start()
    ack = await publisher.subscribe(
        camera.offer(),
        video_send_streams=[
            layer("low", 150, publisher.attendee_id),
            layer("hi", 500, publisher.attendee_id),
        ],
        duplex=StreamServiceType.DUPLEX,
    )
    low, hi = (a.stream_id for a in ack.allocations)
    assert low and hi and low != hi
    await camera.connect(ack.sdp_answer)
    await camera.start_video()
    return low, hi, ack
