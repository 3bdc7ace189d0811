"""SDP offers from Chime clients and the answers Carillon sends back (pure, no I/O).

Rules of this file:

* :func:`parse_offer` turns the text of an offer (SUBSCRIBE ``sdp_offer``,
  ``chime-signaling-protocol.md`` §3.3) into frozen dataclasses. It accepts CRLF or LF line
  ends, ignores attributes it does not know, and raises only :class:`MalformedMessage`, with
  a message that names the line, for an offer that is structurally unusable.
* :func:`plan_answer` is the negotiation: it decides, section by section, what the answer
  says and returns an :class:`AnswerPlan` that the RTP path reads (payload types, SSRCs,
  header extension ids). It raises :class:`UnsupportedError` when the offer asks for
  something the server cannot do and :class:`InvalidArgument` when the server's own
  :class:`AnswerParams` are inconsistent. :func:`render_answer` writes the plan as text;
  :func:`build_answer` does both.
* The server is ICE-lite (RFC 8445 §2.5) on one shared UDP port, DTLS passive (RFC 5763
  §5), rtcp-mux (RFC 5761), max-bundle (RFC 8843): the answer repeats every offered
  m-line in order (RFC 3264 §6), keeps the offer's payload type numbers and header
  extension ids, and bundles every accepted m-line (spec §3.3 and §7).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from mediaserver.errors import InvalidArgument, MalformedMessage, UnsupportedError
from mediaserver.rtp.extensions import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    DEPENDENCY_DESCRIPTOR_URI,
    REPAIRED_RID_URI,
    SDES_MID_URI,
    SDES_RID_URI,
    TRANSPORT_CC_URI,
    VIDEO_LAYERS_ALLOCATION_URI,
)
from mediaserver.transport.certificate import Fingerprint

__all__ = [
    "ABS_SEND_TIME_URI",
    "AUDIO_LEVEL_URI",
    "DEFAULT_AUDIO_FEEDBACK",
    "DEFAULT_CAMERA_CODECS",
    "DEFAULT_HEADER_EXTENSIONS",
    "DEFAULT_VIDEO_FEEDBACK",
    "DEPENDENCY_DESCRIPTOR_URI",
    "REPAIRED_RTP_STREAM_ID_URI",
    "RTP_STREAM_ID_URI",
    "SDES_MID_URI",
    "TRANSPORT_CC_URI",
    "VIDEO_LAYERS_ALLOCATION_URI",
    "AnswerParams",
    "AnswerPlan",
    "Candidate",
    "Codec",
    "Fingerprint",
    "H264Profile",
    "MediaSection",
    "Msid",
    "Rid",
    "SectionAnswer",
    "SectionRole",
    "SessionOffer",
    "Simulcast",
    "SsrcGroup",
    "SsrcInfo",
    "VideoCodec",
    "VideoSendAssignment",
    "VideoSlot",
    "build_answer",
    "codec_intersection",
    "h264_profile",
    "parse_offer",
    "plan_answer",
    "receive_codecs",
    "render_answer",
    "video_slots",
]

# RTP header extension URIs (RFC 8285 registry names and the WebRTC experiments), defined
# once in mediaserver.rtp.extensions; the SDP names are aliases.
RTP_STREAM_ID_URI = SDES_RID_URI
"""The simulcast RID of a packet, RFC 8852 §3.1."""
REPAIRED_RTP_STREAM_ID_URI = REPAIRED_RID_URI
"""The RID that an RTX packet repairs, RFC 8852 §3.2."""

DEFAULT_HEADER_EXTENSIONS: frozenset[str] = frozenset(
    {
        AUDIO_LEVEL_URI,
        TRANSPORT_CC_URI,
        ABS_SEND_TIME_URI,
        SDES_MID_URI,
        RTP_STREAM_ID_URI,
        REPAIRED_RTP_STREAM_ID_URI,
        DEPENDENCY_DESCRIPTOR_URI,
        VIDEO_LAYERS_ALLOCATION_URI,
    }
)
"""The header extensions the server accepts when the offer has them."""

DEFAULT_VIDEO_FEEDBACK: tuple[str, ...] = (
    "goog-remb",
    "transport-cc",
    "ccm fir",
    "nack",
    "nack pli",
)
"""RTCP feedback (RFC 4585 §4.2) kept on video codecs when offered."""
DEFAULT_AUDIO_FEEDBACK: tuple[str, ...] = ("transport-cc",)
"""RTCP feedback kept on Opus when offered."""

_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
_SETUP_ROLES = frozenset({"actpass", "active", "passive", "holdconn"})
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_RID_ID = re.compile(r"[A-Za-z0-9_-]+")
_FINGERPRINT_VALUE = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*")
_NO_WHITESPACE = re.compile(r"\S+")

# RFC 3551 §6 static payload types a WebRTC offer may list without an rtpmap.
_STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    13: ("CN", 8000, 1),
}


# --------------------------------------------------------------------------------------------
# Parsed offer.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """An ICE candidate, ``a=candidate`` (RFC 8839 §5.1).

    Attributes:
        foundation: the candidate foundation.
        component: 1 for RTP (RTCP is muxed).
        transport: ``udp`` or ``tcp``, lower case.
        priority: the candidate priority.
        host: an IP address, or an mDNS ``.local`` name.
        port: the transport port.
        type: ``host``, ``srflx``, ``prflx`` or ``relay``.
        related_host: ``raddr`` when present.
        related_port: ``rport`` when present.
        extensions: the remaining name/value pairs (``generation``, ``tcptype``, ...).
    """

    foundation: str
    component: int
    transport: str
    priority: int
    host: str
    port: int
    type: str
    related_host: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload type of an m-line: ``a=rtpmap``, ``a=fmtp`` and ``a=rtcp-fb`` together.

    Attributes:
        payload_type: the RTP payload type (RFC 3550 §5.1).
        name: the encoding name as written (``opus``, ``VP8``, ``rtx``).
        clock_rate: the RTP clock rate in Hz.
        channels: the channel count for audio when given, else None.
        fmtp: the format parameters (RFC 8866 §6.15) as a dict; a parameter without ``=``
            (the RED ``111/111`` form) maps to ``""``.
        fmtp_line: the ``a=fmtp`` value after the payload type, as written, or None.
        rtcp_fb: the RTCP feedback values for this payload type (RFC 4585 §4.2), with the
            ``*`` wildcard lines included, whitespace normalised (``nack pli``).
    """

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: Mapping[str, str] = field(default_factory=dict)
    fmtp_line: str | None = None
    rtcp_fb: tuple[str, ...] = ()

    @property
    def is_rtx(self) -> bool:
        """Whether this is an RTX retransmission format (RFC 4588 §8.6)."""
        return self.name.lower() == "rtx"

    @property
    def apt(self) -> int | None:
        """The associated payload type of an RTX format, or None."""
        value = self.fmtp.get("apt")
        if value is None or not value.isdigit():
            return None
        return int(value)


@dataclass(frozen=True, slots=True)
class SsrcInfo:
    """The ``a=ssrc`` source attributes of one SSRC (RFC 5576 §4.1).

    Attributes:
        ssrc: the synchronization source.
        cname: the ``cname`` attribute, or None.
        msid: the ``msid`` attribute value (``stream track``), or None.
        attributes: every attribute as a dict (``cname``, ``msid``, ``label``, ...).
    """

    ssrc: int
    cname: str | None
    msid: str | None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SsrcGroup:
    """An ``a=ssrc-group`` (RFC 5576 §4.2), for example ``FID`` (RFC 4588) or ``SIM``."""

    semantics: str
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Rid:
    """An ``a=rid`` line (RFC 8851 §4).

    Attributes:
        id: the RID (``low``, ``mid``, ``hi`` for Chime simulcast).
        direction: ``send`` or ``recv``.
        params: the restrictions (``pt``, ``max-width``, ...) as a dict.
    """

    id: str
    direction: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Simulcast:
    """An ``a=simulcast`` line (RFC 8853 §5.1).

    Each stream is a tuple of alternative RIDs; Chromium writes one RID per stream.

    Attributes:
        send: the send streams in order.
        recv: the receive streams in order.
        paused: the RIDs written with the ``~`` (paused) prefix.
    """

    send: tuple[tuple[str, ...], ...] = ()
    recv: tuple[tuple[str, ...], ...] = ()
    paused: frozenset[str] = frozenset()

    @property
    def send_rids(self) -> tuple[str, ...]:
        """The first alternative of each send stream, in order."""
        return tuple(stream[0] for stream in self.send)


@dataclass(frozen=True, slots=True)
class Msid:
    """A media-level ``a=msid`` (RFC 8830 §2): the MediaStream id and the track id."""

    stream: str
    track: str | None = None


@dataclass(frozen=True, slots=True)
class MediaSection:
    """One m-section of an offer, with session-level ICE/DTLS values folded in.

    Attributes:
        index: the position of the m-line in the offer, from 0.
        kind: ``audio``, ``video``, ``application``, ...
        port: the m-line port; 0 means rejected unless ``bundle_only`` is set (RFC 8843).
        protocol: the transport protocol (``UDP/TLS/RTP/SAVPF``).
        formats: the m-line format list as written.
        mid: the ``a=mid`` value (RFC 8843 §15.1).
        direction: ``sendrecv`` (the default, RFC 3264 §5.1), ``sendonly``, ``recvonly`` or
            ``inactive``.
        bundle_only: ``a=bundle-only`` is present.
        ice_ufrag: media-level ``a=ice-ufrag``, else the session's.
        ice_pwd: media-level ``a=ice-pwd``, else the session's.
        ice_options: ``a=ice-options`` tokens (``trickle``, ``renomination``).
        fingerprints: media-level fingerprints, else the session's.
        setup: ``a=setup`` (RFC 4145 §4), media-level else session-level, or None.
        candidates: the ``a=candidate`` lines in order.
        end_of_candidates: ``a=end-of-candidates`` is present.
        rtcp_mux: ``a=rtcp-mux`` (RFC 5761 §5.1.3).
        rtcp_rsize: ``a=rtcp-rsize`` (RFC 5506).
        codecs: the RTP codecs in m-line format order (formats without an rtpmap and not
            static are left out).
        extmaps: header extensions, id to URI (RFC 8285 §5).
        ssrcs: the ``a=ssrc`` sources in order of first appearance.
        ssrc_groups: the ``a=ssrc-group`` lines.
        rids: the ``a=rid`` lines.
        simulcast: the ``a=simulcast`` line, or None.
        msids: the media-level ``a=msid`` lines.
    """

    index: int
    kind: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    mid: str
    direction: str = "sendrecv"
    bundle_only: bool = False
    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    ice_options: tuple[str, ...] = ()
    fingerprints: tuple[Fingerprint, ...] = ()
    setup: str | None = None
    candidates: tuple[Candidate, ...] = ()
    end_of_candidates: bool = False
    rtcp_mux: bool = False
    rtcp_rsize: bool = False
    codecs: tuple[Codec, ...] = ()
    extmaps: Mapping[int, str] = field(default_factory=dict)
    ssrcs: tuple[SsrcInfo, ...] = ()
    ssrc_groups: tuple[SsrcGroup, ...] = ()
    rids: tuple[Rid, ...] = ()
    simulcast: Simulcast | None = None
    msids: tuple[Msid, ...] = ()

    @property
    def rejected(self) -> bool:
        """Whether the offerer rejected this m-line (port 0 without ``a=bundle-only``)."""
        return self.port == 0 and not self.bundle_only

    @property
    def rtx_map(self) -> dict[int, int]:
        """Primary payload type to its RTX payload type (RFC 4588 §8.6 ``apt``)."""
        result: dict[int, int] = {}
        for codec in self.codecs:
            apt = codec.apt
            if codec.is_rtx and apt is not None and apt not in result:
                result[apt] = codec.payload_type
        return result

    def codec(self, payload_type: int) -> Codec | None:
        """The codec with this payload type, or None."""
        for codec in self.codecs:
            if codec.payload_type == payload_type:
                return codec
        return None

    def extension_id(self, uri: str) -> int | None:
        """The id this section gives to the header extension ``uri``, or None."""
        for ext_id, ext_uri in self.extmaps.items():
            if ext_uri == uri:
                return ext_id
        return None


@dataclass(frozen=True, slots=True)
class SessionOffer:
    """A parsed SDP offer.

    Attributes:
        origin: the ``o=`` line fields (username, session id, version, net type, address
            type, address).
        ice_lite: session-level ``a=ice-lite``.
        ice_ufrag: session-level ``a=ice-ufrag``, or None.
        ice_pwd: session-level ``a=ice-pwd``, or None.
        fingerprints: session-level fingerprints.
        setup: session-level ``a=setup``, or None.
        bundle: the mids of the ``a=group:BUNDLE`` group (RFC 8843 §7), in order.
        extmap_allow_mixed: ``a=extmap-allow-mixed`` (RFC 8285 §6) anywhere.
        media: the m-sections in order.
    """

    origin: tuple[str, ...]
    ice_lite: bool
    ice_ufrag: str | None
    ice_pwd: str | None
    fingerprints: tuple[Fingerprint, ...]
    setup: str | None
    bundle: tuple[str, ...]
    extmap_allow_mixed: bool
    media: tuple[MediaSection, ...]

    def section(self, mid: str) -> MediaSection:
        """The m-section with this mid.

        Raises:
            InvalidArgument: no section has this mid.
        """
        for section in self.media:
            if section.mid == mid:
                return section
        raise InvalidArgument(f"the offer has no m-line with mid {mid!r}")


class _SectionBuilder:
    """Mutable collector for one m-section while parsing."""

    __slots__ = (
        "bundle_only",
        "candidates",
        "codecs",
        "direction",
        "end_of_candidates",
        "extmaps",
        "fingerprints",
        "fmtp",
        "formats",
        "ice_options",
        "ice_pwd",
        "ice_ufrag",
        "index",
        "kind",
        "line",
        "mid",
        "msids",
        "port",
        "protocol",
        "rids",
        "rtcp_fb",
        "rtcp_mux",
        "rtcp_rsize",
        "rtpmap",
        "setup",
        "simulcast",
        "ssrc_groups",
        "ssrcs",
    )

    def __init__(self, index: int, line: int, kind: str, port: int, protocol: str) -> None:
        self.index = index
        self.line = line
        self.kind = kind
        self.port = port
        self.protocol = protocol
        self.formats: tuple[str, ...] = ()
        self.mid: str | None = None
        self.direction = "sendrecv"
        self.bundle_only = False
        self.ice_ufrag: str | None = None
        self.ice_pwd: str | None = None
        self.ice_options: tuple[str, ...] = ()
        self.fingerprints: list[Fingerprint] = []
        self.setup: str | None = None
        self.candidates: list[Candidate] = []
        self.end_of_candidates = False
        self.rtcp_mux = False
        self.rtcp_rsize = False
        self.rtpmap: dict[int, tuple[str, int, int | None]] = {}
        self.fmtp: dict[int, str] = {}
        self.rtcp_fb: list[tuple[str, str]] = []
        self.codecs: tuple[Codec, ...] = ()
        self.extmaps: dict[int, str] = {}
        self.ssrcs: dict[int, dict[str, str]] = {}
        self.ssrc_groups: list[SsrcGroup] = []
        self.rids: list[Rid] = []
        self.simulcast: Simulcast | None = None
        self.msids: list[Msid] = []


def _fail(line_no: int, message: str) -> MalformedMessage:
    return MalformedMessage(f"SDP line {line_no}: {message}")


def _int(text: str, line_no: int, what: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit():
        raise _fail(line_no, f"{what} {text!r} is not a decimal integer")
    value = int(text)
    if not low <= value <= high:
        raise _fail(line_no, f"{what} {value} is outside {low}..{high}")
    return value


def _parse_params(text: str) -> dict[str, str]:
    """Split ``a=b;c=d`` (fmtp, RID restrictions) into a dict; ``x`` alone maps to ``""``."""
    params: dict[str, str] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        params[name.strip() if sep else item] = value.strip() if sep else ""
    return params


def _parse_fingerprint(value: str, line_no: int) -> Fingerprint:
    """``a=fingerprint`` (RFC 8122 §5) as the DTLS layer checks it."""
    try:
        return Fingerprint.parse(value)
    except MalformedMessage as exc:
        raise _fail(line_no, f"bad a=fingerprint: {exc}") from None


def _parse_ice_char(value: str, line_no: int, what: str, low: int) -> str:
    # RFC 8839 §5.4: ice-ufrag is 4-256 ice-chars, ice-pwd 22-256 ice-chars.
    if not _ICE_CHARS.fullmatch(value) or not low <= len(value) <= 256:
        raise _fail(line_no, f"bad a={what} value {value!r} ({low}-256 ALPHA/DIGIT/+/)")
    return value


def _parse_candidate(value: str, line_no: int) -> Candidate:
    parts = value.split()
    if len(parts) < 8 or parts[6] != "typ":
        raise _fail(line_no, f"bad a=candidate value {value!r}")
    extras = parts[8:]
    if len(extras) % 2:
        raise _fail(line_no, f"a=candidate extensions are not name/value pairs: {value!r}")
    related_host: str | None = None
    related_port: int | None = None
    extensions: list[tuple[str, str]] = []
    for name, ext_value in zip(extras[::2], extras[1::2], strict=True):
        if name == "raddr":
            related_host = ext_value
        elif name == "rport":
            related_port = _int(ext_value, line_no, "candidate rport", 0, 65535)
        else:
            extensions.append((name, ext_value))
    return Candidate(
        foundation=parts[0],
        component=_int(parts[1], line_no, "candidate component", 1, 256),
        transport=parts[2].lower(),
        priority=_int(parts[3], line_no, "candidate priority", 0, 2**32 - 1),
        host=parts[4],
        port=_int(parts[5], line_no, "candidate port", 0, 65535),
        type=parts[7],
        related_host=related_host,
        related_port=related_port,
        extensions=tuple(extensions),
    )


def _parse_rtpmap(value: str, line_no: int) -> tuple[int, tuple[str, int, int | None]]:
    # RFC 8866 §6.6: a=rtpmap:<payload type> <encoding name>/<clock rate>[/<parameters>]
    pt_text, _, rest = value.partition(" ")
    payload_type = _int(pt_text, line_no, "rtpmap payload type", 0, 127)
    pieces = rest.strip().split("/")
    if len(pieces) not in (2, 3) or not _TOKEN.fullmatch(pieces[0]):
        raise _fail(line_no, f"bad a=rtpmap value {value!r}")
    clock_rate = _int(pieces[1], line_no, "rtpmap clock rate", 1, 2**32 - 1)
    channels = _int(pieces[2], line_no, "rtpmap channels", 1, 255) if len(pieces) == 3 else None
    return payload_type, (pieces[0], clock_rate, channels)


def _parse_simulcast(value: str, line_no: int) -> Simulcast:
    # RFC 8853 §5.1: sc-value = ( sc-send [SP sc-recv] ) / ( sc-recv [SP sc-send] ).
    parts = value.split()
    if len(parts) not in (2, 4):
        raise _fail(line_no, f"bad a=simulcast value {value!r}")
    lists: dict[str, tuple[tuple[str, ...], ...]] = {}
    paused: set[str] = set()
    for direction, streams_text in zip(parts[::2], parts[1::2], strict=True):
        if direction not in ("send", "recv") or direction in lists:
            raise _fail(line_no, f"bad a=simulcast direction {direction!r}")
        streams: list[tuple[str, ...]] = []
        for stream in streams_text.split(";"):
            alternatives: list[str] = []
            for rid in stream.split(","):
                if rid.startswith("~"):
                    rid = rid[1:]
                    paused.add(rid)
                if not _RID_ID.fullmatch(rid):
                    raise _fail(line_no, f"bad RID {rid!r} in a=simulcast")
                alternatives.append(rid)
            streams.append(tuple(alternatives))
        lists[direction] = tuple(streams)
    return Simulcast(
        send=lists.get("send", ()), recv=lists.get("recv", ()), paused=frozenset(paused)
    )


def _parse_media_attribute(
    section: _SectionBuilder, name: str, value: str | None, line_no: int
) -> None:
    """Apply one media-level ``a=`` line to ``section``; unknown attributes are ignored."""
    if value is None:
        if name in _DIRECTIONS:
            section.direction = name
        elif name == "rtcp-mux":
            section.rtcp_mux = True
        elif name == "rtcp-rsize":
            section.rtcp_rsize = True
        elif name == "end-of-candidates":
            section.end_of_candidates = True
        elif name == "bundle-only":
            section.bundle_only = True
        return
    if name == "mid":
        if not value or not _NO_WHITESPACE.fullmatch(value):
            raise _fail(line_no, f"bad a=mid value {value!r}")
        section.mid = value
    elif name == "ice-ufrag":
        section.ice_ufrag = _parse_ice_char(value, line_no, "ice-ufrag", 4)
    elif name == "ice-pwd":
        section.ice_pwd = _parse_ice_char(value, line_no, "ice-pwd", 22)
    elif name == "ice-options":
        section.ice_options = tuple(value.split())
    elif name == "fingerprint":
        section.fingerprints.append(_parse_fingerprint(value, line_no))
    elif name == "setup":
        if value not in _SETUP_ROLES:
            raise _fail(line_no, f"bad a=setup value {value!r}")
        section.setup = value
    elif name == "candidate":
        section.candidates.append(_parse_candidate(value, line_no))
    elif name == "rtpmap":
        payload_type, mapping = _parse_rtpmap(value, line_no)
        section.rtpmap[payload_type] = mapping
    elif name == "fmtp":
        pt_text, _, params = value.partition(" ")
        if pt_text.isascii() and pt_text.isdigit():
            section.fmtp[_int(pt_text, line_no, "fmtp payload type", 0, 127)] = params.strip()
        # Non-RTP formats (webrtc-datachannel) may carry fmtp too; they are ignored.
    elif name == "rtcp-fb":
        pt_text, _, feedback = value.partition(" ")
        if pt_text != "*":
            _int(pt_text, line_no, "rtcp-fb payload type", 0, 127)
        feedback = " ".join(feedback.split())
        if not feedback:
            raise _fail(line_no, f"bad a=rtcp-fb value {value!r}")
        section.rtcp_fb.append((pt_text, feedback))
    elif name == "extmap":
        # RFC 8285 §8: a=extmap:<value>["/"<direction>] <URI> <extensionattributes>
        parts = value.split()
        if len(parts) < 2:
            raise _fail(line_no, f"bad a=extmap value {value!r}")
        ext_id = _int(parts[0].partition("/")[0], line_no, "extmap id", 1, 4095)
        section.extmaps[ext_id] = parts[1]
    elif name == "ssrc":
        ssrc_text, _, attribute = value.partition(" ")
        ssrc = _int(ssrc_text, line_no, "ssrc", 0, 2**32 - 1)
        attr_name, _, attr_value = attribute.strip().partition(":")
        section.ssrcs.setdefault(ssrc, {})
        if attr_name:
            section.ssrcs[ssrc][attr_name] = attr_value
    elif name == "ssrc-group":
        parts = value.split()
        if not parts:
            raise _fail(line_no, f"bad a=ssrc-group value {value!r}")
        ssrcs = tuple(_int(p, line_no, "ssrc-group ssrc", 0, 2**32 - 1) for p in parts[1:])
        section.ssrc_groups.append(SsrcGroup(parts[0], ssrcs))
    elif name == "rid":
        parts = value.split(maxsplit=2)
        if len(parts) < 2 or not _RID_ID.fullmatch(parts[0]) or parts[1] not in ("send", "recv"):
            raise _fail(line_no, f"bad a=rid value {value!r}")
        restrictions = _parse_params(parts[2]) if len(parts) == 3 else {}
        section.rids.append(Rid(parts[0], parts[1], restrictions))
    elif name == "simulcast":
        section.simulcast = _parse_simulcast(value, line_no)
    elif name == "msid":
        parts = value.split()
        if not 1 <= len(parts) <= 2:
            raise _fail(line_no, f"bad a=msid value {value!r}")
        section.msids.append(Msid(parts[0], parts[1] if len(parts) == 2 else None))


def _build_codecs(section: _SectionBuilder) -> tuple[Codec, ...]:
    wildcard = tuple(fb for pt, fb in section.rtcp_fb if pt == "*")
    codecs: list[Codec] = []
    seen: set[int] = set()
    for fmt in section.formats:
        if not (fmt.isascii() and fmt.isdigit()):
            continue
        payload_type = int(fmt)
        if payload_type in seen:
            continue
        seen.add(payload_type)
        mapping = section.rtpmap.get(payload_type) or _STATIC_PAYLOAD_TYPES.get(payload_type)
        if mapping is None:
            continue
        fmtp_line = section.fmtp.get(payload_type)
        feedback = wildcard + tuple(fb for pt, fb in section.rtcp_fb if pt == fmt)
        codecs.append(
            Codec(
                payload_type=payload_type,
                name=mapping[0],
                clock_rate=mapping[1],
                channels=mapping[2],
                fmtp=_parse_params(fmtp_line) if fmtp_line is not None else {},
                fmtp_line=fmtp_line,
                rtcp_fb=tuple(dict.fromkeys(feedback)),
            )
        )
    return tuple(codecs)


def _parse_mline(value: str, line_no: int, index: int) -> _SectionBuilder:
    # RFC 8866 §5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...
    parts = value.split()
    if len(parts) < 4:
        raise _fail(line_no, f"m-line {value!r} needs media, port, protocol and formats")
    kind, port_text, protocol = parts[0], parts[1].partition("/")[0], parts[2]
    if not _TOKEN.fullmatch(kind) or not _TOKEN.fullmatch(protocol.replace("/", "")):
        raise _fail(line_no, f"bad m-line {value!r}")
    port = _int(port_text, line_no, "m-line port", 0, 65535)
    section = _SectionBuilder(index, line_no, kind, port, protocol)
    section.formats = tuple(parts[3:])
    if "RTP/" in protocol:
        for fmt in section.formats:
            _int(fmt, line_no, "m-line RTP payload type", 0, 127)
    return section


def parse_offer(sdp: str) -> SessionOffer:
    """Parse an SDP offer (RFC 8866, with the WebRTC attributes of RFC 8829/JSEP).

    Args:
        sdp: the offer text; CRLF or LF line ends.

    Returns:
        The parsed offer. Each :class:`MediaSection` carries its effective ICE
        credentials, fingerprints and setup role (media level, else session level).

    Raises:
        MalformedMessage: the text is not an SDP offer the server can use: no ``v=0``
            first, a line that is not ``<letter>=<value>``, no m-line, a bad m-line or a
            bad value of an attribute the parser reads, a section without ``a=mid`` or
            with a duplicate mid, an accepted section without ICE credentials or a
            fingerprint, or several accepted m-lines that are not in one BUNDLE group.
    """
    origin: tuple[str, ...] = ()
    ice_lite = False
    allow_mixed = False
    session_ufrag: str | None = None
    session_pwd: str | None = None
    session_fingerprints: list[Fingerprint] = []
    session_setup: str | None = None
    bundle: tuple[str, ...] | None = None
    builders: list[_SectionBuilder] = []
    saw_version = False

    for line_no, raw in enumerate(sdp.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise _fail(line_no, f"{line[:40]!r} is not a <type>=<value> line")
        kind, value = line[0], line[2:]
        if not saw_version:
            if kind != "v" or value.strip() != "0":
                raise _fail(line_no, "an SDP description must start with v=0")
            saw_version = True
            continue
        if kind == "m":
            builders.append(_parse_mline(value, line_no, len(builders)))
            continue
        if kind == "o" and not builders:
            origin = tuple(value.split())
            continue
        if kind != "a":
            continue
        name, sep, attr_value = value.partition(":")
        attr: str | None = attr_value.strip() if sep else None
        if builders:
            if name == "extmap-allow-mixed":
                allow_mixed = True
            _parse_media_attribute(builders[-1], name, attr, line_no)
            continue
        # Session-level attributes.
        if name == "ice-lite":
            ice_lite = True
        elif name == "extmap-allow-mixed":
            allow_mixed = True
        elif name == "ice-ufrag" and attr is not None:
            session_ufrag = _parse_ice_char(attr, line_no, "ice-ufrag", 4)
        elif name == "ice-pwd" and attr is not None:
            session_pwd = _parse_ice_char(attr, line_no, "ice-pwd", 22)
        elif name == "fingerprint" and attr is not None:
            session_fingerprints.append(_parse_fingerprint(attr, line_no))
        elif name == "setup" and attr is not None:
            if attr not in _SETUP_ROLES:
                raise _fail(line_no, f"bad a=setup value {attr!r}")
            session_setup = attr
        elif name == "group" and attr is not None:
            parts = attr.split()
            if parts and parts[0] == "BUNDLE" and bundle is None:
                bundle = tuple(parts[1:])

    if not saw_version:
        raise MalformedMessage("SDP offer is empty")
    if not builders:
        raise MalformedMessage("SDP offer has no m-line")

    media: list[MediaSection] = []
    mids: set[str] = set()
    for b in builders:
        if b.mid is None:
            raise _fail(b.line, f"m-line {b.index} ({b.kind}) has no a=mid")
        if b.mid in mids:
            raise _fail(b.line, f"m-line {b.index} repeats mid {b.mid!r}")
        mids.add(b.mid)
        section = MediaSection(
            index=b.index,
            kind=b.kind,
            port=b.port,
            protocol=b.protocol,
            formats=b.formats,
            mid=b.mid,
            direction=b.direction,
            bundle_only=b.bundle_only,
            ice_ufrag=b.ice_ufrag or session_ufrag,
            ice_pwd=b.ice_pwd or session_pwd,
            ice_options=b.ice_options,
            fingerprints=tuple(b.fingerprints) or tuple(session_fingerprints),
            setup=b.setup or session_setup,
            candidates=tuple(b.candidates),
            end_of_candidates=b.end_of_candidates,
            rtcp_mux=b.rtcp_mux,
            rtcp_rsize=b.rtcp_rsize,
            codecs=_build_codecs(b),
            extmaps=dict(b.extmaps),
            ssrcs=tuple(
                SsrcInfo(ssrc, attrs.get("cname"), attrs.get("msid"), attrs)
                for ssrc, attrs in b.ssrcs.items()
            ),
            ssrc_groups=tuple(b.ssrc_groups),
            rids=tuple(b.rids),
            simulcast=b.simulcast,
            msids=tuple(b.msids),
        )
        if not section.rejected and not section.bundle_only:
            if section.ice_ufrag is None or section.ice_pwd is None:
                raise _fail(b.line, f"m-line mid {b.mid!r} has no a=ice-ufrag/a=ice-pwd")
            if not section.fingerprints:
                raise _fail(b.line, f"m-line mid {b.mid!r} has no a=fingerprint")
        media.append(section)

    accepted = [s.mid for s in media if not s.rejected]
    bundle_group = bundle or ()
    if len(accepted) > 1:
        missing = [mid for mid in accepted if mid not in bundle_group]
        if missing:
            raise MalformedMessage(
                f"SDP offer is not bundled: mids {missing} are not in a=group:BUNDLE"
                f" {list(bundle_group)}"
            )
    return SessionOffer(
        origin=origin,
        ice_lite=ice_lite,
        ice_ufrag=session_ufrag,
        ice_pwd=session_pwd,
        fingerprints=tuple(session_fingerprints),
        setup=session_setup,
        bundle=bundle_group,
        extmap_allow_mixed=allow_mixed,
        media=tuple(media),
    )


# --------------------------------------------------------------------------------------------
# Codec matching.
# --------------------------------------------------------------------------------------------


class H264Profile(enum.Enum):
    """H.264 profiles as named by ``profile-level-id`` (RFC 6184 §8.1, H.264 Annex A.2)."""

    CONSTRAINED_BASELINE = "constrained-baseline"
    BASELINE = "baseline"
    MAIN = "main"
    CONSTRAINED_HIGH = "constrained-high"
    HIGH = "high"
    OTHER = "other"


def h264_profile(fmtp: Mapping[str, str]) -> H264Profile | None:
    """Classify the ``profile-level-id`` of an H.264 fmtp.

    RFC 6184 §8.1: the value is ``profile_idc``, ``profile-iop`` (the constraint_set flags)
    and ``level_idc`` as hex; absent means Baseline level 1 (``420010``). Constrained
    Baseline is Baseline with constraint_set1, or Main with constraint_set0, or Extended
    with constraint_set0 and constraint_set1 (H.264 §A.2.1.1).

    Returns:
        The profile, or None when the value is not 6 hex digits.
    """
    text = fmtp.get("profile-level-id", "420010")
    if len(text) != 6 or not all(c in "0123456789abcdefABCDEF" for c in text):
        return None
    profile_idc, iop = int(text[0:2], 16), int(text[2:4], 16)
    set0, set1 = bool(iop & 0x80), bool(iop & 0x40)
    if profile_idc == 0x42:
        return H264Profile.CONSTRAINED_BASELINE if set1 else H264Profile.BASELINE
    if profile_idc == 0x4D:
        return H264Profile.CONSTRAINED_BASELINE if set0 else H264Profile.MAIN
    if profile_idc == 0x58 and set0 and set1:
        return H264Profile.CONSTRAINED_BASELINE
    if profile_idc == 0x64:
        # constraint_set4 and constraint_set5 (0x08, 0x04) together make Constrained High.
        return H264Profile.CONSTRAINED_HIGH if iop & 0x0C == 0x0C else H264Profile.HIGH
    return H264Profile.OTHER


class VideoCodec(enum.Enum):
    """A video format the server can receive or send, with its matching rule.

    The values follow ``supported_receive_codec_intersection`` of the Chime INDEX (spec
    §4.2). H.264 entries match only ``packetization-mode=1`` (RFC 6184 §6.3, the mode
    browsers send with; mode 0 is a different, incompatible format).
    """

    VP8 = 1
    H264_BASELINE = 2
    H264_CONSTRAINED_BASELINE = 3
    H264_MAIN = 4
    H264_HIGH = 5
    H264_CONSTRAINED_HIGH = 6
    VP9_PROFILE_0 = 8
    AV1_MAIN = 11

    def matches(self, codec: Codec) -> bool:
        """Whether the offered ``codec`` is this format (names compare case-insensitively)."""
        name = codec.name.lower()
        if self is VideoCodec.VP8:
            return name == "vp8"
        if self is VideoCodec.VP9_PROFILE_0:
            return name == "vp9" and codec.fmtp.get("profile-id", "0") == "0"
        if self is VideoCodec.AV1_MAIN:
            return name == "av1" and codec.fmtp.get("profile", "0") == "0"
        if name != "h264" or codec.fmtp.get("packetization-mode", "0") != "1":
            return False
        return _H264_PROFILES.get(self) is h264_profile(codec.fmtp)

    @property
    def payload_format(self) -> str:
        """The RTP payload format's name (``vp8``, ``h264``, ``vp9``, ``av1``)."""
        return self.name.split("_")[0].lower()


_H264_PROFILES = {
    VideoCodec.H264_BASELINE: H264Profile.BASELINE,
    VideoCodec.H264_CONSTRAINED_BASELINE: H264Profile.CONSTRAINED_BASELINE,
    VideoCodec.H264_MAIN: H264Profile.MAIN,
    VideoCodec.H264_HIGH: H264Profile.HIGH,
    VideoCodec.H264_CONSTRAINED_HIGH: H264Profile.CONSTRAINED_HIGH,
}


DEFAULT_CAMERA_CODECS: tuple[VideoCodec, ...] = (
    VideoCodec.VP8,
    VideoCodec.H264_CONSTRAINED_BASELINE,
    VideoCodec.H264_BASELINE,
    VideoCodec.H264_MAIN,
    VideoCodec.VP9_PROFILE_0,
    VideoCodec.AV1_MAIN,
)
"""The camera codecs the server accepts, most preferred first."""


def receive_codecs(offer: SessionOffer) -> frozenset[VideoCodec]:
    """The video formats the offerer can decode: those on its video m-lines.

    Every live video m-line counts (the browser offers the same list on each); this is
    what ``supported_receive_codec_intersection`` is computed from (spec §4.2).
    """
    found: set[VideoCodec] = set()
    for section in offer.media:
        if section.kind != "video" or section.rejected:
            continue
        for codec in section.codecs:
            found.update(v for v in VideoCodec if v.matches(codec))
    return frozenset(found)


def codec_intersection(
    capabilities: Iterable[frozenset[VideoCodec]],
    preference: Sequence[VideoCodec] = DEFAULT_CAMERA_CODECS,
) -> tuple[VideoCodec, ...]:
    """The formats every receiver can decode, most preferred first (spec §4.2).

    With no receiver at all every format of ``preference`` qualifies.
    """
    common = set(preference)
    for capability in capabilities:
        common &= capability
    return tuple(codec for codec in preference if codec in common)


# --------------------------------------------------------------------------------------------
# Answer.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoSendAssignment:
    """What the server sends on one ``recvonly`` video m-line of the offer.

    Attributes:
        ssrc: the fixed outgoing SSRC of the m-line (spec §3.3).
        codec: the format forwarded on it (the publisher's negotiated codec).
        rtx_ssrc: the RTX SSRC, or None to send without RTX (RFC 4588).
        track_id: the msid track id; default ``track_<mid>``.
        alternatives: further formats listed after ``codec`` when the m-line offers them,
            so that the forwarded format can change without a renegotiation (the
            meeting's codec changed and publishers moved to it); the payload type in
            each packet says which one it is (RFC 3264 §6.1 allows several).
    """

    ssrc: int
    codec: VideoCodec
    rtx_ssrc: int | None = None
    track_id: str | None = None
    alternatives: tuple[VideoCodec, ...] = ()


@dataclass(frozen=True, slots=True)
class AnswerParams:
    """The server's side of the negotiation.

    Attributes:
        ice_ufrag: our ICE username fragment (RFC 8839 §5.4: 4-256 ice-chars).
        ice_pwd: our ICE password (22-256 ice-chars).
        fingerprint: our DTLS certificate fingerprint, SDP form ``"sha-256 AB:CD:..."``.
        host: the IP address the browser reaches the shared UDP port on (spec §7).
        port: the shared UDP port.
        audio_ssrc: the SSRC of the Opus mix on the audio m-line.
        cname: the RTCP CNAME of everything we send.
        audio_msid: ``(stream, track)`` of the mix; Chime uses ``audio audio``.
        video_send: per ``recvonly`` video mid of the offer, what we send on it.
        camera_codecs: the formats accepted on the camera m-line, most preferred first.
        mirror_simulcast: answer offered send RIDs with ``a=rid:<x> recv`` and
            ``a=simulcast:recv`` (RFC 8853).
        header_extensions: the header extension URIs we accept when offered.
        video_feedback: RTCP feedback kept on video codecs when offered.
        downlink_video_feedback: RTCP feedback kept on the m-lines we send video on, or
            None for ``video_feedback``. Without ``transport-cc`` there, those m-lines
            also drop the transport-wide sequence number extension.
        audio_feedback: RTCP feedback kept on Opus when offered.
        use_rtx: keep RTX for the camera codecs and, when ``rtx_ssrc`` is set, downlinks.
        extmap_allow_mixed: echo ``a=extmap-allow-mixed`` when offered (RFC 8285 §6).
        session_id: the ``o=`` session id; keep it for the life of the connection.
        session_version: the ``o=`` version; increase it on every new answer (RFC 3264 §8).
    """

    ice_ufrag: str
    ice_pwd: str
    fingerprint: str
    host: str
    port: int
    audio_ssrc: int
    cname: str
    audio_msid: tuple[str, str] = ("audio", "audio")
    video_send: Mapping[str, VideoSendAssignment] = field(default_factory=dict)
    camera_codecs: tuple[VideoCodec, ...] = DEFAULT_CAMERA_CODECS
    mirror_simulcast: bool = False
    header_extensions: frozenset[str] = DEFAULT_HEADER_EXTENSIONS
    video_feedback: tuple[str, ...] = DEFAULT_VIDEO_FEEDBACK
    downlink_video_feedback: tuple[str, ...] | None = None
    audio_feedback: tuple[str, ...] = DEFAULT_AUDIO_FEEDBACK
    use_rtx: bool = True
    extmap_allow_mixed: bool = False
    session_id: int = 1
    session_version: int = 1


class SectionRole(enum.Enum):
    """What an answered m-line is for."""

    AUDIO = "audio"
    """The mixed audio (spec §3.3 mid 0): we send the mix and receive the microphone."""
    CAMERA = "camera"
    """The client's camera: we receive it (answer ``recvonly``)."""
    VIDEO_SEND = "video-send"
    """A remote video we forward (offer ``recvonly``, answer ``sendonly``)."""
    INACTIVE = "inactive"
    """Accepted into the bundle with no media either way."""
    REJECTED = "rejected"
    """Port 0 in the answer."""


@dataclass(frozen=True, slots=True)
class VideoSlot:
    """A video m-line of the offer, numbered as ``receive_stream_ids`` counts them.

    Attributes:
        index: k, so that ``receive_stream_ids[k]`` belongs to this m-line (spec §3.3).
        mid: the m-line's mid.
        direction: the offered direction.
        rejected: the offerer rejected the m-line (port 0).
    """

    index: int
    mid: str
    direction: str
    rejected: bool

    @property
    def is_downlink(self) -> bool:
        """Whether the client wants to receive a remote video here (``recvonly``)."""
        return not self.rejected and self.direction == "recvonly"

    @property
    def is_uplink(self) -> bool:
        """Whether the client offers to send video here (``sendrecv``/``sendonly``)."""
        return not self.rejected and self.direction in ("sendrecv", "sendonly")


def video_slots(offer: SessionOffer) -> tuple[VideoSlot, ...]:
    """The video m-lines of ``offer`` in m-line order (spec §3.3 ``receive_stream_ids``).

    The server builds its :attr:`AnswerParams.video_send` from the slots whose
    :attr:`VideoSlot.is_downlink` is true, taking the stream id ``receive_stream_ids[k]``
    for slot ``k``.
    """
    slots: list[VideoSlot] = []
    for section in offer.media:
        if section.kind == "video":
            slots.append(VideoSlot(len(slots), section.mid, section.direction, section.rejected))
    return tuple(slots)


@dataclass(frozen=True, slots=True)
class SectionAnswer:
    """The answer for one m-line.

    Attributes:
        offer: the offered m-section.
        role: what the m-line is for.
        direction: the answered direction (``inactive`` when rejected).
        codecs: the formats listed in the answer, in answer order, each with the
            feedback and fmtp the answer carries (RTX follows its codec).
        extmaps: the header extensions accepted, id to URI.
        ssrc: our SSRC on this m-line, when we send on it.
        rtx_ssrc: our RTX SSRC, when we send RTX on it.
        msid: our ``a=msid``, when we send on it.
        recv_rids: the RIDs mirrored as ``a=rid:<x> recv``, in simulcast order.
        video_codec: for CAMERA the format of the first listed codec, for VIDEO_SEND the
            assignment's format.
    """

    offer: MediaSection
    role: SectionRole
    direction: str
    codecs: tuple[Codec, ...] = ()
    extmaps: Mapping[int, str] = field(default_factory=dict)
    ssrc: int | None = None
    rtx_ssrc: int | None = None
    msid: Msid | None = None
    recv_rids: tuple[str, ...] = ()
    video_codec: VideoCodec | None = None

    @property
    def mid(self) -> str:
        """The m-line's mid."""
        return self.offer.mid

    @property
    def payload_type(self) -> int | None:
        """The first non-RTX payload type listed (the one the sender uses), or None."""
        for codec in self.codecs:
            if not codec.is_rtx:
                return codec.payload_type
        return None

    @property
    def rtx_map(self) -> dict[int, int]:
        """Primary payload type to RTX payload type, among the listed formats."""
        return {c.apt: c.payload_type for c in self.codecs if c.is_rtx and c.apt is not None}

    @property
    def rtx_payload_type(self) -> int | None:
        """The RTX payload type of :attr:`payload_type`, or None."""
        pt = self.payload_type
        return None if pt is None else self.rtx_map.get(pt)

    def format_payload_types(
        self, formats: Sequence[VideoCodec]
    ) -> dict[VideoCodec, tuple[int, int | None]]:
        """Each of ``formats`` listed in this answer → (payload type, its RTX payload type)."""
        rtx_map = self.rtx_map
        found: dict[VideoCodec, tuple[int, int | None]] = {}
        for codec in self.codecs:
            if codec.is_rtx:
                continue
            fmt = next((f for f in formats if f not in found and f.matches(codec)), None)
            if fmt is not None:
                found[fmt] = (codec.payload_type, rtx_map.get(codec.payload_type))
        return found


@dataclass(frozen=True, slots=True)
class AnswerPlan:
    """The negotiated result, read by the RTP path and rendered by :func:`render_answer`.

    Attributes:
        offer: the parsed offer.
        params: the server's parameters.
        sections: one answer per offered m-line, in order.
        bundle: the accepted mids, in m-line order (``a=group:BUNDLE``).
    """

    offer: SessionOffer
    params: AnswerParams
    sections: tuple[SectionAnswer, ...]
    bundle: tuple[str, ...]

    def section(self, mid: str) -> SectionAnswer:
        """The answer of the m-line with this mid.

        Raises:
            InvalidArgument: no m-line has this mid.
        """
        for section in self.sections:
            if section.mid == mid:
                return section
        raise InvalidArgument(f"the answer has no m-line with mid {mid!r}")

    @property
    def audio(self) -> SectionAnswer | None:
        """The mixed-audio m-line, or None when the offer had no usable audio."""
        return next((s for s in self.sections if s.role is SectionRole.AUDIO), None)

    @property
    def audio_payload_type(self) -> int | None:
        """The Opus payload type (the offer's number), or None."""
        audio = self.audio
        return None if audio is None else audio.payload_type

    @property
    def audio_stereo_offered(self) -> bool:
        """Whether the offer's Opus fmtp asked for ``stereo=1`` (RFC 7587 §6.1)."""
        audio = self.audio
        if audio is None or audio.payload_type is None:
            return False
        offered = audio.offer.codec(audio.payload_type)
        return offered is not None and offered.fmtp.get("stereo") == "1"

    @property
    def camera(self) -> SectionAnswer | None:
        """The camera m-line we receive, or None when the client sends no video."""
        return next((s for s in self.sections if s.role is SectionRole.CAMERA), None)

    @property
    def video_mids(self) -> tuple[str, ...]:
        """Every video mid in m-line order: ``receive_stream_ids[k]`` is for the k-th."""
        return tuple(s.mid for s in self.sections if s.offer.kind == "video")

    @property
    def video_send(self) -> tuple[SectionAnswer, ...]:
        """The m-lines we forward remote videos on, in m-line order."""
        return tuple(s for s in self.sections if s.role is SectionRole.VIDEO_SEND)

    def extension_id(self, uri: str) -> int | None:
        """The id of a header extension accepted on any bundled m-line, or None.

        RFC 8843 §9.1.3: within a BUNDLE group one URI has one id, so the first hit is it.
        """
        for section in self.sections:
            for ext_id, ext_uri in section.extmaps.items():
                if ext_uri == uri:
                    return ext_id
        return None

    @property
    def audio_level_id(self) -> int | None:
        """The RFC 6464 audio level extension id, or None."""
        return self.extension_id(AUDIO_LEVEL_URI)

    @property
    def transport_cc_id(self) -> int | None:
        """The transport-wide sequence number extension id, or None."""
        return self.extension_id(TRANSPORT_CC_URI)

    @property
    def abs_send_time_id(self) -> int | None:
        """The abs-send-time extension id, or None."""
        return self.extension_id(ABS_SEND_TIME_URI)

    @property
    def mid_id(self) -> int | None:
        """The ``sdes:mid`` extension id, or None."""
        return self.extension_id(SDES_MID_URI)

    @property
    def rid_id(self) -> int | None:
        """The ``sdes:rtp-stream-id`` extension id, or None."""
        return self.extension_id(RTP_STREAM_ID_URI)

    @property
    def repaired_rid_id(self) -> int | None:
        """The ``sdes:repaired-rtp-stream-id`` extension id, or None."""
        return self.extension_id(REPAIRED_RTP_STREAM_ID_URI)


def _check_params(params: AnswerParams) -> None:
    if not _ICE_CHARS.fullmatch(params.ice_ufrag) or not 4 <= len(params.ice_ufrag) <= 256:
        raise InvalidArgument("ice_ufrag must be 4-256 ALPHA/DIGIT/+/ characters (RFC 8839)")
    if not _ICE_CHARS.fullmatch(params.ice_pwd) or not 22 <= len(params.ice_pwd) <= 256:
        raise InvalidArgument("ice_pwd must be 22-256 ALPHA/DIGIT/+/ characters (RFC 8839)")
    parts = params.fingerprint.split()
    if (
        len(parts) != 2
        or not _TOKEN.fullmatch(parts[0])
        or not _FINGERPRINT_VALUE.fullmatch(parts[1])
    ):
        raise InvalidArgument(f"fingerprint {params.fingerprint!r} is not 'sha-256 AB:CD:...'")
    try:
        ipaddress.ip_address(params.host)
    except ValueError:
        raise InvalidArgument(f"host {params.host!r} is not an IP address") from None
    if not 1 <= params.port <= 65535:
        raise InvalidArgument(f"port {params.port} is outside 1..65535")
    for text, what in (
        (params.cname, "cname"),
        (params.audio_msid[0], "audio msid stream"),
        (params.audio_msid[1], "audio msid track"),
    ):
        if not _NO_WHITESPACE.fullmatch(text):
            raise InvalidArgument(f"{what} {text!r} must be non-empty without whitespace")
    ssrcs = [params.audio_ssrc]
    for mid, assignment in params.video_send.items():
        ssrcs.append(assignment.ssrc)
        if assignment.rtx_ssrc is not None:
            ssrcs.append(assignment.rtx_ssrc)
        if assignment.track_id is not None and not _NO_WHITESPACE.fullmatch(assignment.track_id):
            raise InvalidArgument(f"track id {assignment.track_id!r} of mid {mid!r} is invalid")
    for ssrc in ssrcs:
        if not 1 <= ssrc <= 2**32 - 1:
            raise InvalidArgument(f"SSRC {ssrc} is outside 1..2**32-1")
    if len(set(ssrcs)) != len(ssrcs):
        raise InvalidArgument(f"SSRCs must be distinct, got {ssrcs}")


def _answer_direction(offered: str, we_send: bool, we_receive: bool) -> str:
    """RFC 3264 §6.1: the answer direction is the offer's seen from our side, narrowed."""
    send = we_send and offered in ("sendrecv", "recvonly")
    receive = we_receive and offered in ("sendrecv", "sendonly")
    if send and receive:
        return "sendrecv"
    if send:
        return "sendonly"
    if receive:
        return "recvonly"
    return "inactive"


def _filter_feedback(
    codec: Codec, allowed: Iterable[str], extmaps: Mapping[int, str]
) -> tuple[str, ...]:
    allowed_set = set(allowed)
    if TRANSPORT_CC_URI not in extmaps.values():
        # Transport-wide feedback needs the transport-wide sequence number extension.
        allowed_set.discard("transport-cc")
    return tuple(fb for fb in codec.rtcp_fb if fb in allowed_set)


def _keep_extensions(section: MediaSection, params: AnswerParams) -> dict[int, str]:
    return {i: uri for i, uri in section.extmaps.items() if uri in params.header_extensions}


def _with_rtx(
    section: MediaSection,
    primaries: Iterable[Codec],
    feedback: tuple[str, ...],
    extmaps: Mapping[int, str],
    use_rtx: bool,
) -> tuple[Codec, ...]:
    rtx_map = section.rtx_map
    result: list[Codec] = []
    for codec in primaries:
        result.append(_answer_codec(codec, feedback, extmaps))
        rtx_pt = rtx_map.get(codec.payload_type)
        rtx = section.codec(rtx_pt) if use_rtx and rtx_pt is not None else None
        if rtx is not None:
            fmtp_line = f"apt={codec.payload_type}"
            result.append(
                Codec(
                    rtx.payload_type,
                    rtx.name,
                    rtx.clock_rate,
                    None,
                    {"apt": fmtp_line[4:]},
                    fmtp_line,
                )
            )
    return tuple(result)


def _answer_codec(codec: Codec, feedback: tuple[str, ...], extmaps: Mapping[int, str]) -> Codec:
    return Codec(
        payload_type=codec.payload_type,
        name=codec.name,
        clock_rate=codec.clock_rate,
        channels=codec.channels,
        fmtp=dict(codec.fmtp),
        fmtp_line=codec.fmtp_line,
        rtcp_fb=_filter_feedback(codec, feedback, extmaps),
    )


def _plan_audio(section: MediaSection, params: AnswerParams) -> SectionAnswer:
    # Spec §3.3: Opus only, no RED, fmtp minptime=10;useinbandfec=1.
    opus = next(
        (
            c
            for c in section.codecs
            if c.name.lower() == "opus" and c.clock_rate == 48000 and c.channels == 2
        ),
        None,
    )
    if opus is None:
        raise UnsupportedError(f"audio m-line mid {section.mid!r} does not offer opus/48000/2")
    extmaps = _keep_extensions(section, params)
    fmtp = {"minptime": "10", "useinbandfec": "1"}
    if opus.fmtp.get("stereo") == "1":
        # RFC 7587 §6.1/§7.1: the offer's stereo=1 is the client's wish to receive stereo,
        # so we send it a stereo mix (sprop-stereo=1) and take stereo from it (stereo=1).
        fmtp["stereo"] = "1"
        fmtp["sprop-stereo"] = "1"
    answer_opus = Codec(
        payload_type=opus.payload_type,
        name=opus.name,
        clock_rate=48000,
        channels=2,
        fmtp=fmtp,
        fmtp_line=";".join(f"{k}={v}" for k, v in fmtp.items()),
        rtcp_fb=_filter_feedback(opus, params.audio_feedback, extmaps),
    )
    direction = _answer_direction(section.direction, we_send=True, we_receive=True)
    sends = direction in ("sendrecv", "sendonly")
    return SectionAnswer(
        offer=section,
        role=SectionRole.AUDIO,
        direction=direction,
        codecs=(answer_opus,),
        extmaps=extmaps,
        ssrc=params.audio_ssrc if sends else None,
        msid=Msid(*params.audio_msid) if sends else None,
    )


def _camera_codecs(section: MediaSection, params: AnswerParams) -> list[tuple[Codec, VideoCodec]]:
    chosen: list[tuple[Codec, VideoCodec]] = []
    for wanted in params.camera_codecs:
        for codec in section.codecs:
            if wanted.matches(codec) and all(codec is not c for c, _ in chosen):
                chosen.append((codec, wanted))
    return chosen


def _plan_camera(section: MediaSection, params: AnswerParams, role: SectionRole) -> SectionAnswer:
    chosen = _camera_codecs(section, params)
    if not chosen:
        offered = sorted({c.name for c in section.codecs if not c.is_rtx})
        raise UnsupportedError(
            f"video m-line mid {section.mid!r} offers none of the accepted codecs"
            f" {[c.name for c in params.camera_codecs]} (offered: {offered})"
        )
    extmaps = _keep_extensions(section, params)
    codecs = _with_rtx(
        section, (c for c, _ in chosen), params.video_feedback, extmaps, params.use_rtx
    )
    recv_rids: tuple[str, ...] = ()
    if role is SectionRole.CAMERA and params.mirror_simulcast and section.simulcast is not None:
        offered_send = {rid.id for rid in section.rids if rid.direction == "send"}
        recv_rids = tuple(rid for rid in section.simulcast.send_rids if rid in offered_send)
    direction = "recvonly" if role is SectionRole.CAMERA else "inactive"
    return SectionAnswer(
        offer=section,
        role=role,
        direction=direction,
        codecs=codecs,
        extmaps=extmaps,
        recv_rids=recv_rids,
        video_codec=chosen[0][1],
    )


def _plan_video_send(section: MediaSection, params: AnswerParams) -> SectionAnswer:
    assignment = params.video_send.get(section.mid)
    if assignment is None:
        raise InvalidArgument(f"no VideoSendAssignment for the recvonly video mid {section.mid!r}")
    codec = next((c for c in section.codecs if assignment.codec.matches(c)), None)
    if codec is None:
        raise UnsupportedError(
            f"video m-line mid {section.mid!r} does not offer {assignment.codec.name}"
        )
    primaries = [codec]
    for alternative in assignment.alternatives:
        extra = next((c for c in section.codecs if alternative.matches(c)), None)
        if extra is not None and all(extra is not c for c in primaries):
            primaries.append(extra)
    extmaps = _keep_extensions(section, params)
    feedback = params.video_feedback
    if params.downlink_video_feedback is not None:
        feedback = params.downlink_video_feedback
        if "transport-cc" not in feedback:
            extmaps = {i: uri for i, uri in extmaps.items() if uri != TRANSPORT_CC_URI}
    use_rtx = params.use_rtx and assignment.rtx_ssrc is not None
    codecs = _with_rtx(section, primaries, feedback, extmaps, use_rtx)
    has_rtx = any(c.is_rtx for c in codecs)
    track = assignment.track_id or f"track_{section.mid}"
    return SectionAnswer(
        offer=section,
        role=SectionRole.VIDEO_SEND,
        direction="sendonly",
        codecs=codecs,
        extmaps=extmaps,
        ssrc=assignment.ssrc,
        rtx_ssrc=assignment.rtx_ssrc if has_rtx else None,
        msid=Msid(f"v_{section.mid}", track),
        video_codec=assignment.codec,
    )


def plan_answer(offer: SessionOffer, params: AnswerParams) -> AnswerPlan:
    """Negotiate the answer to ``offer`` (spec §3.3), without writing it.

    Per m-line, in offer order:

    * rejected (port 0) stays rejected; so does any m-line that is not audio or video
      (the server has no data channel) and any audio m-line after the first.
    * the first audio m-line carries the mix: Opus only (the offer's payload type).
    * a ``sendrecv``/``sendonly`` video m-line is the camera, answered ``recvonly`` with
      the accepted codecs in :attr:`AnswerParams.camera_codecs` order (a second one is
      answered ``inactive``: one camera per connection).
    * a ``recvonly`` video m-line is answered ``sendonly`` with the assignment's codec.
    * an ``inactive`` video m-line is answered ``inactive``; it is rejected when none of
      the camera codecs is offered on it.

    Args:
        offer: the parsed offer.
        params: the server's parameters.

    Returns:
        The plan; :func:`render_answer` writes it.

    Raises:
        InvalidArgument: ``params`` are invalid, or a ``recvonly`` video mid has no
            assignment, or an assignment names a mid that is not a ``recvonly`` video
            m-line.
        UnsupportedError: the offer has no accepted m-line, an audio m-line without
            opus/48000/2, a camera or downlink without a usable codec, a non-DTLS-SRTP
            profile, no rtcp-mux, or wants us to be the DTLS client (``a=setup:passive``).
    """
    _check_params(params)
    downlinks = {slot.mid for slot in video_slots(offer) if slot.is_downlink}
    stray = sorted(set(params.video_send) - downlinks)
    if stray:
        raise InvalidArgument(f"video_send names mids {stray} that are not recvonly video m-lines")
    sections: list[SectionAnswer] = []
    have_audio = have_camera = False
    for section in offer.media:
        if (
            section.rejected
            or section.kind not in ("audio", "video")
            or (section.kind == "audio" and have_audio)
        ):
            sections.append(SectionAnswer(section, SectionRole.REJECTED, "inactive"))
            continue
        if "RTP/SAVP" not in section.protocol:
            raise UnsupportedError(
                f"m-line mid {section.mid!r} uses {section.protocol}, not DTLS-SRTP"
            )
        if not section.rtcp_mux:
            raise UnsupportedError(f"m-line mid {section.mid!r} does not offer a=rtcp-mux")
        if section.setup == "passive":
            raise UnsupportedError("the offer is a=setup:passive; the server is DTLS passive")
        if section.kind == "audio":
            have_audio = True
            sections.append(_plan_audio(section, params))
        elif section.direction == "recvonly":
            sections.append(_plan_video_send(section, params))
        elif section.direction in ("sendrecv", "sendonly") and not have_camera:
            have_camera = True
            sections.append(_plan_camera(section, params, SectionRole.CAMERA))
        elif _camera_codecs(section, params):
            sections.append(_plan_camera(section, params, SectionRole.INACTIVE))
        else:
            sections.append(SectionAnswer(section, SectionRole.REJECTED, "inactive"))
    bundle = tuple(s.mid for s in sections if s.role is not SectionRole.REJECTED)
    if not bundle:
        raise UnsupportedError("the offer has no m-line the server can accept")
    return AnswerPlan(offer=offer, params=params, sections=tuple(sections), bundle=bundle)


def _codec_lines(codec: Codec) -> Iterator[str]:
    channels = f"/{codec.channels}" if codec.channels is not None else ""
    yield f"a=rtpmap:{codec.payload_type} {codec.name}/{codec.clock_rate}{channels}"
    for feedback in codec.rtcp_fb:
        yield f"a=rtcp-fb:{codec.payload_type} {feedback}"
    if codec.fmtp_line:
        yield f"a=fmtp:{codec.payload_type} {codec.fmtp_line}"


def _section_lines(
    plan: AnswerPlan, answer: SectionAnswer, with_candidates: bool, address: str
) -> Iterator[str]:
    params = plan.params
    offered = answer.offer
    if answer.role is SectionRole.REJECTED:
        # RFC 3264 §6: a rejected stream keeps its m-line with port 0 and one format;
        # RFC 8843 §7.3.2 keeps the mid so the m-line can be identified.
        yield f"m={offered.kind} 0 {offered.protocol} {offered.formats[0]}"
        yield f"c={address} 0.0.0.0" if address == "IN IP4" else f"c={address} ::"
        yield f"a=mid:{offered.mid}"
        yield "a=inactive"
        return
    formats = " ".join(str(c.payload_type) for c in answer.codecs)
    yield f"m={offered.kind} {params.port} {offered.protocol} {formats}"
    yield f"c={address} {params.host}"
    if with_candidates:
        # One host candidate on the shared port (spec §7); RFC 8839 §5.1 syntax, the
        # priority of a host candidate with local preference 65535 (RFC 8445 §5.1.2.1).
        yield f"a=candidate:1 1 udp 2130706431 {params.host} {params.port} typ host"
        yield "a=end-of-candidates"
    yield f"a=ice-ufrag:{params.ice_ufrag}"
    yield f"a=ice-pwd:{params.ice_pwd}"
    yield f"a=fingerprint:{params.fingerprint.split()[0].lower()} {params.fingerprint.split()[1]}"
    yield "a=setup:passive"
    yield f"a=mid:{offered.mid}"
    for ext_id, uri in sorted(answer.extmaps.items()):
        yield f"a=extmap:{ext_id} {uri}"
    yield f"a={answer.direction}"
    if answer.msid is not None:
        yield f"a=msid:{answer.msid.stream} {answer.msid.track}"
    yield "a=rtcp-mux"
    if offered.rtcp_rsize:
        yield "a=rtcp-rsize"
    for codec in answer.codecs:
        yield from _codec_lines(codec)
    for rid in answer.recv_rids:
        yield f"a=rid:{rid} recv"
    if answer.recv_rids:
        yield "a=simulcast:recv " + ";".join(answer.recv_rids)
    if answer.ssrc is not None:
        ssrcs = [answer.ssrc] + ([answer.rtx_ssrc] if answer.rtx_ssrc is not None else [])
        if len(ssrcs) == 2:
            yield f"a=ssrc-group:FID {ssrcs[0]} {ssrcs[1]}"
        for ssrc in ssrcs:
            yield f"a=ssrc:{ssrc} cname:{params.cname}"
            if answer.msid is not None:
                yield f"a=ssrc:{ssrc} msid:{answer.msid.stream} {answer.msid.track}"


def render_answer(plan: AnswerPlan) -> str:
    """Write ``plan`` as SDP text with CRLF line ends (RFC 8866 §5).

    The answer is ICE-lite at session level, bundles every accepted mid, and puts the one
    host candidate and ``a=end-of-candidates`` on the first accepted m-line.
    """
    params = plan.params
    address = "IN IP6" if ":" in params.host else "IN IP4"
    lines = [
        "v=0",
        f"o=- {params.session_id} {params.session_version} {address} {params.host}",
        "s=-",
        "t=0 0",
        "a=ice-lite",
        "a=group:BUNDLE " + " ".join(plan.bundle),
    ]
    if params.extmap_allow_mixed and plan.offer.extmap_allow_mixed:
        lines.append("a=extmap-allow-mixed")
    lines.append("a=msid-semantic: WMS *")
    first = True
    for answer in plan.sections:
        with_candidates = first and answer.role is not SectionRole.REJECTED
        lines.extend(_section_lines(plan, answer, with_candidates, address))
        if with_candidates:
            first = False
    return "\r\n".join(lines) + "\r\n"


def build_answer(offer: SessionOffer, params: AnswerParams) -> str:
    """Negotiate and write the SDP answer to ``offer`` (spec §3.3 and §7).

    Equivalent to ``render_answer(plan_answer(offer, params))``; call those two when the
    RTP path needs the :class:`AnswerPlan` too.

    Raises:
        InvalidArgument: see :func:`plan_answer`.
        UnsupportedError: see :func:`plan_answer`.
    """
    return render_answer(plan_answer(offer, params))
