"""The continuous downlink stream: numbering and its RTCP sender report."""

from __future__ import annotations

from mediaserver.audio.egress import FRAME_SAMPLES, NTP_EPOCH_OFFSET, AudioSender, silence_frame
from mediaserver.rtp.packet import RtpPacket
from mediaserver.rtp.rtcp import RtcpSenderReport


def test_packets_advance_by_one_frame_and_wrap() -> None:
    sender = AudioSender(111, 0x1234)
    sender.sequence_number = 0xFFFF
    sender.timestamp = 0xFFFFFFFF - 100
    first = RtpPacket.parse(sender.packet(b"\x01\x02"))
    second = RtpPacket.parse(sender.packet(b"\x03"))
    assert (first.sequence_number, second.sequence_number) == (0xFFFF, 0)
    assert second.timestamp == (first.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
    assert first.marker and not second.marker
    assert first.ssrc == second.ssrc == 0x1234 and first.payload_type == 111


def test_sender_report_carries_counts_and_ntp_time() -> None:
    sender = AudioSender(111, 7)
    frame = silence_frame()
    for _ in range(3):
        sender.packet(frame)
    report = RtcpSenderReport.parse(sender.sender_report(1_800_000_000.5).serialize())
    assert report.ssrc == 7
    assert report.packet_count == 3
    assert report.octet_count == 3 * len(frame)
    assert report.rtp_timestamp == sender.timestamp
    assert report.ntp_timestamp >> 32 == 1_800_000_000 + NTP_EPOCH_OFFSET
    assert report.ntp_timestamp & 0xFFFFFFFF == 1 << 31


def test_send_mix_gives_each_listener_its_layout_and_skips_unready_peers() -> None:
    from dataclasses import dataclass, field

    from mediaserver.audio.egress import send_mix
    from mediaserver.audio.mixer import MixOutput
    from mediaserver.transport.peer import PeerStats
    from mediaserver.transport.srtp import SRTP_AEAD_AES_128_GCM, SrtpContext, SrtpKeys

    keys = SrtpKeys.from_keying_material(SRTP_AEAD_AES_128_GCM, bytes(range(56)))

    @dataclass
    class Peer:
        srtp: SrtpContext | None
        address: tuple[str, int] | None
        stats: PeerStats = field(default_factory=PeerStats)

    @dataclass
    class Listener:
        source_id: str
        audio: AudioSender
        peer: Peer

    def listener(name: str, ready: bool = True) -> Listener:
        srtp = SrtpContext(keys, "server") if ready else None
        return Listener(name, AudioSender(111, sum(name.encode())), Peer(srtp, (name, 1)))

    listeners = [listener("mono"), listener("wide"), listener("talker"), listener("new", False)]
    out = MixOutput(
        shared=b"M", personal={"talker": b"P"}, speakers=("talker",), levels=(),
        shared_encoded=True, shared_stereo=b"S", stereo_receivers=frozenset({"wide", "new"}),
    )  # fmt: skip
    sent: list[tuple[bytes, tuple[str, int]]] = []
    assert send_mix(out, listeners, lambda data, address: sent.append((data, address))) == 3
    client = SrtpContext(keys, "client")
    payloads = {address[0]: client.unprotect_rtp(data)[12:] for data, address in sent}
    assert payloads == {"mono": b"M", "wide": b"S", "talker": b"P"}
    assert listeners[0].peer.stats.rtp_out == 1 and listeners[3].peer.stats.rtp_out == 0
