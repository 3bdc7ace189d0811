"""``ChimePeer``: an aiortc peer connection set up like the one ``amazon-chime-sdk-js`` makes.

The browser client (``chime-signaling-protocol.md`` section 3.3) uses ``bundlePolicy
'max-bundle'``, no ICE servers unless JOIN_ACK carries TURN credentials, and this transceiver
layout:

* mid ``0``: audio, ``sendrecv``, always with a track (here a synthetic source: a tone,
  silence or a file, see :mod:`bench.media`);
* mid ``1``: the camera slot, ``inactive`` unless a video track is given;
* mid ``2..n``: one ``recvonly`` video transceiver per remote video subscription.

The offer is non-trickle: aiortc gathers every candidate inside ``setLocalDescription``, so
the local description already holds them all (with ``a=end-of-candidates``).

What the peer received is recorded for assertions: decoded downlink audio as int16 mono PCM
with arrival times (:class:`AudioRecorder`), and every downlink audio RTP packet's arrival time
(:attr:`ChimePeer.audio_packet_times`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from bench.media import FRAME_SAMPLES, SAMPLE_RATE, FrameSource, PcmLoop, Silence, ToneGenerator
from mediaserver.rtp.rtcp import RtcpRemb

__all__ = [
    "AudioRecorder",
    "ChimePeer",
    "OfferShapeError",
    "SourceTrack",
    "check_offer_shape",
    "spread_bundle_candidates",
]

logger = logging.getLogger(__name__)

_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class OfferShapeError(ValueError):
    """The offer does not have the shape the browser's offer has (section 3.3)."""


class SourceTrack(MediaStreamTrack):
    """An audio track producing 20 ms ``s16`` mono 48 kHz frames from a :class:`FrameSource`.

    Frames are paced in real time like a microphone: frame ``n`` is returned at
    ``start + n * 20 ms`` (aiortc's sender pulls as fast as ``recv`` returns).

    Args:
        source: where samples come from; a frequency in Hz means a tone, ``None`` silence,
            a path a WAV or raw PCM file.
    """

    kind = "audio"

    def __init__(self, source: FrameSource | float | str | Path | None = None) -> None:
        super().__init__()
        if source is None:
            source = Silence()
        elif isinstance(source, int | float):
            source = ToneGenerator(float(source))
        elif isinstance(source, str | Path):
            source = PcmLoop.from_file(source)
        self.source: FrameSource = source
        self.frames_sent = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        # Pacing is a deadline, not a fixed sleep, so it does not drift.
        deadline = self._start + self.frames_sent * FRAME_SAMPLES / SAMPLE_RATE
        delay = deadline - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        pcm = self.source.next_frame(FRAME_SAMPLES)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.frames_sent * FRAME_SAMPLES
        frame.time_base = _TIME_BASE
        self.frames_sent += 1
        return frame


@dataclass(slots=True)
class AudioRecorder:
    """Reads a remote audio track and keeps every decoded frame as int16 mono PCM.

    Attributes:
        chunks: decoded frames, downmixed to mono.
        arrival_times: monotonic time each frame was decoded.
        sample_rate: of the decoded frames (48000 for Opus in aiortc).
    """

    chunks: list[npt.NDArray[np.int16]] = field(default_factory=list)
    arrival_times: list[float] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE
    task: asyncio.Task[None] | None = None
    on_frame: Callable[[], None] | None = None

    @property
    def frames_received(self) -> int:
        return len(self.chunks)

    def start(self, track: MediaStreamTrack) -> None:
        """Start draining ``track`` in a background task."""
        self.task = asyncio.create_task(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            data = frame.to_ndarray()
            channels = len(frame.layout.channels)
            if frame.format.is_planar:
                samples = data.astype(np.int32).mean(axis=0)
            else:
                samples = data.reshape(-1, channels).astype(np.int32).mean(axis=1)
            self.sample_rate = frame.sample_rate
            self.chunks.append(np.round(samples).astype(np.int16))
            self.arrival_times.append(time.monotonic())
            if self.on_frame is not None:
                self.on_frame()

    def pcm(self, since: float | None = None) -> npt.NDArray[np.int16]:
        """The recorded audio, concatenated; only frames that arrived at ``since`` or later."""
        chunks = [
            c
            for c, t in zip(self.chunks, self.arrival_times, strict=True)
            if since is None or t >= since
        ]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


_M_SECTION = re.compile(r"^m=(\w+) .*?(?=^m=|\Z)", re.MULTILINE | re.DOTALL)


def check_offer_shape(sdp: str, *, receive_videos: int = 0) -> None:
    """Check that ``sdp`` has the shape of the browser's offer (section 3.3).

    One BUNDLE group over every m-line, audio mid 0 ``sendrecv``, a video mid 1, then
    ``receive_videos`` ``recvonly`` video m-lines; ``rtcp-mux``; ``setup:actpass``; at least
    one candidate, written in the SDP (non-trickle).

    Raises:
        OfferShapeError: the first rule broken.
    """
    sections = [(m.group(1), m.group(0)) for m in _M_SECTION.finditer(sdp)]
    mids = [re.search(r"^a=mid:(\S+)", body, re.MULTILINE) for _, body in sections]
    mid_values = [m.group(1) if m else None for m in mids]
    bundle = re.search(r"^a=group:BUNDLE (.*)$", sdp, re.MULTILINE)
    if bundle is None or bundle.group(1).split() != mid_values:
        raise OfferShapeError(f"BUNDLE group does not cover the mids {mid_values}")
    expected = ["audio", "video"] + ["video"] * receive_videos
    if [kind for kind, _ in sections] != expected:
        raise OfferShapeError(f"m-lines are {[k for k, _ in sections]}, expected {expected}")
    if mid_values != [str(i) for i in range(len(sections))]:
        raise OfferShapeError(f"mids are {mid_values}, expected 0..{len(sections) - 1}")
    if not re.search(r"^a=sendrecv\r?$", sections[0][1], re.MULTILINE):
        raise OfferShapeError("the audio m-line is not sendrecv")
    for _, body in sections[2:]:
        if not re.search(r"^a=recvonly\r?$", body, re.MULTILINE):
            raise OfferShapeError("a receive video m-line is not recvonly")
    for _, body in sections:
        if not re.search(r"^a=rtcp-mux\r?$", body, re.MULTILINE):
            raise OfferShapeError("an m-line lacks a=rtcp-mux")
        if not re.search(r"^a=setup:actpass\r?$", body, re.MULTILINE):
            raise OfferShapeError("an m-line lacks a=setup:actpass")
    if not re.search(r"^a=candidate:", sections[0][1], re.MULTILINE):
        raise OfferShapeError("the first m-line has no candidate (offers are non-trickle)")


class ChimePeer:
    """The media side of one bot: an aiortc ``RTCPeerConnection`` shaped like the browser's.

    Args:
        audio: what mid 0 sends: a :class:`FrameSource`, a tone frequency in Hz, a WAV/PCM
            path, ``None`` for silence, or a ready ``MediaStreamTrack``.
        video: a video track to send on mid 1 (``sendrecv``); ``None`` keeps it ``inactive``.
        receive_videos: how many ``recvonly`` video transceivers (mids 2..) to add.
        ice_servers: from JOIN_ACK ``turn_credentials``; with any, ICE is relay-only as in
            the JS client. ``None`` or empty: host candidates only, no STUN.

    Attributes:
        pc: the peer connection.
        recorder: the decoded downlink audio.
        audio_packet_times: monotonic arrival time of every downlink audio RTP packet.
        video_frames_received: decoded frames per receive mid.
        timings: monotonic times of ``offer_created``, ``answer_set``, ``ice_connected``,
            ``dtls_connected`` and ``first_audio_packet``.
    """

    def __init__(
        self,
        audio: FrameSource | float | str | Path | MediaStreamTrack | None = None,
        *,
        video: MediaStreamTrack | None = None,
        receive_videos: int = 0,
        ice_servers: list[RTCIceServer] | None = None,
    ) -> None:
        configuration = RTCConfiguration(
            # An explicit empty list: aiortc would otherwise add a public STUN server, and
            # the browser client uses none when JOIN_ACK has no TURN credentials (section 7).
            iceServers=list(ice_servers or []),
            iceTransportPolicy=(
                RTCIceTransportPolicy.RELAY if ice_servers else RTCIceTransportPolicy.ALL
            ),
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
        self.pc = RTCPeerConnection(configuration)
        self.audio_track = audio if isinstance(audio, MediaStreamTrack) else SourceTrack(audio)
        self.audio_transceiver: RTCRtpTransceiver = self.pc.addTransceiver(
            self.audio_track, direction="sendrecv"
        )
        self.video_transceiver: RTCRtpTransceiver = self.pc.addTransceiver(
            video if video is not None else "video",
            direction="sendrecv" if video is not None else "inactive",
        )
        self.receive_transceivers: list[RTCRtpTransceiver] = [
            self.pc.addTransceiver("video", direction="recvonly") for _ in range(receive_videos)
        ]
        self.receive_videos = receive_videos
        self.recorder = AudioRecorder()
        self.audio_packet_times: list[float] = []
        self.video_frames_received: dict[str, int] = {}
        self.video_sizes: dict[str, list[tuple[tuple[int, int], int]]] = {}
        """Per receive mid: each decoded size ((width, height), at frame count) in order."""
        self.timings: dict[str, float] = {}
        self._answer = ""
        self._rtcp_ssrc = secrets.randbits(32) or 1
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._closed = False
        self.recorder.on_frame = self._notify
        self._hook_audio_packets()
        self.pc.on("track", self._on_track)
        self.pc.on("iceconnectionstatechange", self._on_state_change)
        self.pc.on("connectionstatechange", self._on_state_change)

    # Negotiation.

    async def create_offer(self) -> str:
        """Create the offer, gather every candidate and return the SDP text.

        aiortc's offer already has the browser's shape: one BUNDLE group over all mids
        (they share one transport under max-bundle), ``rtcp-mux``, ``setup:actpass``,
        candidates and ``end-of-candidates`` in every section, audio ``sendrecv`` with an
        ``a=msid``. No munging is needed. Differences that do not matter to a server: the
        origin stays ``o=-`` (Chrome's is rewritten to ``o=mozilla-chrome``), the audio
        codecs are opus/G722/PCMU/PCMA without ``red``, and the video codecs are VP8/H.264
        without VP9 or ``x-google-start-bitrate``.

        Raises:
            OfferShapeError: aiortc produced something else (checked every time).
        """
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        # Non-trickle: setLocalDescription returns after gathering; check it did.
        if self.pc.iceGatheringState != "complete":
            raise OfferShapeError(f"ICE gathering is {self.pc.iceGatheringState}")
        description = self.pc.localDescription
        check_offer_shape(description.sdp, receive_videos=self.receive_videos)
        self.timings["offer_created"] = time.monotonic()
        return description.sdp

    async def set_answer(self, sdp: str) -> None:
        """Apply the SDP answer from SUBSCRIBE_ACK; ICE checks start."""
        # The JS client removes srflx candidates from the answer before applying it.
        lines = [line for line in sdp.splitlines() if not _is_srflx(line)]
        answer = spread_bundle_candidates("\r\n".join(lines) + "\r\n")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._answer = answer
        self.timings["answer_set"] = time.monotonic()

    # Waiting.

    async def wait_for(self, predicate: Callable[[ChimePeer], bool], timeout: float) -> None:
        """Wait until ``predicate(self)`` holds; checked on every state change and packet.

        Raises:
            TimeoutError: with the ICE, connection and packet states in the message.
        """
        if predicate(self):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (lambda: predicate(self), future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(
                f"peer timed out after {timeout} s: ice={self.pc.iceConnectionState} "
                f"connection={self.pc.connectionState} "
                f"audio packets={len(self.audio_packet_times)}"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    async def wait_ice_connected(self, timeout: float) -> None:
        """Wait for ``iceConnectionState`` connected/completed (what the JS client waits for)."""
        await self.wait_for(
            lambda p: (
                p.pc.iceConnectionState in ("connected", "completed")
                or p.pc.iceConnectionState == "failed"
            ),
            timeout,
        )
        if self.pc.iceConnectionState == "failed":
            raise ConnectionError("ICE failed")

    async def wait_dtls_connected(self, timeout: float) -> None:
        """Wait for ``connectionState`` connected: ICE and the DTLS handshake are done."""
        await self.wait_for(
            lambda p: p.pc.connectionState in ("connected", "failed", "closed"), timeout
        )
        if self.pc.connectionState != "connected":
            raise ConnectionError(f"peer connection {self.pc.connectionState}")

    async def wait_audio_packets(self, count: int, timeout: float) -> None:
        """Wait until ``count`` downlink audio RTP packets arrived in total."""
        await self.wait_for(lambda p: len(p.audio_packet_times) >= count, timeout)

    # Statistics.

    @property
    def audio_packets_received(self) -> int:
        return len(self.audio_packet_times)

    def audio_packet_rate(self, since: float, until: float | None = None) -> float:
        """Downlink audio packets per second between two monotonic times."""
        end = until if until is not None else time.monotonic()
        if end <= since:
            return 0.0
        count = sum(1 for t in self.audio_packet_times if since <= t < end)
        return count / (end - since)

    async def stats(self) -> dict[str, Any]:
        """aiortc's ``getStats()`` report as a plain dict (id → stats object)."""
        report = await self.pc.getStats()
        return dict(report)

    # Lifecycle.

    async def close(self) -> None:
        """Close the peer connection and stop the recorder. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.recorder.stop()
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
        self.audio_track.stop()
        self._notify()

    # Internals.

    async def send_remb(self, bitrate: int) -> None:
        """Report a downlink of ``bitrate`` bits/s to the server with an RTCP REMB
        (draft-alvestrand-rmcat-remb-03 §2.2) for every video received, as a browser's
        receive-side estimator does; aiortc sends one only for abs-send-time streams.

        Raises:
            ConnectionError: the transport is not connected.
        """
        remb = RtcpRemb.from_bitrate(self._rtcp_ssrc, bitrate, _video_ssrcs(self._answer))
        transport = self.audio_transceiver.receiver.transport
        await transport._send_rtp(remb.serialize())

    def _hook_audio_packets(self) -> None:
        # aiortc has no public per-packet hook, and its audio jitter buffer holds the first
        # decoded frame back by several packets, so the arrival of RTP packets is observed by
        # wrapping the receiver's packet handler. The DTLS transport looks the method up on
        # the receiver instance for every packet, so an instance attribute takes effect.
        receiver = self.audio_transceiver.receiver
        original = receiver._handle_rtp_packet

        async def counting(packet: Any, arrival_time_ms: int) -> None:
            now = time.monotonic()
            if not self.audio_packet_times:
                self.timings["first_audio_packet"] = now
            self.audio_packet_times.append(now)
            self._notify()
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = counting  # type: ignore[method-assign]

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.recorder.start(track)
        else:
            mid = next(
                (t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None
            )
            self._tasks.append(asyncio.create_task(self._drain_video(track, mid or "?")))

    async def _drain_video(self, track: MediaStreamTrack, mid: str) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.video_frames_received[mid] = self.video_frames_received.get(mid, 0) + 1
            size = (getattr(frame, "width", 0), getattr(frame, "height", 0))
            sizes = self.video_sizes.setdefault(mid, [])
            if not sizes or sizes[-1][0] != size:
                sizes.append((size, self.video_frames_received[mid]))

    def _on_state_change(self) -> None:
        now = time.monotonic()
        if self.pc.iceConnectionState in ("connected", "completed"):
            self.timings.setdefault("ice_connected", now)
        if self.pc.connectionState == "connected":
            self.timings.setdefault("dtls_connected", now)
        self._notify()

    def _notify(self) -> None:
        for predicate, future in list(self._waiters):
            if not future.done():
                try:
                    if predicate():
                        future.set_result(None)
                except Exception as exc:
                    future.set_exception(exc)


def _video_ssrcs(answer: str) -> list[int]:
    """The SSRCs an answer announces (``a=ssrc``) in its video m-sections."""
    ssrcs: list[int] = []
    for section in answer.split("\r\nm=")[1:]:
        if section.startswith("video"):
            ssrcs.extend(int(m) for m in re.findall(r"^a=ssrc:(\d+) ", section, re.MULTILINE))
    return list(dict.fromkeys(ssrcs))


def spread_bundle_candidates(sdp: str) -> str:
    """Copy the candidates of the first m-section to the other live m-sections lacking any.

    A BUNDLE answer may carry its candidates on the first m-line only (Chime's answers and
    Carillon's do, section 3.3), and browsers take them from there. aiortc 1.16 instead keys
    the remote candidates by ICE transport while walking the m-sections, so with max-bundle
    the *last* m-section's (empty) list wins and ICE never gets a remote candidate. Giving
    every bundled section the same candidates makes aiortc behave like a browser; sections
    that already have candidates, and rejected ones (port 0), are left alone.
    """
    head, *sections = re.split(r"(?=^m=)", sdp, flags=re.MULTILINE)
    if not sections:
        return sdp
    shared: list[str] = []
    for section in sections:
        shared = [
            line
            for line in section.splitlines()
            if line.startswith("a=candidate:") or line == "a=end-of-candidates"
        ]
        if shared:
            break
    if not shared:
        return sdp
    out = [head]
    for section in sections:
        has_candidates = re.search(r"^a=candidate:", section, re.MULTILINE) is not None
        rejected = re.match(r"m=\w+ 0 ", section) is not None
        if not has_candidates and not rejected:
            section = section.rstrip("\r\n") + "\r\n" + "\r\n".join(shared) + "\r\n"
        out.append(section)
    return "".join(out)


def _is_srflx(line: str) -> bool:
    return line.startswith("a=candidate:") and " typ srflx" in line
