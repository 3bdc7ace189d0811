"""Video codec negotiation per format: receive capabilities, the meeting intersection, and
downlink m-lines answered with each codec (captured offers in tests/vectors/sdp)."""

from __future__ import annotations

import dataclasses

import pytest

from mediaserver.transport.sdp import (
    DEFAULT_CAMERA_CODECS,
    VideoCodec,
    codec_intersection,
    plan_answer,
    receive_codecs,
    render_answer,
)
from tests.mediaserver.transport.test_sdp import load_offer, make_params

V = VideoCodec

CHROME_DECODES = frozenset(
    {V.VP8, V.H264_CONSTRAINED_BASELINE, V.H264_BASELINE, V.H264_MAIN, V.VP9_PROFILE_0, V.AV1_MAIN}
)


def test_receive_codecs_of_captured_offers() -> None:
    chrome = receive_codecs(load_offer("chrome_chime_codec_order_offer.sdp"))
    assert chrome >= CHROME_DECODES
    aiortc = receive_codecs(load_offer("aiortc_offer.sdp"))
    assert aiortc == {V.VP8, V.H264_CONSTRAINED_BASELINE, V.H264_BASELINE}


def test_the_intersection_keeps_what_everyone_decodes_in_preference_order() -> None:
    chrome = receive_codecs(load_offer("chrome_chime_codec_order_offer.sdp"))
    aiortc = receive_codecs(load_offer("aiortc_offer.sdp"))
    assert codec_intersection([chrome, aiortc]) == (
        V.VP8,
        V.H264_CONSTRAINED_BASELINE,
        V.H264_BASELINE,
    )
    assert codec_intersection([chrome])[:1] == (V.VP8,)
    assert codec_intersection([chrome, frozenset({V.AV1_MAIN, V.VP9_PROFILE_0})]) == (
        V.VP9_PROFILE_0,
        V.AV1_MAIN,
    )
    assert codec_intersection([]) == DEFAULT_CAMERA_CODECS
    assert codec_intersection([frozenset({V.VP8}), frozenset({V.AV1_MAIN})]) == ()


@pytest.mark.parametrize(
    ("codec", "payload_type", "rtx", "fmtp"),
    [
        (V.VP8, 96, 97, None),
        (V.H264_CONSTRAINED_BASELINE, 108, 109, "profile-level-id=42e01f"),
        (V.H264_BASELINE, 102, 103, "profile-level-id=42001f"),
        (V.H264_MAIN, 116, 117, "profile-level-id=4d001f"),
        (V.VP9_PROFILE_0, 98, 99, "profile-id=0"),
        (V.AV1_MAIN, 45, 46, "profile=0"),
    ],
)
def test_a_downlink_is_answered_with_the_forwarded_codec_and_its_rtx(
    codec: VideoCodec, payload_type: int, rtx: int, fmtp: str | None
) -> None:
    offer = load_offer("chrome_chime_codec_order_offer.sdp")
    plan = plan_answer(offer, make_params(offer, send_codec=codec))
    (downlink,) = plan.video_send
    assert downlink.payload_type == payload_type and downlink.rtx_payload_type == rtx
    assert [c.payload_type for c in downlink.codecs] == [payload_type, rtx]
    assert downlink.video_codec is codec
    text = render_answer(plan)
    section = text[text.index("a=mid:2\r\n") :]
    assert f"a=ssrc-group:FID {downlink.ssrc} {downlink.rtx_ssrc}" in section
    assert f"a=fmtp:{rtx} apt={payload_type}" in section
    if fmtp is not None:
        lines = section.splitlines()
        assert fmtp in next(line for line in lines if f"fmtp:{payload_type} " in line)


@pytest.mark.parametrize(
    ("preference", "first"),
    [
        ((V.VP8,), 96),
        ((V.H264_CONSTRAINED_BASELINE, V.VP8), 108),
        ((V.VP9_PROFILE_0, V.VP8), 98),
        ((V.AV1_MAIN,), 45),
    ],
)
def test_the_camera_sends_the_first_codec_of_the_meeting_preference(
    preference: tuple[VideoCodec, ...], first: int
) -> None:
    offer = load_offer("chrome_chime_codec_order_offer.sdp")
    plan = plan_answer(offer, make_params(offer, camera_codecs=preference))
    camera = plan.camera
    assert camera is not None and camera.payload_type == first
    assert camera.video_codec is preference[0]


def test_packetization_mode_0_is_never_h264_here() -> None:
    offer = load_offer("chrome_chime_codec_order_offer.sdp")
    (section,) = [s for s in offer.media if s.mid == "1"]
    mode0 = [c for c in section.codecs if c.fmtp.get("packetization-mode") == "0"]
    assert mode0 and not any(v.matches(c) for c in mode0 for v in VideoCodec)


def test_a_downlink_also_lists_the_meeting_codec_with_its_own_payload_types() -> None:
    offer = load_offer("chrome_chime_codec_order_offer.sdp")
    params = make_params(offer, send_codec=V.VP8)
    (mid,) = params.video_send
    assignment = params.video_send[mid]
    params = dataclasses.replace(
        params,
        video_send={
            mid: dataclasses.replace(
                assignment, alternatives=(V.H264_CONSTRAINED_BASELINE, V.VP8, V.H264_HIGH)
            )
        },
    )
    (downlink,) = plan_answer(offer, params).video_send
    assert [c.payload_type for c in downlink.codecs] == [96, 97, 108, 109]
    assert downlink.payload_type == 96, "the forwarded codec first"
    formats = downlink.format_payload_types((V.VP8, V.H264_CONSTRAINED_BASELINE, V.H264_HIGH))
    assert formats == {V.VP8: (96, 97), V.H264_CONSTRAINED_BASELINE: (108, 109)}
