"""``python -m bench video-meeting``: frame rate and freezes as subscribers see them.

``--publishers`` bots send a simulcast camera (bench/simulcast.py: libvpx VP8 at 160x120
and 320x240, 15 frames/s); ``--subscribers`` light bots each subscribe to every
publisher's high layer on their own ``recvonly`` m-lines (chime-signaling-protocol.md
§4.3). Subscribers read only the clear RTP header of what arrives: a marker bit ends a
frame (RFC 7741 §4.1), so frames per second come without decoding; a gap of more than
500 ms between two frames of a stream is counted as a freeze. Cameras and subscribers are
dealt to ``--processes`` worker processes (bench/fleet.py); ``--subscribers 10,20,40``
measures several meeting sizes (the plot's axis).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import uvloop

from bench.fleet import Fleet, WorkerState, schedule
from bench.join import MAX_PER_MEETING, JoinItem, Roster, numbered, spread
from bench.litepeer import LitePeer
from bench.options import (
    add_output_arguments,
    add_server_arguments,
    bot_cpus,
    open_server,
    pin_to_bot_cpus,
    process_count,
)
from bench.plots import plot_video_meeting
from bench.progress import tracking
from bench.report import finish, measured
from bench.simulcast import SimulcastPublisher
from bench.stats import median, percentile
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient

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


# -- worker-side commands (bench/fleet.py) -------------------------------------------------


def _clients(state: WorkerState) -> list[SignalingClient]:
    clients: list[SignalingClient] = state.data.setdefault("clients", [])
    return clients


async def video_publish(state: WorkerState, items: list[JoinItem]) -> list[int]:
    """Fleet command: these attendees publish a simulcast camera; the high layers'
    stream ids."""
    certificate = DtlsCertificate.generate()
    cameras: list[SimulcastPublisher] = state.data.setdefault("cameras", [])
    high_layers = []
    for _, meeting, attendee in items:
        client = SignalingClient({"Meeting": meeting}, {"Attendee": attendee})
        _clients(state).append(client)
        await client.connect()
        await client.join()
        camera = SimulcastPublisher(certificate)
        cameras.append(camera)
        _, (_, high) = await camera.publish(client)
        high_layers.append(high)
        state.count_join()
    return high_layers


async def video_subscribe(
    state: WorkerState, items: list[JoinItem], high_layers: list[int], t0: float, rate: float
) -> int:
    """Fleet command: these attendees subscribe to every camera's high layer."""
    certificate = DtlsCertificate.generate()
    viewers: list[Viewer] = state.data.setdefault("viewers", [])

    async def subscribe(k: int, meeting: dict[str, Any], attendee: dict[str, Any]) -> None:
        await asyncio.sleep(max(0.0, schedule(t0, rate, k) - time.monotonic()))
        client = SignalingClient({"Meeting": meeting}, {"Attendee": attendee})
        _clients(state).append(client)
        viewer = Viewer(certificate, receive_videos=len(high_layers))
        viewers.append(viewer)
        await viewer.start()
        await client.connect()
        await client.join()
        ack = await client.subscribe(viewer.offer(), receive_stream_ids=[0, *high_layers])
        await viewer.connect(ack.sdp_answer)
        state.count_join()

    await asyncio.gather(*(subscribe(*item) for item in items))
    return len(viewers)


async def video_count(state: WorkerState, counting: bool) -> dict[str, Any]:
    """Fleet command: start (or stop) counting frames; what was counted so far."""
    viewers: list[Viewer] = state.data.get("viewers", [])
    for viewer in viewers:
        viewer.counting = counting
    streams = [s for v in viewers for s in v.streams.values()]
    return {
        "frames": [s.frames for s in streams],
        "packets": sum(s.packets for s in streams),
        "freezes": sum(s.freezes for s in streams),
    }


async def video_close(state: WorkerState) -> None:
    """Fleet command: close cameras, viewers and signaling clients."""
    for peer in [*state.data.pop("cameras", []), *state.data.pop("viewers", [])]:
        peer.close()
    clients = state.data.pop("clients", [])
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# -- the scenario --------------------------------------------------------------------------


async def _size(args: argparse.Namespace, fleet: Fleet, subscribers: int) -> dict[str, float]:
    extra = ["--api-rate", "100000", "--api-burst", "100000"]
    attendees = args.publishers + subscribers
    if attendees > MAX_PER_MEETING:
        extra += ["--max-attendees-per-meeting", str(attendees)]
    with open_server(args, extra) as server:
        people = numbered(await Roster(server, per_meeting=attendees).attendees(attendees))
        cameras = people[: args.publishers]
        base = fleet.joined_count
        async with tracking(f"video-meeting {subscribers}: joining", attendees,
                            lambda: fleet.joined_count - base):  # fmt: skip
            layers = await fleet.call(
                video_publish, [{"items": cameras[i :: fleet.processes]}
                                for i in range(fleet.processes)])  # fmt: skip
            high_layers = [stream for part in layers for stream in part]
            viewers = numbered([(m, a) for _, m, a in people[args.publishers :]])
            work = [{**w, "high_layers": high_layers, "t0": time.monotonic(),
                     "rate": args.join_rate} for w in spread(viewers, fleet.processes)]  # fmt: skip
            await fleet.call(video_subscribe, work)
        await asyncio.sleep(2.0)  # keyframes after the subscriptions' PLIs
        await fleet.call(video_count, {"counting": True})
        window = await measured(server, args.duration, f"video-meeting {subscribers}")
        counted = await fleet.call(video_count, {"counting": False})
        await fleet.call(video_close)
        elapsed = window.seconds
        fps = [f / elapsed for c in counted for f in c["frames"]]
        expected = subscribers * args.publishers
        fps += [0.0] * max(0, expected - len(fps))  # a stream never seen counts as 0
        return {
            "attendees": float(attendees),
            "subscriptions": float(expected),
            "fps_p50": percentile(fps, 50),
            "fps_min": min(fps) if fps else 0.0,
            "freezes": float(sum(c["freezes"] for c in counted)),
            "forwarded_packets_per_s": sum(c["packets"] for c in counted) / elapsed,
            "server_cpu": window.server_cpu,
            "server_cpu_wait_pct": 100 * window.server_cpu_wait,
            "server_rss_mb": window.server_rss_mb,
        }


def _subscribers(args: argparse.Namespace) -> list[int]:
    try:
        sizes = [int(c) for c in str(args.subscribers).split(",")]
    except ValueError:
        raise SystemExit(f"--subscribers must list counts, not {args.subscribers!r}") from None
    if any(c < 1 for c in sizes) or args.publishers < 1:
        raise SystemExit("--publishers and --subscribers must be >= 1")
    return sizes


async def _once(args: argparse.Namespace, processes: int) -> list[dict[str, float]]:
    with Fleet(processes, bot_cpus(args)) as fleet:
        return [await _size(args, fleet, n) for n in _subscribers(args)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument(
        "--subscribers", default="10", help="subscribers; a list (10,20,40) measures several"
    )
    parser.add_argument("--join-rate", type=float, default=50.0, help="joins per second")
    parser.add_argument("--duration", type=float, default=10.0)
    add_server_arguments(parser)
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = _subscribers(args)
    if args.join_rate <= 0:
        raise SystemExit("--join-rate must be > 0")
    pin_to_bot_cpus(args)
    processes = process_count(args, args.publishers + max(sizes))
    runs = [uvloop.run(_once(args, processes)) for _ in range(args.runs)]
    medians = [{k: median([r[i][k] for r in runs]) for k in runs[0][i]}
               for i in range(len(sizes))]  # fmt: skip
    summary: dict[str, Any] = {
        "command": f"python -m bench video-meeting --runs {args.runs} --publishers "
        f"{args.publishers} --subscribers {args.subscribers} --duration {args.duration:g} "
        f"--processes {processes}",
        "scenario": "video-meeting",
        "processes": processes,
        "runs": runs,
        "median": medians,
    }
    keys = list(medians[0])
    finish(args, "video-meeting", summary, keys, [[m[k] for k in keys] for m in medians],
           note=f"15 frames/s sent; {processes} bot processes",
           plot=plot_video_meeting)  # fmt: skip
    return summary
