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
