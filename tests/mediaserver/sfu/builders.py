"""Generated VP8/VP9 packet sequences for the SFU tests."""

from __future__ import annotations

from mediaserver.rtp.packet import RtpPacket
from mediaserver.sfu.view import PacketView, PacketViewParser

__all__ = ["L1T3", "START_POINTS", "VideoSource", "vp8_view"]

START_POINTS = [0, 1, 32767, 32768, 65535]
"""Wrap start points every sequence table starts from (style guide, convention 17)."""

L1T3 = (0, 2, 1, 2)
"""Temporal ids of consecutive frames in an L1T3 stream."""

_VP8 = PacketViewParser("vp8")


def vp8_view(
    seq: int, ts: int, *, ssrc: int = 1, keyframe: bool = False, start: bool = True,
    tid: int = 0, sync: bool = False, marker: bool = False,
) -> PacketView:  # fmt: skip
    """One VP8 packet with a TID descriptor, parsed into a view."""
    descriptor = bytes([0x90 if start else 0x80, 0x20, tid << 6 | (0x20 if sync else 0)])
    payload = descriptor + (b"\x00" if keyframe else b"\x01") + b"\x00" * 20
    data = RtpPacket(
        payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF, ssrc=ssrc,
        marker=marker, payload=payload,
    ).serialize()  # fmt: skip
    return _VP8.parse(data)


class VideoSource:
    """A VP8 publisher stream: frames of ``packets`` packets, L1T3, key frames on demand."""

    def __init__(self, seq: int, ts: int = 0, *, ssrc: int = 1, packets: int = 2) -> None:
        self.seq = seq
        self.ts = ts
        self.ssrc = ssrc
        self.packets = packets
        self.frame = 0

    def frame_views(self, keyframe: bool = False) -> list[PacketView]:
        """The packets of the next frame (timestamps advance 3000 per frame)."""
        tid = 0 if keyframe else L1T3[self.frame % 4]
        views = [
            vp8_view(
                self.seq + i,
                self.ts,
                ssrc=self.ssrc,
                keyframe=keyframe and i == 0,
                start=i == 0,
                tid=tid,
                sync=tid > 0,
                marker=i == self.packets - 1,
            )
            for i in range(self.packets)
        ]
        self.seq += self.packets
        self.ts += 3000
        self.frame += 1
        return views
