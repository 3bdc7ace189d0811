"""``python -m bench sfu``: forwarded SRTP packets/s per core and forwarding latency.

Three processes talk over real UDP sockets on loopback:

* the **forwarder** under test, pinned to CPU 0, one uvloop ``DatagramProtocol`` on one
  UDP port (as the server has): either the **SFU** path (SRTP unprotect, PacketView,
  uplink NACK log, ``fan_out`` through ``Forwarder``/``SeqMunger``/``SimulcastSelector``
  with VP8 temporal filtering, retransmission history, transport-wide numbering, drop-oldest
  ``EgressQueue``, then one coalesced flush per loop iteration doing SRTP protect +
  ``sendto`` per subscriber) or the **bare** baseline measured in the same run (SRTP
  unprotect, then protect + ``sendto`` per destination, no SFU logic);
* a **sender** (CPU 1) building 1200-byte VP8 packets (L1T3 temporal pattern, a key frame
  every 100 frames, a transport-cc extension), protecting them live and sending them at a
  controlled rate;
* **receivers** (CPU 1), one socket per subscriber: in the saturation phase they are
  bound and never read (as in ``anchors-and-performance.md`` §9.3d, so the sender gets
  CPU 1); in the latency phase they count, unprotect and read the send time the sender
  wrote into the payload.

With ``--server-path`` two more forwarders are measured in the same run: the path the
server runs today (``mediaserver.media.MediaServer._fan_out``: SRTP unprotect, uplink
NACK log, byte count, ``VideoRouter`` outs, the packet split once (``prepare``) and
``OutStream.forward_prepared`` renumbering each copy, the subscriber's
``Pacer.offer`` (paced at a rate the flood never reaches: its fast path), SRTP
protect + ``sendto``), once as is (``server``) and once stamping each copy with the
subscriber's transport-wide sequence number (``server+twcc``, ``mediaserver.sfu.controller``),
which prices the stamping; then the server path's latency at half of its own maximum.

Scenarios: ``1->16`` (one publisher, 16 subscribers) and ``25->25`` (25 participants,
each receiving the other 24). Phase 1 floods the forwarder and measures output packets
per forwarder CPU second (``/proc`` CPU time; the loop is saturated, so this is also the
rate of one core). Phase 2 sends at half of the SFU's measured maximum and reports p50/p99
of send-to-receive latency (both forwarders at the same rate). Each figure is the median
of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.stats import format_table, median, percentile
from mediaserver.rtp.packet import peek_extension_offset, peek_payload_offset
from mediaserver.sfu.controller import DownlinkController
from mediaserver.sfu.egress import EgressQueue, Subscription, fan_out
from mediaserver.sfu.forwarder import Forwarder, KeyframeRequestThrottle
from mediaserver.sfu.layers import SimulcastSelector
from mediaserver.sfu.nack import NackGenerator
from mediaserver.sfu.pacer import Pacer
from mediaserver.sfu.retransmission import RetransmissionBuffer
from mediaserver.sfu.twcc import TransportSequencer
from mediaserver.sfu.twcc_feedback import TransportFeedbackGenerator
from mediaserver.sfu.view import PacketViewParser
from mediaserver.transport.srtp import SRTP_AES128_CM_SHA1_80, SrtpContext, SrtpKeys
from mediaserver.video import VideoRouter, prepare

__all__ = ["add_arguments", "run"]

PACKET_SIZE = 1200
TWCC_ID = 3
PAYLOAD_TYPE = 96
STAMP_OFFSET = 40
"""Where the sender writes its send time (monotonic ns) in the RTP packet."""
SCENARIOS = {"1->16": (1, 16), "25->25": (25, 25)}
PROFILE = SRTP_AES128_CM_SHA1_80
"""The profile every browser offers (§9.3c: the slower of the two, so the conservative one)."""

_HEAD = struct.Struct("!BBHIIHHBBBBBBBB")
_STAMP = struct.Struct("!Q")
_PAYLOAD_OFFSET = 20
"""Where the sender's payload starts: the 12-byte header and one 8-byte extension block."""


@dataclass
class Topology:
    """Who publishes and who receives what."""

    publishers: int
    subscribers: int
    keys: list[bytes]
    """Keying material per participant (publishers first, then extra subscribers)."""

    def receives(self, subscriber: int) -> list[int]:
        """The publishers a subscriber receives (not its own)."""
        if self.publishers == 1:
            return [0]
        return [p for p in range(self.publishers) if p != subscriber]

    def context(self, participant: int, role: str) -> SrtpContext:
        keys = SrtpKeys.from_keying_material(PROFILE, self.keys[participant])
        return SrtpContext(keys, role="client" if role == "client" else "server")

    def subscriber_participant(self, subscriber: int) -> int:
        return subscriber if self.publishers > 1 else 1 + subscriber


@dataclass
class ForwarderResult:
    received: int
    sent: int
    cpu_seconds: float
    wall_seconds: float
    queue_drops: int

    @property
    def out_per_core(self) -> float:
        return self.sent / self.cpu_seconds if self.cpu_seconds else 0.0


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or NaN when nothing was measured (a phase too short
    on a busy machine counts no packet; a smoke run must not die of it)."""
    return numerator / denominator if denominator else float("nan")


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _packet(ssrc: int, seq: int, frame: int, index: int, twcc: int) -> bytearray:
    tid = (0, 2, 1, 2)[frame % 4]
    keyframe = frame % 100 == 0 and index == 0
    first = 0x80 | (0x10 if index == 0 else 0)  # X, and S on the frame's first packet
    buf = bytearray(PACKET_SIZE)
    _HEAD.pack_into(
        buf, 0,
        0x90, PAYLOAD_TYPE | (0x80 if index == 2 else 0), seq & 0xFFFF,
        (frame * 3000) & 0xFFFFFFFF, ssrc,
        0xBEDE, 1, (TWCC_ID << 4) | 1, (twcc >> 8) & 0xFF, twcc & 0xFF, 0,
        first, 0xA0, frame & 0x7F, (tid << 6) | (0x20 if tid else 0),
    )  # fmt: skip
    buf[28] = 0x00 if keyframe else 0x01  # VP8 payload header: P=0 on key frames
    return buf


def _sender(topology: Topology, address: tuple[str, int], rate: float, seconds: float) -> None:
    os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    contexts = [topology.context(p, "client") for p in range(topology.publishers)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    seqs = [0] * topology.publishers
    sent = 0
    start = time.monotonic()
    end = start + seconds
    pub = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate)
        while sent < due:
            seq = seqs[pub]
            seqs[pub] = seq + 1
            buf = _packet(0x1000 + pub, seq, seq // 3, seq % 3, seq)
            _STAMP.pack_into(buf, STAMP_OFFSET, time.monotonic_ns())
            with contextlib.suppress(BlockingIOError):
                sock.sendto(contexts[pub].protect_rtp(bytes(buf)), address)
            sent += 1
            pub = (pub + 1) % topology.publishers
        time.sleep(0.0005)
    sock.close()


class _Counter(asyncio.DatagramProtocol):
    def __init__(self, context: SrtpContext | None, latencies: list[float] | None) -> None:
        self.count = 0
        self.context = context
        self.latencies = latencies

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.count += 1
        if self.context is not None and self.latencies is not None:
            now = time.monotonic_ns()
            try:
                plain = self.context.unprotect_rtp(data)
            except ValueError:
                return
            # The send time sits at a fixed place in the payload; a forwarder may change the
            # header extension before it (the server path drops the publisher's).
            at = peek_payload_offset(plain) + STAMP_OFFSET - _PAYLOAD_OFFSET
            self.latencies.append((now - _STAMP.unpack_from(plain, at)[0]) / 1e6)


def _factory(protocol: _Counter) -> Callable[[], _Counter]:
    return lambda: protocol


def _receivers(
    topology: Topology, conn: Connection, warmup: float, seconds: float, latency: bool
) -> None:
    import uvloop

    os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        protocols: list[_Counter] = []
        ports = []
        latencies: list[float] = []
        sinks: list[socket.socket] = []
        for s in range(topology.subscribers):
            ctx = topology.context(topology.subscriber_participant(s), "client")
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
            proto = _Counter(ctx if latency else None, None)
            if latency:
                await loop.create_datagram_endpoint(_factory(proto), sock=sock)
            else:
                # Saturation phase: sinks are bound but never read (as in §9.3d), so CPU 1
                # is left to the sender; the forwarder's own counters give the rate.
                sinks.append(sock)
            protocols.append(proto)
        conn.send(ports)
        conn.recv()  # Go.
        await asyncio.sleep(warmup)
        before = sum(p.count for p in protocols)
        for p in protocols:
            p.latencies = latencies
        await asyncio.sleep(seconds)
        for p in protocols:
            p.latencies = None
        after = sum(p.count for p in protocols)
        conn.send((after - before, latencies))

    uvloop.run(main())


class _BareProtocol(asyncio.DatagramProtocol):
    """Receive, decrypt, encrypt per destination, send: no SFU logic."""

    def __init__(self, topology: Topology, ports: list[int]) -> None:
        self.received = 0
        self.sent = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.routes: dict[int, tuple[Any, tuple[tuple[Any, tuple[str, int]], ...]]] = {}
        subs = [topology.context(topology.subscriber_participant(s), "server")
                for s in range(topology.subscribers)]  # fmt: skip
        for p in range(topology.publishers):
            inbound = subs[p] if topology.publishers > 1 else topology.context(0, "server")
            dests = tuple(
                (subs[s].protect_rtp, ("127.0.0.1", ports[s]))
                for s in range(topology.subscribers)
                if p in topology.receives(s)
            )
            self.routes[0x1000 + p] = (inbound.unprotect_rtp, dests)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1
        unprotect, dests = self.routes[int.from_bytes(data[8:12], "big")]
        try:
            plain = unprotect(data)
        except ValueError:
            return
        sendto = self.transport.sendto  # type: ignore[union-attr]
        for protect, address in dests:
            sendto(protect(plain), address)
        self.sent += len(dests)


SERVER_PACING_RATE = 1_000_000_000
"""bits/s of the server path's pacers: paced (the token arithmetic runs per copy) at a rate
the flood never reaches, so that every copy takes the pacer's fast path, as a subscriber
whose downlink takes what it is sent does in the server."""


class _ServerSubscriber:
    __slots__ = ("address", "bwe", "pacer", "protect")

    def __init__(self, context: SrtpContext, address: tuple[str, int], stamp: bool) -> None:
        self.protect = context.protect_rtp
        self.address = address
        self.bwe = DownlinkController(TWCC_ID) if stamp else None
        self.pacer = Pacer(SERVER_PACING_RATE)


class _ServerPathProtocol(asyncio.DatagramProtocol):
    """The server's forwarding path as ``MediaServer._forward_video`` runs it."""

    stamp = False

    def __init__(self, topology: Topology, ports: list[int]) -> None:
        self.received = 0
        self.sent = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.router = VideoRouter(lambda publisher, stream_id, now: None)
        contexts = [topology.context(topology.subscriber_participant(s), "server")
                    for s in range(topology.subscribers)]  # fmt: skip
        self.stream_bytes: dict[int, int] = {}
        self.streams: dict[int, tuple[Any, NackGenerator, TransportFeedbackGenerator, int]] = {}
        for p in range(topology.publishers):
            inbound = contexts[p] if topology.publishers > 1 else topology.context(0, "server")
            nack = NackGenerator(sender_ssrc=1, media_ssrc=0x1000 + p)
            feedback = TransportFeedbackGenerator()
            self.streams[0x1000 + p] = (inbound.unprotect_rtp, nack, feedback, p + 1)
            self.router.publish(object(), [p + 1], 0.0)
        self.subscribers: list[_ServerSubscriber] = []
        for s in range(topology.subscribers):
            sub = _ServerSubscriber(contexts[s], ("127.0.0.1", ports[s]), self.stamp)
            self.subscribers.append(sub)
            lines = {
                str(2 + k): (0x2000 + p * 100 + s, PAYLOAD_TYPE, p + 1)
                for k, p in enumerate(topology.receives(s))
            }
            self.router.subscribe(sub, lines, 0.0)
            for out in self.router.lines_of(sub).values():
                self.router.switch(out)  # skip waiting for a keyframe
                out.use_payload_format("vp8")  # as _fan_out does at the switch

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1
        now = time.monotonic()
        unprotect, nack, feedback, stream_id = self.streams[int.from_bytes(data[8:12], "big")]
        try:
            plain = unprotect(data)
        except ValueError:
            return
        # As MediaServer._on_rtp: the transport-wide number noted for the sender's feedback.
        feedback.receive_rtp(plain, TWCC_ID, now)
        nack.receive((plain[2] << 8) | plain[3], now)
        self.stream_bytes[stream_id] = self.stream_bytes.get(stream_id, 0) + len(plain)
        sendto = self.transport.sendto  # type: ignore[union-attr]
        sent = 0
        # As MediaServer._fan_out: the packet is split once, each copy renumbered from it.
        prepared = prepare(plain)
        size = len(plain)
        for out in self.router.outs(stream_id):
            sub = out.subscriber
            assert isinstance(sub, _ServerSubscriber)
            bwe = sub.bwe
            if bwe is not None and bwe.stamping:
                plain = out.forward_prepared(prepared, now, bwe.extension(now, size))
            else:
                plain = out.forward_prepared(prepared, now)
            if sub.pacer.offer(plain, now):
                sendto(sub.protect(plain), sub.address)
                sent += 1
            else:  # never expected at this rate; counted as queue_drops in the results
                for packet in sub.pacer.due(now):
                    sendto(sub.protect(packet), sub.address)
                    sent += 1
        self.sent += sent


class _ServerTwccProtocol(_ServerPathProtocol):
    stamp = True


_FORWARDERS: dict[str, type[asyncio.DatagramProtocol]] = {}


class _Subscriber:
    __slots__ = ("address", "protect", "queue", "transport")

    def __init__(self, context: SrtpContext, address: tuple[str, int]) -> None:
        self.protect = context.protect_rtp
        self.address = address
        self.queue: EgressQueue[bytes] = EgressQueue(4096)
        self.transport = TransportSequencer()


class _SfuProtocol(asyncio.DatagramProtocol):
    """The SFU packet path: view, NACK log, fan-out, queues, coalesced flush."""

    def __init__(self, topology: Topology, ports: list[int]) -> None:
        self.received = 0
        self.sent = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.loop = asyncio.get_running_loop()
        self.flush_scheduled = False
        self.throttle = KeyframeRequestThrottle()
        contexts = [topology.context(topology.subscriber_participant(s), "server")
                    for s in range(topology.subscribers)]  # fmt: skip
        self.subscribers = tuple(
            _Subscriber(contexts[s], ("127.0.0.1", ports[s])) for s in range(topology.subscribers)
        )
        self.streams: dict[int, tuple[Any, Any, Any, tuple[Subscription, ...], int]] = {}
        for p in range(topology.publishers):
            # One SRTP context per participant connection, used both ways.
            inbound = contexts[p] if topology.publishers > 1 else topology.context(0, "server")
            subs = tuple(
                Subscription(
                    Forwarder(
                        SimulcastSelector([p + 1], temporal=True),
                        ssrc=0x2000 + p * 100 + s,
                        initial_sequence_number=0,
                        initial_timestamp=0,
                    ),
                    self.subscribers[s].queue,
                    history=RetransmissionBuffer(),
                    transport=self.subscribers[s].transport,
                )
                for s in range(topology.subscribers)
                if p in topology.receives(s)
            )
            nack = NackGenerator(sender_ssrc=1, media_ssrc=0x1000 + p)
            parser = PacketViewParser("vp8")
            self.streams[0x1000 + p] = (inbound.unprotect_rtp, parser.parse, nack, subs, p + 1)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1
        now = time.monotonic()
        unprotect, parse, nack, subs, stream_id = self.streams[int.from_bytes(data[8:12], "big")]
        try:
            plain = unprotect(data)
            view = parse(plain)
            twcc = peek_extension_offset(plain, TWCC_ID)
        except ValueError:
            return
        nack.receive(view.sequence_number, now)
        keyframes = fan_out(subs, view, stream_id, now, twcc[0] if twcc is not None else -1)
        if keyframes is not None:
            for stream in keyframes:
                self.throttle.request(stream, now)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        sendto = self.transport.sendto  # type: ignore[union-attr]
        sent = 0
        for sub in self.subscribers:
            if len(sub.queue):
                protect = sub.protect
                address = sub.address
                for packet in sub.queue.packets_to_send():
                    sendto(protect(packet), address)
                    sent += 1
        self.sent += sent


_FORWARDERS.update(
    {
        "bare": _BareProtocol,
        "sfu": _SfuProtocol,
        "server": _ServerPathProtocol,
        "server+twcc": _ServerTwccProtocol,
    }
)


def _forwarder(
    topology: Topology, mode: str, conn: Connection, ports: list[int], warmup: float, seconds: float
) -> None:
    import uvloop

    os.sched_setaffinity(0, {0})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.bind(("127.0.0.1", 0))
        factory: Any = _FORWARDERS[mode]
        _, proto = await loop.create_datagram_endpoint(lambda: factory(topology, ports), sock=sock)
        # The objects built for the topology (hundreds of m-lines with their histories)
        # would otherwise be swept by the cyclic GC's first generation-1 pass, a 12-16 ms
        # pause that lands in the measured window at half load; the bench measures steady
        # forwarding, so they are collected and frozen first.
        gc.collect()
        gc.freeze()
        conn.send(sock.getsockname()[1])
        await asyncio.sleep(warmup)
        r0, s0, c0, w0 = proto.received, proto.sent, _cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        r1, s1, c1, w1 = proto.received, proto.sent, _cpu_seconds(), time.monotonic()
        drops = 0
        if isinstance(proto, _SfuProtocol):
            drops = sum(s.queue.dropped for s in proto.subscribers)
        elif isinstance(proto, _ServerPathProtocol):
            # Copies that missed the pacer's fast path (expected: none).
            drops = sum(sub.pacer.queued for sub in proto.subscribers)
        conn.send(ForwarderResult(r1 - r0, s1 - s0, c1 - c0, w1 - w0, drops))

    uvloop.run(main())


@dataclass
class PhaseResult:
    mode: str
    rate_in: float
    forwarder: ForwarderResult
    delivered: int
    p50_ms: float
    p99_ms: float


def _phase(topology: Topology, mode: str, rate: float, args: argparse.Namespace,
           latency: bool) -> PhaseResult:  # fmt: skip
    ctx = mp.get_context("spawn")
    rx_parent, rx_child = ctx.Pipe()
    fw_parent, fw_child = ctx.Pipe()
    receivers = ctx.Process(
        target=_receivers, args=(topology, rx_child, args.warmup, args.duration, latency)
    )
    receivers.start()
    ports = rx_parent.recv()
    forwarder = ctx.Process(
        target=_forwarder, args=(topology, mode, fw_child, ports, args.warmup, args.duration)
    )
    forwarder.start()
    port = fw_parent.recv()
    rx_parent.send("go")
    sender = ctx.Process(
        target=_sender,
        args=(topology, ("127.0.0.1", port), rate, args.warmup + args.duration + 0.3),
    )
    sender.start()
    result: ForwarderResult = fw_parent.recv()
    delivered, latencies = rx_parent.recv()
    for process in (sender, forwarder, receivers):
        process.join(timeout=10)
        if process.is_alive():  # pragma: no cover
            process.terminate()
    return PhaseResult(
        mode, rate, result, delivered,
        percentile(latencies, 50) if latencies else float("nan"),
        percentile(latencies, 99) if latencies else float("nan"),
    )  # fmt: skip


def _one_run(name: str, args: argparse.Namespace) -> dict[str, PhaseResult]:
    publishers, subscribers = SCENARIOS[name]
    participants = max(publishers, subscribers) + (1 if publishers == 1 else 0)
    topology = Topology(publishers, subscribers, [os.urandom(60) for _ in range(participants)])
    fanout = subscribers if publishers == 1 else subscribers - 1
    flood = args.flood_out / fanout
    results = {
        "bare_max": _phase(topology, "bare", flood, args, False),
        "sfu_max": _phase(topology, "sfu", flood, args, False),
    }
    # What the SFU got out, not what it took in: at saturation the egress queues drop
    # their oldest packets, so input overstates capacity.
    sfu = results["sfu_max"].forwarder
    half = _ratio(sfu.sent, sfu.wall_seconds) / fanout / 2
    results["bare_half"] = _phase(topology, "bare", half, args, True)
    results["sfu_half"] = _phase(topology, "sfu", half, args, True)
    if args.server_path:
        results["server_max"] = _phase(topology, "server", flood, args, False)
        results["server_twcc_max"] = _phase(topology, "server+twcc", flood, args, False)
        # Latency of the server's path at half of its own maximum (as for the SFU core).
        server = results["server_max"].forwarder
        server_half = _ratio(server.sent, server.wall_seconds) / fanout / 2
        results["server_half"] = _phase(topology, "server", server_half, args, True)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3, help="independent runs (default 3)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=0.7, help="seconds before measuring")
    parser.add_argument(
        "--flood-out", type=float, default=260_000,
        help="offered output packets/s in the saturation phase (input x fan-out)",
    )  # fmt: skip
    parser.add_argument(
        "--fanout", choices=[*SCENARIOS, "all"], default="all", help="fan-out scenario"
    )
    parser.add_argument(
        "--server-path", action="store_true",
        help="also measure the server's forwarding path with and without transport-wide numbers",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = list(SCENARIOS) if args.fanout == "all" else [args.fanout]
    summary: dict[str, Any] = {
        "command": f"python -m bench sfu --runs {args.runs} --duration {args.duration:g} "
        f"--fanout {args.fanout}" + (" --server-path" if args.server_path else ""),
        "cpus": os.cpu_count(),
        "runs": {},
        "median": {},
    }
    rows: list[list[object]] = []
    for name in names:
        runs = [_one_run(name, args) for _ in range(args.runs)]
        summary["runs"][name] = [
            {k: {**asdict(v), "out_per_core": v.forwarder.out_per_core} for k, v in r.items()}
            for r in runs
        ]

        def med(phase: str, attr: str, runs: list[dict[str, PhaseResult]] = runs) -> float:
            values = []
            for r in runs:
                p = r[phase]
                if attr == "out_per_core":
                    values.append(p.forwarder.out_per_core)
                elif attr == "cpu":
                    values.append(p.forwarder.cpu_seconds / p.forwarder.wall_seconds)
                elif attr == "delivered_rate":
                    values.append(p.delivered / p.forwarder.wall_seconds)
                elif attr == "drops":
                    values.append(float(p.forwarder.queue_drops))
                else:
                    values.append(float(getattr(p, attr)))
            return median(values)

        ratio = median([_ratio(r["sfu_max"].forwarder.out_per_core,
                               r["bare_max"].forwarder.out_per_core) for r in runs])  # fmt: skip
        m = {
            "sfu_out_per_core": med("sfu_max", "out_per_core"),
            "bare_out_per_core": med("bare_max", "out_per_core"),
            "ratio_sfu_to_bare": ratio,
            "sfu_cpu_at_max": med("sfu_max", "cpu"),
            "sfu_delivered_per_s_at_max": med("sfu_max", "delivered_rate"),
            "sfu_queue_drops_at_max": med("sfu_max", "drops"),
            "half_load_in_per_s": med("sfu_half", "rate_in"),
            "sfu_p50_ms": med("sfu_half", "p50_ms"),
            "sfu_p99_ms": med("sfu_half", "p99_ms"),
            "bare_p50_ms": med("bare_half", "p50_ms"),
            "bare_p99_ms": med("bare_half", "p99_ms"),
        }
        summary["median"][name] = m
        rows += [
            [f"{name}: SFU out packets/s per core", m["sfu_out_per_core"], ">= 100,000"],
            [f"{name}: bare loop out packets/s per core", m["bare_out_per_core"], "-"],
            [f"{name}: SFU / bare", m["ratio_sfu_to_bare"], ">= 0.70"],
            [f"{name}: SFU CPU at max (cores)", m["sfu_cpu_at_max"], "-"],
            [f"{name}: SFU p50 latency at half load (ms)", m["sfu_p50_ms"], "-"],
            [f"{name}: SFU p99 latency at half load (ms)", m["sfu_p99_ms"], "<= 2"],
            [f"{name}: bare p99 latency at half load (ms)", m["bare_p99_ms"], "-"],
        ]
        if args.server_path:
            server = med("server_max", "out_per_core")
            twcc = med("server_twcc_max", "out_per_core")
            m["server_out_per_core"] = server
            m["server_twcc_out_per_core"] = twcc
            m["ratio_server_to_bare"] = median(
                [
                    _ratio(
                        r["server_max"].forwarder.out_per_core, r["bare_max"].forwarder.out_per_core
                    )
                    for r in runs
                ]
            )
            m["ratio_server_twcc_to_bare"] = median(
                [
                    _ratio(
                        r["server_twcc_max"].forwarder.out_per_core,
                        r["bare_max"].forwarder.out_per_core,
                    )
                    for r in runs
                ]
            )
            m["twcc_cost_us_per_packet"] = (1 / twcc - 1 / server) * 1e6 if server and twcc else 0
            m["server_copies_paced"] = med("server_max", "drops")
            rows += [
                [f"{name}: server path out packets/s per core", server, "-"],
                [f"{name}: server path + TWCC out packets/s per core", twcc, "-"],
                [f"{name}: server path / bare", m["ratio_server_to_bare"], "-"],
                [f"{name}: server path + TWCC / bare", m["ratio_server_twcc_to_bare"], "-"],
                [f"{name}: TWCC stamping cost (us per packet)", m["twcc_cost_us_per_packet"], "-"],
                [f"{name}: server copies that waited in a pacer", m["server_copies_paced"], "0"],
            ]
            m["server_half_load_in_per_s"] = med("server_half", "rate_in")
            m["server_p50_ms"] = med("server_half", "p50_ms")
            m["server_p99_ms"] = med("server_half", "p99_ms")
            rows += [
                [f"{name}: server path p50 latency at half load (ms)", m["server_p50_ms"], "-"],
                [f"{name}: server path p99 latency at half load (ms)", m["server_p99_ms"], "<= 2"],
            ]
    print(f"\n{summary['command']}  (median of {args.runs} runs)\n")
    print(format_table(["measure", "value", "target"], rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:  # pragma: no cover - until the lead registers the scenario
    """Run without ``bench/__main__.py``: ``python -m bench.sfu [options]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.sfu")
    add_arguments(parser)
    run(parser.parse_args())


if __name__ == "__main__":  # pragma: no cover
    main()
