"""``python -m bench video-meeting``: frame rate and freezes as subscribers see them.

``--publishers`` bots send a simulcast camera (bench/simulcast.py: libvpx VP8 at 160x120
and 320x240, 15 frames/s); ``--subscribers`` light bots each subscribe to every
publisher's high layer on their own ``recvonly`` m-lines (chime-signaling-protocol.md
§4.3). Subscribers read only the clear RTP header of what arrives: a marker bit ends a
frame (RFC 7741 §4.1), so frames per second come without decoding; a gap of more than
500 ms between two frames of a stream is counted as a freeze.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from bench.join import Roster
from bench.litepeer import LitePeer
from bench.server import BenchServer
from bench.simulcast import SimulcastPublisher
from bench.stats import format_table, median, percentile
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from signaling.messages import MediaType, StreamDescriptor, StreamServiceType

__all__ = ["add_arguments", "run"]

FREEZE = 0.5


@dataclass
class _Stream:
    frames: int = 0
    packets: int = 0
    last_frame: float | None = None
    freezes: int = 0


@dataclass
class Viewer(LitePeer):
    """A light peer that counts video frames per SSRC from the clear RTP header."""

    streams: dict[int, _Stream] = field(default_factory=dict)
    counting: bool = False

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) > 12 and 128 <= data[0] <= 191 and (data[1] & 0x7F) == 96:
            if self.counting:
                ssrc = int.from_bytes(data[8:12], "big")
                stream = self.streams.get(ssrc)
                if stream is None:
                    stream = self.streams[ssrc] = _Stream()
                stream.packets += 1
                if data[1] & 0x80:
                    now = time.monotonic()
                    if stream.last_frame is not None and now - stream.last_frame > FREEZE:
                        stream.freezes += 1
                    stream.last_frame = now
                    stream.frames += 1
            return
        super().datagram_received(data, addr)


def _layer(rid: str, kbps: int, attendee_id: str) -> StreamDescriptor:
    return StreamDescriptor(
        stream_id=0, group_id=0, track_label=rid, media_type=MediaType.VIDEO,
        max_bitrate_kbps=kbps, framerate=15, attendee_id=attendee_id,
    )  # fmt: skip


async def _once(args: argparse.Namespace) -> dict[str, float]:
    extra = ["--api-rate", "100000", "--api-burst", "100000"]
    with BenchServer(extra_args=extra) as server:
        people = await Roster(server).attendees(args.publishers + args.subscribers)
        certificate = DtlsCertificate.generate()
        clients: list[SignalingClient] = []
        cameras: list[SimulcastPublisher] = []
        high_layers: list[int] = []
        for meeting, attendee in people[: args.publishers]:
            client = SignalingClient({"Meeting": meeting}, {"Attendee": attendee})
            clients.append(client)
            await client.connect()
            await client.join()
            camera = SimulcastPublisher(certificate)
            cameras.append(camera)
            await camera.start()
            ack = await client.subscribe(
                camera.offer(),
                video_send_streams=[
                    _layer("low", 150, client.attendee_id),
                    _layer("hi", 500, client.attendee_id),
                ],
                duplex=StreamServiceType.DUPLEX,
            )
            high_layers.append(ack.allocations[1].stream_id or 0)
            await camera.connect(ack.sdp_answer)
            await camera.start_video()
        viewers: list[Viewer] = []

        async def subscribe(meeting: dict[str, Any], attendee: dict[str, Any]) -> None:
            client = SignalingClient({"Meeting": meeting}, {"Attendee": attendee})
            clients.append(client)
            viewer = Viewer(certificate, receive_videos=len(high_layers))
            viewers.append(viewer)
            await viewer.start()
            await client.connect()
            await client.join()
            ack = await client.subscribe(viewer.offer(), receive_stream_ids=[0, *high_layers])
            await viewer.connect(ack.sdp_answer)

        await asyncio.gather(*(subscribe(m, a) for m, a in people[args.publishers :]))
        await asyncio.sleep(2.0)  # keyframes after the subscriptions' PLIs
        for viewer in viewers:
            viewer.counting = True
        start = server.sample()
        await asyncio.sleep(args.duration)
        end = server.sample()
        elapsed = end.at - start.at
        fps = [s.frames / elapsed for v in viewers for s in v.streams.values()]
        expected = args.subscribers * args.publishers
        fps += [0.0] * max(0, expected - len(fps))  # a stream never seen counts as 0
        packets = sum(s.packets for v in viewers for s in v.streams.values())
        freezes = sum(s.freezes for v in viewers for s in v.streams.values())
        for camera in cameras:
            camera.close()
        for viewer in viewers:
            viewer.close()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        return {
            "subscriptions": float(expected),
            "fps_p50": percentile(fps, 50),
            "fps_min": min(fps) if fps else 0.0,
            "freezes": float(freezes),
            "forwarded_packets_per_s": packets / elapsed,
            "server_cpu": (end.cpu_seconds - start.cpu_seconds) / elapsed,
            "server_rss_mb": end.rss_bytes / 1e6,
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    cpus = os.sched_getaffinity(0)
    if len(cpus) > 1 and 1 in cpus:
        os.sched_setaffinity(0, {1})
    runs = [uvloop.run(_once(args)) for _ in range(args.runs)]
    m = {k: median([r[k] for r in runs]) for k in runs[0]}
    summary: dict[str, Any] = {
        "command": f"python -m bench video-meeting --runs {args.runs} --publishers "
        f"{args.publishers} --subscribers {args.subscribers} --duration {args.duration:g}",
        "runs": runs,
        "median": m,
    }
    print(f"\n{summary['command']}  (median of {args.runs} runs; 15 frames/s sent)\n")
    print(format_table(["measure", "value"], [[k, v] for k, v in m.items()]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return summary
