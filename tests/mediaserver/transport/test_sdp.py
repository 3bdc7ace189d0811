"""Tests for mediaserver.transport.sdp against real Chromium and aiortc offers."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mediaserver.errors import InvalidArgument, MalformedMessage, UnsupportedError
from mediaserver.transport.sdp import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    DEPENDENCY_DESCRIPTOR_URI,
    REPAIRED_RTP_STREAM_ID_URI,
    RTP_STREAM_ID_URI,
    SDES_MID_URI,
    TRANSPORT_CC_URI,
    VIDEO_LAYERS_ALLOCATION_URI,
    AnswerParams,
    Candidate,
    Codec,
    Fingerprint,
    H264Profile,
    MediaSection,
    Msid,
    Rid,
    SectionRole,
    SessionOffer,
    Simulcast,
    SsrcGroup,
    VideoCodec,
    VideoSendAssignment,
    build_answer,
    h264_profile,
    parse_offer,
    plan_answer,
    video_slots,
)
from tests.helpers.vectors import load

CHROME_VECTORS = [
    "chrome_video_inactive_offer.sdp",
    "chrome_camera_sendrecv_offer.sdp",
    "chrome_camera_sendrecv_offer_renegotiated.sdp",
    "chrome_simulcast_offer.sdp",
    "chrome_chime_codec_order_offer.sdp",
]
ALL_VECTORS = [*CHROME_VECTORS, "aiortc_offer.sdp"]

FINGERPRINT = "sha-256 " + ":".join(f"{i:02X}" for i in range(32))
SERVER_HOST = "203.0.113.7"
SERVER_PORT = 16000
AUDIO_SSRC = 424242
CNAME = "carillon"
SUPPORTED_FEEDBACK = {"nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"}


def load_offer(name: str) -> SessionOffer:
    return parse_offer(load(f"sdp/{name}").decode())


def make_params(offer: SessionOffer, **changes: object) -> AnswerParams:
    """Parameters as the server builds them: one assignment per downlink slot."""
    codec = changes.pop("send_codec", VideoCodec.VP8)
    assert isinstance(codec, VideoCodec)
    assignments = {
        slot.mid: VideoSendAssignment(
            ssrc=5000 + slot.index, codec=codec, rtx_ssrc=6000 + slot.index
        )
        for slot in video_slots(offer)
        if slot.is_downlink
    }
    params = AnswerParams(
        ice_ufrag="crln",
        ice_pwd="carillonTestPassword0123456",
        fingerprint=FINGERPRINT,
        host=SERVER_HOST,
        port=SERVER_PORT,
        audio_ssrc=AUDIO_SSRC,
        cname=CNAME,
        video_send=assignments,
    )
    return dataclasses.replace(params, **changes)  # type: ignore[arg-type]


def sections(sdp: str) -> list[list[str]]:
    """Split SDP text into [session lines, m-section 0 lines, ...]."""
    result: list[list[str]] = [[]]
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            result.append([])
        if line:
            result[-1].append(line)
    return result


def values(lines: list[str], prefix: str) -> list[str]:
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


# --------------------------------------------------------------------------------------------
# Parsing real offers.
# --------------------------------------------------------------------------------------------


def test_chrome_simulcast_offer_parses_field_by_field() -> None:
    """Every field of a Chromium 156 simulcast offer is read."""
    offer = load_offer("chrome_simulcast_offer.sdp")
    assert offer.origin == ("-", "537184266449148666", "2", "IN", "IP4", "127.0.0.1")
    assert offer.bundle == ("0", "1", "2", "3")
    assert offer.extmap_allow_mixed
    assert not offer.ice_lite
    assert offer.ice_ufrag is None and offer.fingerprints == ()
    assert [(s.kind, s.mid, s.direction) for s in offer.media] == [
        ("audio", "0", "sendrecv"),
        ("video", "1", "sendrecv"),
        ("video", "2", "recvonly"),
        ("video", "3", "recvonly"),
    ]
    audio, camera, down2, _down3 = offer.media
    assert audio.port == 44876 and camera.port == 9
    assert audio.protocol == "UDP/TLS/RTP/SAVPF"
    assert audio.formats == ("111", "63", "9", "0", "8", "13", "110", "126")
    for section in offer.media:
        assert section.ice_ufrag == "Svk6"
        assert section.ice_pwd == "uTVOCIjWCXWZuz71PeY7IzQd"
        assert section.ice_options == ("trickle",)
        assert section.fingerprints == (
            Fingerprint.parse(
                "sha-256 B8:BC:7E:D7:E8:94:4A:5B:54:D0:40:8B:AE:3A:E6:3F:"
                "45:5E:5D:BE:D3:47:0D:D7:6C:15:DC:C4:C7:65:BB:1C",
            ),
        )
        assert section.setup == "actpass"
        assert section.rtcp_mux and section.rtcp_rsize
        assert not section.rejected and not section.bundle_only
    assert len(audio.candidates) == 8
    assert audio.candidates[0] == Candidate(
        foundation="2186267836",
        component=1,
        transport="udp",
        priority=2122194687,
        host="127.0.0.1",
        port=44876,
        type="host",
        extensions=(("generation", "0"), ("network-id", "3"), ("network-cost", "50")),
    )
    assert audio.candidates[1].host == "192.0.2.2"
    assert audio.candidates[4].transport == "tcp"
    assert ("tcptype", "active") in audio.candidates[4].extensions
    assert not audio.end_of_candidates
    assert camera.candidates == ()
    assert audio.extmaps == {
        1: AUDIO_LEVEL_URI,
        2: ABS_SEND_TIME_URI,
        3: TRANSPORT_CC_URI,
        4: SDES_MID_URI,
    }
    opus = audio.codecs[0]
    assert opus == Codec(
        payload_type=111,
        name="opus",
        clock_rate=48000,
        channels=2,
        fmtp={"minptime": "10", "useinbandfec": "1"},
        fmtp_line="minptime=10;useinbandfec=1",
        rtcp_fb=("transport-cc",),
    )
    red = audio.codec(63)
    assert red is not None and red.fmtp == {"111/111": ""} and red.channels == 2
    assert [c.name for c in audio.codecs] == [
        "opus",
        "red",
        "G722",
        "PCMU",
        "PCMA",
        "CN",
        "telephone-event",
        "telephone-event",
    ]
    assert audio.ssrcs[0].ssrc == 3474983001
    assert audio.ssrcs[0].cname == "y7ELKKp7V1HPMfLz"
    assert audio.ssrcs[0].msid == (
        "bb428ff5-ce47-49a3-9db4-b421022f994e 006c7dee-5179-4ef0-9293-d7fc6b0bffd6"
    )
    assert audio.msids == (
        Msid("bb428ff5-ce47-49a3-9db4-b421022f994e", "006c7dee-5179-4ef0-9293-d7fc6b0bffd6"),
    )
    # Camera: RID simulcast, no a=ssrc lines (RFC 8853 sends the SSRCs in-band).
    assert camera.rids == (Rid("low", "send"), Rid("mid", "send"), Rid("hi", "send"))
    assert camera.simulcast == Simulcast(send=(("low",), ("mid",), ("hi",)))
    assert camera.simulcast.send_rids == ("low", "mid", "hi")
    assert camera.ssrcs == () and camera.ssrc_groups == ()
    assert camera.extmaps[10] == RTP_STREAM_ID_URI
    assert camera.extmaps[11] == REPAIRED_RTP_STREAM_ID_URI
    assert camera.extmaps[12] == DEPENDENCY_DESCRIPTOR_URI
    assert camera.extmaps[9] == VIDEO_LAYERS_ALLOCATION_URI
    assert len(camera.extmaps) == 13
    vp8 = camera.codec(96)
    assert vp8 is not None and vp8.name == "VP8" and vp8.clock_rate == 90000
    assert vp8.channels is None
    assert vp8.rtcp_fb == ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")
    assert camera.rtx_map[96] == 97 and camera.rtx_map[108] == 109
    rtx = camera.codec(97)
    assert rtx is not None and rtx.is_rtx and rtx.apt == 96
    h264 = camera.codec(108)
    assert h264 is not None and h264.fmtp == {
        "level-asymmetry-allowed": "1",
        "packetization-mode": "1",
        "profile-level-id": "42e01f",
    }
    # A recvonly transceiver offers every receive codec, including VP9 profiles 1 and 3.
    assert len(down2.codecs) == 34 and len(camera.codecs) == 23
    assert down2.msids == ()


def test_aiortc_offer_parses_field_by_field() -> None:
    """An aiortc 1.16 offer: per-media candidates, three fingerprints, FID groups."""
    offer = load_offer("aiortc_offer.sdp")
    assert offer.bundle == ("0", "1", "2")
    assert not offer.extmap_allow_mixed
    audio, inactive, recvonly = offer.media
    assert (audio.direction, inactive.direction, recvonly.direction) == (
        "sendrecv",
        "inactive",
        "recvonly",
    )
    assert [f.algorithm for f in audio.fingerprints] == ["sha-256", "sha-384", "sha-512"]
    assert audio.ice_ufrag == "wHbx" and audio.ice_pwd == "zpnwcvPtNCr6q5j6j6DYdO"
    assert audio.end_of_candidates
    assert [(c.host, c.port, c.priority) for c in audio.candidates] == [
        ("192.0.2.2", 50452, 2130706431),
        ("fd00::2", 49316, 2130706431),
    ]
    assert not audio.rtcp_rsize and audio.rtcp_mux
    assert [(c.payload_type, c.name) for c in audio.codecs] == [
        (96, "opus"),
        (9, "G722"),
        (0, "PCMU"),
        (8, "PCMA"),
    ]
    assert audio.extmaps == {1: SDES_MID_URI, 2: AUDIO_LEVEL_URI}
    assert inactive.ssrc_groups == (SsrcGroup("FID", (3086821557, 2191033868)),)
    assert [s.cname for s in inactive.ssrcs] == ["8a3a5a30-152d-4d57-ae20-7fd78be50fe4"] * 2
    assert recvonly.rtx_map == {97: 98, 99: 100, 101: 102}
    assert recvonly.codec(97) is not None
    assert recvonly.codec(97).rtcp_fb == ("nack", "nack pli", "goog-remb")  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_every_vector_parses_with_lf_line_ends_too(name: str) -> None:
    text = load(f"sdp/{name}").decode()
    assert "\r\n" in text
    assert parse_offer(text) == parse_offer(text.replace("\r\n", "\n"))


def test_renegotiated_offer_has_a_rejected_mline_that_keeps_its_mid() -> None:
    offer = load_offer("chrome_camera_sendrecv_offer_renegotiated.sdp")
    assert offer.bundle == ("0", "1", "2")
    stopped = offer.section("3")
    assert stopped.port == 0 and stopped.rejected and stopped.direction == "inactive"
    assert [s.rejected for s in offer.media] == [False, False, False, True]


def test_chime_codec_order_vector_lists_red_and_vp9_first() -> None:
    offer = load_offer("chrome_chime_codec_order_offer.sdp")
    assert offer.media[0].codecs[0].name == "red"
    assert offer.media[1].codecs[0].name == "VP9"


# --------------------------------------------------------------------------------------------
# Malformed offers.
# --------------------------------------------------------------------------------------------

MINIMAL = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n"
    f"a=fingerprint:{FINGERPRINT}\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
)


def test_minimal_offer_with_session_level_credentials() -> None:
    offer = parse_offer(MINIMAL)
    assert offer.ice_ufrag == "abcd"
    assert offer.media[0].ice_ufrag == "abcd"
    assert offer.media[0].fingerprints == (Fingerprint.parse(FINGERPRINT),)
    assert offer.media[0].setup is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "SDP offer is empty"),
        ("v=1\r\n", "SDP line 1: an SDP description must start with v=0"),
        ("hello\r\n", "SDP line 1: 'hello' is not a <type>=<value> line"),
        (MINIMAL.split("m=")[0], "SDP offer has no m-line"),
        (
            MINIMAL.replace("m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=audio 9 UDP/TLS/RTP/SAVPF"),
            "SDP line 9: m-line 'audio 9 UDP/TLS/RTP/SAVPF' needs media, port, protocol"
            " and formats",
        ),
        (
            MINIMAL.replace("m=audio 9 ", "m=audio x9 "),
            "SDP line 9: m-line port 'x9' is not a decimal integer",
        ),
        (
            MINIMAL.replace("m=audio 9 ", "m=audio 70000 "),
            "SDP line 9: m-line port 70000 is outside 0..65535",
        ),
        (
            MINIMAL.replace("SAVPF 111", "SAVPF 200"),
            "SDP line 9: m-line RTP payload type 200 is outside 0..127",
        ),
        (MINIMAL.replace("a=mid:0\r\n", ""), "SDP line 9: m-line 0 (audio) has no a=mid"),
        (
            MINIMAL.replace("a=ice-pwd:abcdefghijklmnopqrstuv\r\n", ""),
            "SDP line 8: m-line mid '0' has no a=ice-ufrag/a=ice-pwd",
        ),
        (
            MINIMAL.replace("a=ice-ufrag:abcd\r\n", ""),
            "SDP line 8: m-line mid '0' has no a=ice-ufrag/a=ice-pwd",
        ),
        (
            MINIMAL.replace(f"a=fingerprint:{FINGERPRINT}\r\n", ""),
            "SDP line 8: m-line mid '0' has no a=fingerprint",
        ),
        (
            MINIMAL.replace("a=ice-ufrag:abcd", "a=ice-ufrag:ab"),
            "SDP line 6: bad a=ice-ufrag value 'ab' (4-256 ALPHA/DIGIT/+/)",
        ),
        (
            MINIMAL.replace(FINGERPRINT, "sha-256 AA:B"),
            "SDP line 8: bad a=fingerprint: "
            "fingerprint is not colon-separated hex pairs: 'sha-256 AA:B'",
        ),
        (
            MINIMAL.replace(FINGERPRINT, "sha-256 AA:BB"),
            "SDP line 8: bad a=fingerprint: sha-256 fingerprint must have 32 bytes, not 2",
        ),
        (
            MINIMAL.replace("a=group:BUNDLE 0\r\n", "")
            + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n",
            "SDP offer is not bundled: mids ['0', '1'] are not in a=group:BUNDLE []",
        ),
        (
            MINIMAL + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n",
            "SDP line 14: m-line 1 repeats mid '0'",
        ),
        (
            MINIMAL + "a=rtpmap:111 opus\r\n",
            "SDP line 14: bad a=rtpmap value '111 opus'",
        ),
        (
            MINIMAL + "a=extmap:0 urn:x\r\n",
            "SDP line 14: extmap id 0 is outside 1..4095",
        ),
        (MINIMAL + "a=setup:sideways\r\n", "SDP line 14: bad a=setup value 'sideways'"),
        (MINIMAL + "a=candidate:1 1 udp\r\n", "SDP line 14: bad a=candidate value '1 1 udp'"),
        (MINIMAL + "a=rid:a b\r\n", "SDP line 14: bad a=rid value 'a b'"),
        (
            MINIMAL + "a=simulcast:send a;b recv\r\n",
            "SDP line 14: bad a=simulcast value 'send a;b recv'",
        ),
        (MINIMAL + "a=simulcast:send a;!\r\n", "SDP line 14: bad RID '!' in a=simulcast"),
        (MINIMAL + "a=ssrc:x cname:y\r\n", "SDP line 14: ssrc 'x' is not a decimal integer"),
    ],
)
def test_malformed_offers_raise_precise_messages(text: str, message: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        parse_offer(text)
    assert str(info.value) == message


def test_unknown_attributes_and_line_types_are_ignored() -> None:
    text = MINIMAL + "a=x-unknown:whatever really\r\na=foo\r\nb=AS:30\r\nk=prompt\r\n"
    assert parse_offer(text).media[0].codecs[0].name == "opus"


def test_bundle_only_port_zero_is_not_rejected() -> None:
    text = MINIMAL.replace("BUNDLE 0", "BUNDLE 0 1") + (
        "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=bundle-only\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n"
    )
    video = parse_offer(text).media[1]
    assert video.bundle_only and not video.rejected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_parses_or_raises_malformed_message(text: str) -> None:
    with contextlib.suppress(MalformedMessage):
        parse_offer(text)


_SDP_LINE = st.one_of(
    st.sampled_from(MINIMAL.split("\r\n")),
    st.builds(
        lambda t, v: f"{t}={v}",
        st.sampled_from("vomcat"),
        st.text(alphabet=" :;/=-~*0123456789abcdAZ", max_size=30),
    ),
    st.builds(
        lambda n, v: f"a={n}:{v}",
        st.sampled_from(
            [
                "mid",
                "rtpmap",
                "fmtp",
                "rtcp-fb",
                "extmap",
                "ssrc",
                "ssrc-group",
                "rid",
                "simulcast",
                "msid",
                "candidate",
                "fingerprint",
                "setup",
                "ice-ufrag",
                "ice-pwd",
                "group",
            ]
        ),
        st.text(alphabet=" :;/=-~*,0123456789abcdAZ", max_size=40),
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SDP_LINE, max_size=25), st.sampled_from(["\r\n", "\n"]))
def test_sdp_shaped_text_parses_or_raises_malformed_message(lines: list[str], eol: str) -> None:
    try:
        offer = parse_offer(eol.join(["v=0", *lines]))
    except MalformedMessage:
        return
    # Whatever parses can be answered, or refused with a documented error.
    try:
        answer = build_answer(offer, make_params(offer))
    except (UnsupportedError, InvalidArgument):
        return
    parse_offer(answer)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_VECTORS), st.data())
def test_vectors_with_lines_dropped_parse_or_raise(name: str, data: st.DataObject) -> None:
    lines = load(f"sdp/{name}").decode().split("\r\n")
    drop = data.draw(st.sets(st.integers(0, len(lines) - 1), max_size=8))
    text = "\r\n".join(line for i, line in enumerate(lines) if i not in drop)
    try:
        offer = parse_offer(text)
    except MalformedMessage:
        return
    try:
        answer = build_answer(offer, make_params(offer))
    except (UnsupportedError, InvalidArgument):
        return
    parse_offer(answer)


# --------------------------------------------------------------------------------------------
# H.264 and codec matching.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile_level_id", "profile"),
    [
        ("42e01f", H264Profile.CONSTRAINED_BASELINE),
        ("42c01f", H264Profile.CONSTRAINED_BASELINE),
        ("42E034", H264Profile.CONSTRAINED_BASELINE),
        ("4d801f", H264Profile.CONSTRAINED_BASELINE),
        ("58c01f", H264Profile.CONSTRAINED_BASELINE),
        ("42001f", H264Profile.BASELINE),
        ("4d001f", H264Profile.MAIN),
        ("64001f", H264Profile.HIGH),
        ("640c1f", H264Profile.CONSTRAINED_HIGH),
        ("f4001f", H264Profile.OTHER),
        ("42e0", None),
        ("zze01f", None),
    ],
)
def test_h264_profile_classification(profile_level_id: str, profile: H264Profile | None) -> None:
    assert h264_profile({"profile-level-id": profile_level_id}) is profile


def test_h264_profile_defaults_to_baseline() -> None:
    assert h264_profile({}) is H264Profile.BASELINE


def _h264(pm: str | None, plid: str, name: str = "H264") -> Codec:
    fmtp = {"profile-level-id": plid}
    if pm is not None:
        fmtp["packetization-mode"] = pm
    return Codec(100, name, 90000, fmtp=fmtp)


def test_h264_matching_requires_packetization_mode_1_and_the_profile() -> None:
    cb = VideoCodec.H264_CONSTRAINED_BASELINE
    assert cb.matches(_h264("1", "42e01f"))
    assert cb.matches(_h264("1", "42e01f", name="h264"))
    assert not cb.matches(_h264("0", "42e01f"))
    assert not cb.matches(_h264(None, "42e01f"))
    assert not cb.matches(_h264("1", "42001f"))
    assert VideoCodec.H264_BASELINE.matches(_h264("1", "42001f"))
    assert not VideoCodec.H264_BASELINE.matches(_h264("1", "4d001f"))


def test_vp9_and_av1_match_profile_0_only() -> None:
    assert VideoCodec.VP9_PROFILE_0.matches(Codec(98, "vp9", 90000, fmtp={"profile-id": "0"}))
    assert VideoCodec.VP9_PROFILE_0.matches(Codec(98, "VP9", 90000))
    assert not VideoCodec.VP9_PROFILE_0.matches(Codec(98, "VP9", 90000, fmtp={"profile-id": "2"}))
    assert VideoCodec.AV1_MAIN.matches(Codec(45, "AV1", 90000, fmtp={"profile": "0"}))
    assert not VideoCodec.AV1_MAIN.matches(Codec(47, "AV1", 90000, fmtp={"profile": "1"}))
    assert VideoCodec.VP8.matches(Codec(96, "vp8", 90000))


# --------------------------------------------------------------------------------------------
# Answers: every rule of spec §3.3, checked on every vector.
# --------------------------------------------------------------------------------------------


def check_answer(offer: SessionOffer, answer: str, params: AnswerParams) -> None:
    """Assert every rule of spec §3.3/§7 on ``answer``."""
    assert answer.endswith("\r\n") and "\n" not in answer.replace("\r\n", "")
    session, *media = sections(answer)
    assert session[0] == "v=0"
    assert "a=ice-lite" in session
    reparsed = parse_offer(answer)
    assert len(media) == len(offer.media)
    accepted = [o.mid for o in offer.media if not reparsed.section(o.mid).rejected]
    assert reparsed.bundle == tuple(accepted)
    first_accepted = True
    for offered, lines, got in zip(offer.media, media, reparsed.media, strict=True):
        assert got.mid == offered.mid and got.kind == offered.kind
        assert lines[0].split()[2] == offered.protocol
        if offered.rejected:
            assert got.port == 0
            continue
        if got.rejected:
            assert offered.kind not in ("audio",) or offered.index > 0
            continue
        assert got.port == SERVER_PORT
        assert f"c=IN IP4 {SERVER_HOST}" in lines
        assert got.setup == "passive" and got.rtcp_mux
        assert got.ice_ufrag == params.ice_ufrag and got.ice_pwd == params.ice_pwd
        assert [str(f) for f in got.fingerprints] == [params.fingerprint]
        if first_accepted:
            assert got.candidates == (
                Candidate("1", 1, "udp", 2130706431, SERVER_HOST, SERVER_PORT, "host"),
            )
            assert got.end_of_candidates
            first_accepted = False
        else:
            assert got.candidates == ()
        # Only supported extensions the offer had, with the offer's ids.
        for ext_id, uri in got.extmaps.items():
            assert offered.extmaps[ext_id] == uri
            assert uri in params.header_extensions
        for uri in params.header_extensions & set(offered.extmaps.values()):
            assert uri in got.extmaps.values()
        # Payload type numbers and names are the offer's; feedback is a subset.
        for codec in got.codecs:
            offered_codec = offered.codec(codec.payload_type)
            assert offered_codec is not None
            assert offered_codec.name == codec.name
            assert set(codec.rtcp_fb) <= set(offered_codec.rtcp_fb) & SUPPORTED_FEEDBACK
            if codec.is_rtx:
                assert codec.apt in {c.payload_type for c in got.codecs if not c.is_rtx}
        primaries = [c for c in got.codecs if not c.is_rtx]
        if offered.kind == "audio":
            assert offered.index == 0
            assert got.direction == "sendrecv"
            assert [c.name.lower() for c in got.codecs] == ["opus"]
            opus = got.codecs[0]
            offered_opus = offered.codec(opus.payload_type)
            assert offered_opus is not None
            expected = "minptime=10;useinbandfec=1"
            if offered_opus.fmtp.get("stereo") == "1":
                expected += ";stereo=1;sprop-stereo=1"
            assert opus.fmtp_line == expected
            assert got.msids == (Msid(*params.audio_msid),)
            assert [(s.ssrc, s.cname) for s in got.ssrcs] == [(params.audio_ssrc, params.cname)]
        elif offered.direction in ("sendrecv", "sendonly"):
            assert got.direction == "recvonly"
            assert got.ssrcs == () and got.msids == ()
            # Codecs in our preference order, none we do not accept.
            ranks = [
                next(i for i, vc in enumerate(params.camera_codecs) if vc.matches(c))
                for c in primaries
            ]
            assert ranks == sorted(ranks) and ranks
            # Each accepted codec is followed by its RTX when offered and wanted.
            assert [c.payload_type for c in got.codecs] == [
                pt
                for c in primaries
                for pt in (
                    [c.payload_type, offered.rtx_map[c.payload_type]]
                    if params.use_rtx and c.payload_type in offered.rtx_map
                    else [c.payload_type]
                )
            ]
            if params.mirror_simulcast and offered.simulcast is not None:
                assert [r.id for r in got.rids] == list(offered.simulcast.send_rids)
                assert all(r.direction == "recv" for r in got.rids)
                assert got.simulcast == Simulcast(recv=offered.simulcast.send)
            else:
                assert got.rids == () and got.simulcast is None
        elif offered.direction == "recvonly":
            assignment = params.video_send[offered.mid]
            assert got.direction == "sendonly"
            assert len(primaries) == 1 and assignment.codec.matches(primaries[0])
            assert [c.payload_type for c in got.codecs if c.is_rtx] == (
                [offered.rtx_map[primaries[0].payload_type]]
                if params.use_rtx
                and assignment.rtx_ssrc is not None
                and primaries[0].payload_type in offered.rtx_map
                else []
            )
            track = assignment.track_id or f"track_{offered.mid}"
            assert got.msids == (Msid(f"v_{offered.mid}", track),)
            expected_ssrcs = [assignment.ssrc]
            if any(c.is_rtx for c in got.codecs):
                assert assignment.rtx_ssrc is not None
                expected_ssrcs.append(assignment.rtx_ssrc)
                assert got.ssrc_groups == (SsrcGroup("FID", tuple(expected_ssrcs)),)
            assert [s.ssrc for s in got.ssrcs] == expected_ssrcs
            assert all(s.cname == params.cname for s in got.ssrcs)
            assert all(s.msid == f"v_{offered.mid} {track}" for s in got.ssrcs)
        else:
            assert offered.direction == "inactive"
            assert got.direction == "inactive"
            assert got.ssrcs == ()


@pytest.mark.parametrize("name", ALL_VECTORS)
def test_answer_follows_every_rule(name: str) -> None:
    offer = load_offer(name)
    params = make_params(offer)
    check_answer(offer, build_answer(offer, params), params)


@pytest.mark.parametrize("name", ALL_VECTORS)
@pytest.mark.parametrize(
    "changes",
    [
        {"mirror_simulcast": True},
        {"send_codec": VideoCodec.H264_CONSTRAINED_BASELINE, "use_rtx": False},
        {"camera_codecs": (VideoCodec.H264_CONSTRAINED_BASELINE, VideoCodec.VP8)},
        {"header_extensions": frozenset({TRANSPORT_CC_URI})},
        {"header_extensions": frozenset()},
    ],
)
def test_answer_variants_follow_every_rule(name: str, changes: dict[str, object]) -> None:
    offer = load_offer(name)
    params = make_params(offer, **changes)
    check_answer(offer, build_answer(offer, params), params)


def test_camera_answer_lists_accepted_codecs_in_preference_order_with_rtx() -> None:
    offer = load_offer("chrome_chime_codec_order_offer.sdp")
    plan = plan_answer(offer, make_params(offer))
    camera = plan.camera
    assert camera is not None and camera.mid == "1" and camera.role is SectionRole.CAMERA
    # VP8, H.264 CB pm1 (42e01f), H.264 baseline pm1 (42001f), H.264 main pm1 (4d001f),
    # VP9 profile 0, AV1, each + rtx.
    assert [c.payload_type for c in camera.codecs] == [
        96, 97, 108, 109, 102, 103, 116, 117, 98, 99, 45, 46
    ]  # fmt: skip
    assert camera.payload_type == 96 and camera.rtx_payload_type == 97
    assert camera.video_codec is VideoCodec.VP8
    assert camera.codecs[0].rtcp_fb == ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")
    h264 = camera.codecs[2]
    assert (
        h264.fmtp_line == "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
    )


def test_audio_answer_drops_red_even_when_offered_first() -> None:
    offer = load_offer("chrome_chime_codec_order_offer.sdp")
    plan = plan_answer(offer, make_params(offer))
    assert plan.audio_payload_type == 111
    assert not plan.audio_stereo_offered
    answer = sections(build_answer(offer, make_params(offer)))[1]
    assert answer[0] == f"m=audio {SERVER_PORT} UDP/TLS/RTP/SAVPF 111"
    assert values(answer, "a=fmtp:") == ["111 minptime=10;useinbandfec=1"]
    assert values(answer, "a=rtcp-fb:") == ["111 transport-cc"]


def test_stereo_opus_parameters_are_kept() -> None:
    text = load("sdp/chrome_video_inactive_offer.sdp").decode()
    text = text.replace(
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1;maxaveragebitrate=128000",
    )
    offer = parse_offer(text)
    plan = plan_answer(offer, make_params(offer))
    assert plan.audio_stereo_offered
    audio = plan.audio
    assert audio is not None
    assert audio.codecs[0].fmtp_line == "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1"
    check_answer(offer, build_answer(offer, make_params(offer)), make_params(offer))


@pytest.mark.parametrize("params", ["stereo=0;sprop-stereo=1", "sprop-stereo=1", "stereo=0"])
def test_an_offer_without_stereo_1_is_answered_mono(params: str) -> None:
    # RFC 7587 §7.1: only the offerer's stereo=1 asks for stereo; its sprop-stereo says what
    # it sends, which says nothing about what we send back.
    text = load("sdp/chrome_video_inactive_offer.sdp").decode()
    text = text.replace(
        "a=fmtp:111 minptime=10;useinbandfec=1", f"a=fmtp:111 minptime=10;useinbandfec=1;{params}"
    )
    offer = parse_offer(text)
    plan = plan_answer(offer, make_params(offer))
    assert not plan.audio_stereo_offered
    audio = plan.audio
    assert audio is not None
    assert audio.codecs[0].fmtp_line == "minptime=10;useinbandfec=1"


def test_chime_munged_offer_is_answered() -> None:
    """The Chime client rewrites o= and adds x-google-start-bitrate (spec §3.3)."""
    text = load("sdp/chrome_camera_sendrecv_offer.sdp").decode()
    text = text.replace("o=- ", "o=mozilla-chrome ", 1)
    text = text.replace("a=fmtp:102 ", "a=fmtp:102 x-google-start-bitrate=1000;")
    text = text.replace(
        "a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP8/90000\r\na=fmtp:96 x-google-start-bitrate=1000"
    )
    offer = parse_offer(text)
    assert offer.origin[0] == "mozilla-chrome"
    assert offer.media[1].codec(96).fmtp == {"x-google-start-bitrate": "1000"}  # type: ignore[union-attr]
    params = make_params(offer)
    check_answer(offer, build_answer(offer, params), params)


def test_simulcast_rids_are_mirrored_only_when_asked() -> None:
    offer = load_offer("chrome_simulcast_offer.sdp")
    mirrored = sections(build_answer(offer, make_params(offer, mirror_simulcast=True)))[2]
    assert values(mirrored, "a=rid:") == ["low recv", "mid recv", "hi recv"]
    assert values(mirrored, "a=simulcast:") == ["recv low;mid;hi"]
    assert "a=extmap:10 " + RTP_STREAM_ID_URI in mirrored
    assert "a=extmap:11 " + REPAIRED_RTP_STREAM_ID_URI in mirrored
    assert "a=extmap:4 " + SDES_MID_URI in mirrored
    plain = sections(build_answer(offer, make_params(offer)))[2]
    assert values(plain, "a=rid:") == [] and values(plain, "a=simulcast:") == []


def test_downlink_answer_is_sendonly_with_fixed_ssrc_msid_and_fid_group() -> None:
    offer = load_offer("chrome_video_inactive_offer.sdp")
    params = make_params(offer)
    lines = sections(build_answer(offer, params))[3]
    assert lines[0] == f"m=video {SERVER_PORT} UDP/TLS/RTP/SAVPF 96 97"
    assert "a=sendonly" in lines
    assert values(lines, "a=msid:") == ["v_2 track_2"]
    assert values(lines, "a=ssrc-group:") == ["FID 5001 6001"]
    assert values(lines, "a=ssrc:") == [
        "5001 cname:carillon",
        "5001 msid:v_2 track_2",
        "6001 cname:carillon",
        "6001 msid:v_2 track_2",
    ]
    plan = plan_answer(offer, params)
    assert [s.mid for s in plan.video_send] == ["2", "3"]
    assert plan.section("2").ssrc == 5001 and plan.section("2").rtx_ssrc == 6001
    assert plan.section("2").payload_type == 96 and plan.section("2").rtx_payload_type == 97


def test_downlink_without_rtx_ssrc_has_no_rtx_and_a_custom_track_id() -> None:
    offer = load_offer("chrome_video_inactive_offer.sdp")
    params = make_params(
        offer,
        video_send={
            "2": VideoSendAssignment(7000, VideoCodec.H264_CONSTRAINED_BASELINE, track_id="t2"),
            "3": VideoSendAssignment(7001, VideoCodec.VP8),
        },
    )
    lines = sections(build_answer(offer, params))[3]
    assert lines[0] == f"m=video {SERVER_PORT} UDP/TLS/RTP/SAVPF 108"
    assert values(lines, "a=msid:") == ["v_2 t2"]
    assert values(lines, "a=ssrc-group:") == []
    check_answer(offer, build_answer(offer, params), params)


def test_inactive_camera_is_answered_inactive_and_rejected_stays_rejected() -> None:
    offer = load_offer("chrome_camera_sendrecv_offer_renegotiated.sdp")
    params = make_params(offer)
    answer = build_answer(offer, params)
    stopped = sections(answer)[4]
    assert stopped == [
        "m=video 0 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=mid:3",
        "a=inactive",
    ]
    assert "a=group:BUNDLE 0 1 2" in sections(answer)[0]
    inactive = load_offer("chrome_video_inactive_offer.sdp")
    plan = plan_answer(inactive, make_params(inactive))
    assert plan.section("1").role is SectionRole.INACTIVE
    assert plan.section("1").direction == "inactive"
    assert plan.camera is None


def test_plan_helpers_for_the_rtp_path() -> None:
    offer = load_offer("chrome_simulcast_offer.sdp")
    slots = video_slots(offer)
    assert [(s.index, s.mid, s.is_uplink, s.is_downlink) for s in slots] == [
        (0, "1", True, False),
        (1, "2", False, True),
        (2, "3", False, True),
    ]
    plan = plan_answer(offer, make_params(offer, mirror_simulcast=True))
    assert plan.video_mids == ("1", "2", "3")
    assert plan.audio_level_id == 1
    assert plan.abs_send_time_id == 2
    assert plan.transport_cc_id == 3
    assert plan.mid_id == 4
    assert plan.rid_id == 10
    assert plan.repaired_rid_id == 11
    assert plan.extension_id("urn:3gpp:video-orientation") is None
    assert plan.camera is not None and plan.camera.recv_rids == ("low", "mid", "hi")
    assert plan.bundle == ("0", "1", "2", "3")
    aiortc_plan = plan_answer(
        load_offer("aiortc_offer.sdp"), make_params(load_offer("aiortc_offer.sdp"))
    )
    assert aiortc_plan.audio_payload_type == 96 and aiortc_plan.transport_cc_id is None


def test_transport_cc_feedback_needs_the_extension() -> None:
    offer = load_offer("chrome_camera_sendrecv_offer.sdp")
    plan = plan_answer(offer, make_params(offer, header_extensions=frozenset({ABS_SEND_TIME_URI})))
    camera = plan.camera
    assert camera is not None
    assert camera.codecs[0].rtcp_fb == ("goog-remb", "ccm fir", "nack", "nack pli")
    assert plan.audio is not None and plan.audio.codecs[0].rtcp_fb == ()


def test_extmap_allow_mixed_is_echoed_only_when_enabled() -> None:
    offer = load_offer("chrome_camera_sendrecv_offer.sdp")
    assert "a=extmap-allow-mixed" not in build_answer(offer, make_params(offer))
    enabled = build_answer(offer, make_params(offer, extmap_allow_mixed=True))
    assert "a=extmap-allow-mixed" in sections(enabled)[0]


def test_ipv6_host_is_written_as_ip6() -> None:
    offer = load_offer("aiortc_offer.sdp")
    answer = build_answer(offer, make_params(offer, host="2001:db8::7"))
    assert "c=IN IP6 2001:db8::7" in answer
    assert "a=candidate:1 1 udp 2130706431 2001:db8::7 16000 typ host" in answer


# --------------------------------------------------------------------------------------------
# Refusals.
# --------------------------------------------------------------------------------------------


def _replace_section(offer: SessionOffer, index: int, **changes: object) -> SessionOffer:
    media = list(offer.media)
    media[index] = dataclasses.replace(media[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(offer, media=tuple(media))


def _unsupported_offers() -> Iterator[tuple[SessionOffer, str]]:
    offer = load_offer("chrome_camera_sendrecv_offer.sdp")
    audio = offer.media[0]
    yield (
        _replace_section(offer, 0, codecs=tuple(c for c in audio.codecs if c.name != "opus")),
        "audio m-line mid '0' does not offer opus/48000/2",
    )
    camera = offer.media[1]
    yield (
        _replace_section(
            offer, 1, codecs=tuple(c for c in camera.codecs if c.name in ("rtx", "red"))
        ),
        "video m-line mid '1' offers none of the accepted codecs"
        " ['VP8', 'H264_CONSTRAINED_BASELINE', 'H264_BASELINE', 'H264_MAIN', 'VP9_PROFILE_0',"
        " 'AV1_MAIN']"
        " (offered: ['red'])",
    )
    yield (
        _replace_section(
            offer, 2, codecs=tuple(c for c in offer.media[2].codecs if c.name != "VP8")
        ),
        "video m-line mid '2' does not offer VP8",
    )
    yield (
        _replace_section(offer, 0, protocol="RTP/AVP"),
        "m-line mid '0' uses RTP/AVP, not DTLS-SRTP",
    )
    yield (_replace_section(offer, 0, rtcp_mux=False), "m-line mid '0' does not offer a=rtcp-mux")
    yield (
        _replace_section(offer, 0, setup="passive"),
        "the offer is a=setup:passive; the server is DTLS passive",
    )


@pytest.mark.parametrize(("offer", "message"), list(_unsupported_offers()))
def test_unsupported_offers_raise_unsupported_error(offer: SessionOffer, message: str) -> None:
    params = make_params(load_offer("chrome_camera_sendrecv_offer.sdp"))
    with pytest.raises(UnsupportedError) as info:
        plan_answer(offer, params)
    assert str(info.value) == message


def test_datachannel_and_second_audio_are_rejected() -> None:
    text = MINIMAL.replace("BUNDLE 0", "BUNDLE 0 1 2") + (
        "a=setup:actpass\r\n"
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:1\r\na=sctp-port:5000\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
    )
    offer = parse_offer(text)
    params = make_params(offer)
    plan = plan_answer(offer, params)
    assert [s.role for s in plan.sections] == [
        SectionRole.AUDIO,
        SectionRole.REJECTED,
        SectionRole.REJECTED,
    ]
    answer = sections(build_answer(offer, params))
    assert answer[2][0] == "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"
    assert "a=group:BUNDLE 0" in answer[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ice_ufrag": "abc"}, "ice_ufrag must be 4-256 ALPHA/DIGIT/+/ characters (RFC 8839)"),
        ({"ice_pwd": "short"}, "ice_pwd must be 22-256 ALPHA/DIGIT/+/ characters (RFC 8839)"),
        ({"fingerprint": "AB:CD"}, "fingerprint 'AB:CD' is not 'sha-256 AB:CD:...'"),
        ({"host": "example.com"}, "host 'example.com' is not an IP address"),
        ({"port": 0}, "port 0 is outside 1..65535"),
        ({"cname": "a b"}, "cname 'a b' must be non-empty without whitespace"),
        ({"audio_ssrc": 0}, "SSRC 0 is outside 1..2**32-1"),
        ({"audio_ssrc": 5001}, "SSRCs must be distinct, got [5001, 5001, 6001, 5002, 6002]"),
        ({"video_send": {}}, "no VideoSendAssignment for the recvonly video mid '2'"),
        (
            {"video_send": {"1": VideoSendAssignment(9, VideoCodec.VP8)}},
            "video_send names mids ['1'] that are not recvonly video m-lines",
        ),
        (
            {"video_send": {"2": VideoSendAssignment(9, VideoCodec.VP8, track_id="a b")}},
            "track id 'a b' of mid '2' is invalid",
        ),
    ],
)
def test_invalid_params_raise_invalid_argument(changes: dict[str, object], message: str) -> None:
    offer = load_offer("chrome_camera_sendrecv_offer.sdp")
    with pytest.raises(InvalidArgument) as info:
        plan_answer(offer, make_params(offer, **changes))
    assert str(info.value) == message


def test_unknown_mid_lookups_raise_invalid_argument() -> None:
    offer = load_offer("aiortc_offer.sdp")
    with pytest.raises(InvalidArgument, match="no m-line with mid '9'"):
        offer.section("9")
    with pytest.raises(InvalidArgument, match="no m-line with mid '9'"):
        plan_answer(offer, make_params(offer)).section("9")


def test_media_section_lookup_helpers() -> None:
    section: MediaSection = load_offer("aiortc_offer.sdp").media[1]
    assert section.extension_id(ABS_SEND_TIME_URI) == 3
    assert section.extension_id(TRANSPORT_CC_URI) is None
    assert section.codec(55) is None


# --------------------------------------------------------------------------------------------
# aiortc accepts our answers (the stack of our Python client and bench bots).
# --------------------------------------------------------------------------------------------


async def _aiortc_round(
    shape: str, **changes: object
) -> tuple[list[tuple[str | None, str | None]], str]:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import VideoStreamTrack
    from aiortc.rtcconfiguration import RTCBundlePolicy

    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        if shape == "camera":
            pc.addTransceiver(VideoStreamTrack(), direction="sendrecv")
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
        else:
            pc.addTransceiver("video", direction="inactive")
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = parse_offer(pc.localDescription.sdp)
        params = make_params(offer, **changes)
        answer = build_answer(offer, params)
        check_answer(offer, answer, params)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        state = pc.signalingState
        directions = [(t.mid, t.currentDirection) for t in pc.getTransceivers()]
    finally:
        await pc.close()
    return directions, state


async def test_aiortc_accepts_the_answer_to_its_offer() -> None:
    directions, state = await _aiortc_round("vector")
    assert state == "stable"
    assert directions == [("0", "sendrecv"), ("1", "inactive"), ("2", "recvonly")]


async def test_aiortc_accepts_camera_and_two_downlinks() -> None:
    directions, state = await _aiortc_round(
        "camera", camera_codecs=(VideoCodec.H264_CONSTRAINED_BASELINE, VideoCodec.VP8)
    )
    assert state == "stable"
    assert directions == [
        ("0", "sendrecv"),
        ("1", "sendonly"),
        ("2", "recvonly"),
        ("3", "recvonly"),
    ]


def test_downlink_m_lines_can_drop_transport_cc_for_a_client_estimating_its_downlink() -> None:
    """A client that adapts its own downlink reads the browser's receive-side estimate,
    which exists only without transport-cc: its recvonly m-lines get REMB and no
    transport-wide extension; its camera m-line is answered as usual."""
    offer = load_offer("chrome_simulcast_offer.sdp")
    remb_only = ("nack", "nack pli", "ccm fir", "goog-remb")
    params = make_params(offer, downlink_video_feedback=remb_only)
    plan = plan_answer(offer, params)
    downlinks = [s for s in plan.sections if s.role is SectionRole.VIDEO_SEND]
    assert downlinks
    for section in downlinks:
        for codec in section.codecs:
            if not codec.is_rtx:
                assert "goog-remb" in codec.rtcp_fb and "transport-cc" not in codec.rtcp_fb
        assert TRANSPORT_CC_URI not in section.extmaps.values()
    # The camera m-line is answered as for everyone else.
    assert plan.camera == plan_answer(offer, make_params(offer)).camera
    text = build_answer(offer, params)
    for lines in sections(text)[3:]:
        assert not any("transport-wide-cc" in line for line in lines)
        assert any(line.endswith(" goog-remb") for line in lines)
