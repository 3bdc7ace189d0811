"""The continuous 20 ms Opus stream every attendee receives on mid 0 (sans I/O).

chime-signaling-protocol.md §6.3: the client expects 50 audio packets per second and warns
about a poor connection below half of that, so the server sends a frame every 20 ms,
silence included, never DTX gaps. Each attendee's stream has its own random SSRC, and
sequence numbers and timestamps that only move forward (RFC 3550 §5.1).
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Protocol

from mediaserver.audio.mixer import MixOutput
from mediaserver.rtp.rtcp import RtcpSenderReport
from mediaserver.transport.peer import PeerStats
from mediaserver.transport.srtp import SrtpContext
from mediaserver.transport.stun import Address

__all__ = ["FRAME_SAMPLES", "AudioListener", "AudioSender", "send_mix", "silence_frame"]

FRAME_SAMPLES = 960
"""Samples per 20 ms frame at 48 kHz: the RTP timestamp step (RFC 7587 §4.1)."""

_HEADER = struct.Struct("!BBHII")
NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix) (RFC 5905 §6)."""


@lru_cache(maxsize=4)
def silence_frame(channels: int = 1, bitrate: int = 32000) -> bytes:
    """One 20 ms Opus frame of digital silence, encoded once with libopus."""
    import opuslib  # imported lazily: it loads libopus through ctypes

    encoder = opuslib.Encoder(48000, channels, opuslib.APPLICATION_VOIP)
    encoder.bitrate = bitrate
    pcm = bytes(2 * channels * FRAME_SAMPLES)
    frame: bytes = encoder.encode(pcm, FRAME_SAMPLES)
    return frame


class AudioSender:
    """Numbers the RTP packets of one attendee's downlink audio stream.

    Args:
        payload_type: the Opus payload type negotiated in the SDP answer.
        ssrc: the stream's SSRC (announced in the answer's ``a=ssrc``).
    """

    __slots__ = (
        "octets_sent",
        "packets_sent",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    def __init__(self, payload_type: int, ssrc: int) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        # RFC 3550 §5.1: the initial sequence number and timestamp SHOULD be random.
        self.sequence_number = secrets.randbelow(0x10000)
        self.timestamp = secrets.randbelow(0x100000000)
        self.packets_sent = 0
        self.octets_sent = 0

    def packet(self, payload: bytes) -> bytes:
        """The next RTP packet carrying ``payload`` (one 20 ms frame)."""
        marker = 0x80 if self.packets_sent == 0 else 0
        header = _HEADER.pack(
            0x80, marker | self.payload_type, self.sequence_number, self.timestamp, self.ssrc
        )
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return header + payload

    def sender_report(self, wall: float) -> RtcpSenderReport:
        """An RTCP SR for this stream (RFC 3550 §6.4.1): NTP time of ``wall`` and the RTP
        timestamp of the next frame, with the packet and payload octet counts so far."""
        ntp = int((wall + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF
        return RtcpSenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp,
            rtp_timestamp=self.timestamp,
            packet_count=self.packets_sent & 0xFFFFFFFF,
            octet_count=self.octets_sent & 0xFFFFFFFF,
        )


class ListenerPeer(Protocol):
    """The transport side of a listener: its SRTP context, address and counters."""

    @property
    def srtp(self) -> SrtpContext | None: ...

    @property
    def address(self) -> Address | None: ...

    @property
    def stats(self) -> PeerStats: ...


class AudioListener(Protocol):
    """One attendee receiving audio (the media engine's downlink)."""

    @property
    def source_id(self) -> str: ...

    @property
    def audio(self) -> AudioSender: ...

    @property
    def peer(self) -> ListenerPeer: ...


def send_mix(
    out: MixOutput,
    listeners: Iterable[AudioListener],
    sendto: Callable[[bytes, Address], None],
) -> int:
    """Send one tick's mix: each listener's frame (personal, or the shared one of its
    layout) in its next RTP packet, SRTP-protected, to its address. Listeners without keys
    or an address yet are skipped. Returns the number of packets sent.

    This is the audio clock's per-listener loop (the benchmark runs it as is), so it only
    reads what the tick prepared: no lookups by id beyond the personal frames.
    """
    personal = out.personal
    shared = out.shared
    shared_stereo = out.shared_stereo
    stereo = out.stereo_receivers
    sent = 0
    for listener in listeners:
        peer = listener.peer
        srtp = peer.srtp
        address = peer.address
        if srtp is None or address is None:
            continue
        source_id = listener.source_id
        frame = personal.get(source_id)
        if frame is None:
            frame = shared if shared_stereo is None or source_id not in stereo else shared_stereo
        packet = srtp.protect_rtp(listener.audio.packet(frame))
        stats = peer.stats
        stats.rtp_out += 1
        stats.bytes_out += len(packet)
        sendto(packet, address)
        sent += 1
    return sent
