"""Where a subscriber may start receiving a stream: the first packet of a key frame.

A subscriber m-line switching to a stream (a new subscription, a simulcast layer, a
resume) starts at a packet for which :func:`starts_keyframe` is True, so its decoder never
gets a frame without its reference. Per payload format:

* VP8: S=1, PID=0 and the P bit of the payload header clear (RFC 7741 §4.3, RFC 6386 §9.1).
* VP9: B=1, P=0 on spatial layer 0 (RFC 9628 §4.2).
* H.264: an IDR slice, or the SPS sent ahead of it (RFC 6184 §5.2; single NAL unit,
  STAP-A or the first FU-A fragment).
* AV1: the dependency descriptor's start-of-frame bit with a template structure
  attached (the key frame of the AV1 RTP specification's §A.8); without the descriptor,
  the aggregation header's N bit (the first packet of a coded video sequence, AV1 RTP
  specification §4.4).

Anything that does not parse is not a key frame.
"""

from __future__ import annotations

from mediacodecs import av1, h264, vp8, vp9
from mediaserver.errors import MalformedPacket
from mediaserver.rtp.packet import peek_extension, peek_payload_offset

__all__ = ["starts_keyframe"]

_AV1_N_BIT = 0x08


def starts_keyframe(payload_format: str, packet: bytes, dd_ext_id: int | None = None) -> bool:
    """Whether the RTP ``packet`` is the first packet of a key frame.

    Args:
        payload_format: ``vp8``, ``vp9``, ``h264`` or ``av1``; any other is never gated
            (True).
        packet: the RTP packet, header extensions included.
        dd_ext_id: the id of the AV1 dependency descriptor extension, if negotiated.
    """
    try:
        payload = memoryview(packet)[peek_payload_offset(packet) :]
        if payload_format == "vp8":
            return vp8.is_keyframe(payload)
        if payload_format == "vp9":
            return vp9.is_keyframe(payload)
        if payload_format == "h264":
            return h264.is_keyframe(payload)
        if payload_format == "av1":
            if dd_ext_id is not None:
                descriptor = peek_extension(packet, dd_ext_id)
                if descriptor is not None:
                    return bool(descriptor[0] & 0x80) and av1.is_keyframe(descriptor)
            return len(payload) > 0 and bool(payload[0] & _AV1_N_BIT)
    except (MalformedPacket, IndexError):
        return False
    return True
