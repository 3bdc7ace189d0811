"""VP9 RTP payload descriptor (RFC 9628 section 4.2) and layer facts.

Rules of this file:

* Parsers work on the RTP payload and raise only
  :class:`~mediaserver.errors.MalformedPacket`.
* :func:`peek_layer` reads what an SVC selector needs without building an object.

Layout (RFC 9628 section 4.2, flexible and non-flexible modes)::

     0 1 2 3 4 5 6 7
    +-+-+-+-+-+-+-+-+
    |I|P|L|F|B|E|V|Z| (REQUIRED)
    +-+-+-+-+-+-+-+-+
    |M| PICTURE ID  | (present when I; M selects a 15-bit picture id)
    +-+-+-+-+-+-+-+-+
    |  TID|U| SID |D| (present when L)
    +-+-+-+-+-+-+-+-+
    |   TL0PICIDX   | (present when L and not F)
    +-+-+-+-+-+-+-+-+
    | P_DIFF      |N| (present when F and P, up to 3 times)
    +-+-+-+-+-+-+-+-+
    |  SS           | (present when V)

Scalability structure (section 4.2.1): ``N_S(3)|Y|G|RES(3)``, then ``N_S + 1`` widths
and heights (16 bits each) when Y, then N_G and, per picture, ``TID(3)|U|R(2)|RES(2)``
followed by R P_DIFF bytes when G.
"""

from __future__ import annotations

from dataclasses import dataclass

from mediaserver.errors import LocalProtocolError, MalformedPacket

__all__ = ["Vp9Descriptor", "Vp9PictureGroupEntry", "Vp9ScalabilityStructure", "is_keyframe",
           "peek_layer", "peek_picture_fields"]  # fmt: skip


def _need(payload: bytes | bytearray | memoryview, end: int, what: str) -> None:
    if end > len(payload):
        raise MalformedPacket(f"VP9 descriptor is truncated in {what}")


def peek_layer(
    payload: bytes | bytearray | memoryview,
) -> tuple[bool, bool, bool, int, int, bool]:
    """Return ``(keyframe, begin, end, spatial_id, temporal_id, switching_up)``.

    ``keyframe`` is a packet that begins a layer frame of spatial layer 0 that is not
    inter-picture predicted (P=0, B=1). Without layer indices (L=0) the layers are 0 and
    every frame is a switching point.

    Raises:
        MalformedPacket: the descriptor is truncated.
    """
    if not payload:
        raise MalformedPacket("VP9 payload is empty")
    first = payload[0]
    i = 1
    if first & 0x80:
        _need(payload, 2, "the picture id")
        i = 3 if payload[1] & 0x80 else 2
    sid = 0
    tid = 0
    switch = True
    if first & 0x20:
        _need(payload, i + 1, "the layer indices")
        b = payload[i]
        tid = b >> 5
        switch = bool(b & 0x10)
        sid = (b >> 1) & 0x07
    begin = bool(first & 0x08)
    keyframe = begin and not first & 0x40 and sid == 0
    return keyframe, begin, bool(first & 0x04), sid, tid, switch


def peek_picture_fields(
    payload: bytes | bytearray | memoryview,
) -> tuple[int, int, int, int, int, int, int]:
    """Where the numbering fields of a descriptor are, for rewriting them in place.

    Returns the same tuple as :func:`mediacodecs.vp8.peek_picture_fields`:
    ``(picture_id, picture_id_at, picture_id_bits, tl0_pic_idx, tl0_pic_idx_at, -1, -1)``
    (VP9 has no key index). TL0PICIDX exists in non-flexible mode only (F=0, RFC 9628
    section 4.2). An absent field has value and offset -1 (and 0 bits).

    Raises:
        MalformedPacket: the descriptor is truncated.
    """
    if not payload:
        raise MalformedPacket("VP9 payload is empty")
    first = payload[0]
    pid = pid_at = tl0 = tl0_at = -1
    bits = 0
    i = 1
    if first & 0x80:
        _need(payload, 2, "the picture id")
        pid_at = 1
        if payload[1] & 0x80:
            _need(payload, 3, "the picture id")
            pid, bits = ((payload[1] & 0x7F) << 8) | payload[2], 15
            i = 3
        else:
            pid, bits = payload[1], 7
            i = 2
    if first & 0x20:
        i += 1  # The layer indices.
        if not first & 0x10:
            _need(payload, i + 1, "TL0PICIDX")
            tl0, tl0_at = payload[i], i
    return pid, pid_at, bits, tl0, tl0_at, -1, -1


def is_keyframe(payload: bytes | bytearray | memoryview) -> bool:
    """Return True if ``payload`` begins a VP9 key frame (see :func:`peek_layer`).

    Raises:
        MalformedPacket: the descriptor is truncated.
    """
    return peek_layer(payload)[0]


@dataclass(frozen=True, slots=True)
class Vp9PictureGroupEntry:
    """One picture of the scalability structure's picture group (RFC 9628 §4.2.1).

    Attributes:
        temporal_id: TID of the picture.
        switching_up: U of the picture.
        p_diffs: reference indices (R of them, 0-3).
    """

    temporal_id: int
    switching_up: bool
    p_diffs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Vp9ScalabilityStructure:
    """The SS data (RFC 9628 §4.2.1).

    Attributes:
        spatial_layers: N_S + 1.
        resolutions: ``(width, height)`` per spatial layer, or empty (Y=0).
        picture_group: the picture group description, or None (G=0).
    """

    spatial_layers: int
    resolutions: tuple[tuple[int, int], ...] = ()
    picture_group: tuple[Vp9PictureGroupEntry, ...] | None = None

    def serialize(self) -> bytes:
        """Return the SS bytes.

        Raises:
            LocalProtocolError: a field is out of range.
        """
        if not 1 <= self.spatial_layers <= 8:
            raise LocalProtocolError(f"VP9 SS has {self.spatial_layers} layers, not 1-8")
        if self.resolutions and len(self.resolutions) != self.spatial_layers:
            raise LocalProtocolError("VP9 SS needs one resolution per spatial layer")
        out = bytearray()
        b = (self.spatial_layers - 1) << 5
        if self.resolutions:
            b |= 0x10
        if self.picture_group is not None:
            b |= 0x08
        out.append(b)
        for width, height in self.resolutions:
            if not (0 <= width <= 0xFFFF and 0 <= height <= 0xFFFF):
                raise LocalProtocolError(f"VP9 SS resolution {width}x{height} is not 16-bit")
            out += width.to_bytes(2, "big") + height.to_bytes(2, "big")
        if self.picture_group is not None:
            if len(self.picture_group) > 255:
                raise LocalProtocolError("VP9 SS picture group has more than 255 entries")
            out.append(len(self.picture_group))
            for entry in self.picture_group:
                if not 0 <= entry.temporal_id <= 7 or len(entry.p_diffs) > 3:
                    raise LocalProtocolError("VP9 SS picture group entry out of range")
                out.append(
                    entry.temporal_id << 5 | (0x10 if entry.switching_up else 0)
                    | len(entry.p_diffs) << 2
                )  # fmt: skip
                for diff in entry.p_diffs:
                    if not 0 <= diff <= 255:
                        raise LocalProtocolError(f"VP9 SS P_DIFF {diff} is not 8-bit")
                    out.append(diff)
        return bytes(out)


def _parse_ss(
    payload: bytes | bytearray | memoryview, i: int
) -> tuple[Vp9ScalabilityStructure, int]:
    _need(payload, i + 1, "the scalability structure")
    b = payload[i]
    i += 1
    n_s = (b >> 5) + 1
    resolutions: list[tuple[int, int]] = []
    if b & 0x10:
        _need(payload, i + 4 * n_s, "the SS resolutions")
        for _ in range(n_s):
            resolutions.append(
                ((payload[i] << 8) | payload[i + 1], (payload[i + 2] << 8) | payload[i + 3])
            )
            i += 4
    group: list[Vp9PictureGroupEntry] | None = None
    if b & 0x08:
        _need(payload, i + 1, "the SS picture group count")
        n_g = payload[i]
        i += 1
        group = []
        for _ in range(n_g):
            _need(payload, i + 1, "an SS picture group entry")
            e = payload[i]
            r = (e >> 2) & 0x03
            _need(payload, i + 1 + r, "an SS picture group entry")
            diffs = tuple(payload[i + 1 : i + 1 + r])
            group.append(Vp9PictureGroupEntry(e >> 5, bool(e & 0x10), diffs))
            i += 1 + r
    ss = Vp9ScalabilityStructure(
        n_s, tuple(resolutions), tuple(group) if group is not None else None
    )
    return ss, i


@dataclass(frozen=True, slots=True)
class Vp9Descriptor:
    """A VP9 payload descriptor (RFC 9628 §4.2).

    Attributes:
        picture_id: 7- or 15-bit picture id, or None (I=0).
        long_picture_id: the picture id uses the 15-bit form (M=1).
        inter_picture_predicted: P.
        flexible: F (flexible mode: references are listed as P_DIFFs).
        begin: B, the packet begins a layer frame.
        end: E, the packet ends a layer frame.
        not_reference_for_upper: Z.
        layer_indices: L (TID/SID present).
        temporal_id: TID (0 when L=0).
        switching_up: U (True when L=0).
        spatial_id: SID (0 when L=0).
        inter_layer_dependency: D.
        tl0_pic_idx: TL0PICIDX (non-flexible mode with L), or None.
        p_diffs: reference indices (flexible mode with P).
        scalability_structure: SS (V=1), or None.
        keyframe: begins a spatial-layer-0 frame that is not inter-picture predicted.
        size: descriptor length in bytes.
    """

    picture_id: int | None = None
    long_picture_id: bool = False
    inter_picture_predicted: bool = False
    flexible: bool = False
    begin: bool = False
    end: bool = False
    not_reference_for_upper: bool = False
    layer_indices: bool = False
    temporal_id: int = 0
    switching_up: bool = True
    spatial_id: int = 0
    inter_layer_dependency: bool = False
    tl0_pic_idx: int | None = None
    p_diffs: tuple[int, ...] = ()
    scalability_structure: Vp9ScalabilityStructure | None = None
    keyframe: bool = False
    size: int = 1

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> Vp9Descriptor:
        """Parse the descriptor at the start of an RTP payload.

        Raises:
            MalformedPacket: the descriptor is truncated or lists more than 3 P_DIFFs.
        """
        if not payload:
            raise MalformedPacket("VP9 payload is empty")
        first = payload[0]
        i = 1
        picture_id: int | None = None
        long_id = False
        if first & 0x80:
            _need(payload, 2, "the picture id")
            if payload[1] & 0x80:
                _need(payload, 3, "the picture id")
                long_id = True
                picture_id = ((payload[1] & 0x7F) << 8) | payload[2]
                i = 3
            else:
                picture_id = payload[1]
                i = 2
        flexible = bool(first & 0x10)
        layer = bool(first & 0x20)
        tid = 0
        switch = True
        sid = 0
        dep = False
        tl0: int | None = None
        if layer:
            _need(payload, i + 1, "the layer indices")
            b = payload[i]
            tid, switch, sid, dep = b >> 5, bool(b & 0x10), (b >> 1) & 0x07, bool(b & 0x01)
            i += 1
            if not flexible:
                _need(payload, i + 1, "TL0PICIDX")
                tl0 = payload[i]
                i += 1
        diffs: list[int] = []
        if flexible and first & 0x40:
            while True:
                _need(payload, i + 1, "a P_DIFF")
                b = payload[i]
                i += 1
                diffs.append(b >> 1)
                if not b & 0x01:
                    break
                if len(diffs) == 3:
                    raise MalformedPacket("VP9 descriptor lists more than 3 P_DIFFs")
        ss: Vp9ScalabilityStructure | None = None
        if first & 0x02:
            ss, i = _parse_ss(payload, i)
        begin = bool(first & 0x08)
        return cls(
            picture_id=picture_id,
            long_picture_id=long_id,
            inter_picture_predicted=bool(first & 0x40),
            flexible=flexible,
            begin=begin,
            end=bool(first & 0x04),
            not_reference_for_upper=bool(first & 0x01),
            layer_indices=layer,
            temporal_id=tid,
            switching_up=switch,
            spatial_id=sid,
            inter_layer_dependency=dep,
            tl0_pic_idx=tl0,
            p_diffs=tuple(diffs),
            scalability_structure=ss,
            keyframe=begin and not first & 0x40 and sid == 0,
            size=i,
        )

    def serialize(self) -> bytes:
        """Return the descriptor's bytes (``keyframe`` and ``size`` are not written).

        Raises:
            LocalProtocolError: a field is out of range or inconsistent.
        """
        first = 0
        out = bytearray(1)
        if self.picture_id is not None:
            first |= 0x80
            if self.long_picture_id or self.picture_id > 0x7F:
                if not 0 <= self.picture_id <= 0x7FFF:
                    raise LocalProtocolError(f"VP9 picture id {self.picture_id} is not 15-bit")
                out += bytes((0x80 | self.picture_id >> 8, self.picture_id & 0xFF))
            else:
                if self.picture_id < 0:
                    raise LocalProtocolError(f"VP9 picture id {self.picture_id} is negative")
                out.append(self.picture_id)
        if self.inter_picture_predicted:
            first |= 0x40
        if self.flexible:
            first |= 0x10
        if self.begin:
            first |= 0x08
        if self.end:
            first |= 0x04
        if self.not_reference_for_upper:
            first |= 0x01
        if self.layer_indices:
            first |= 0x20
            if not (0 <= self.temporal_id <= 7 and 0 <= self.spatial_id <= 7):
                raise LocalProtocolError("VP9 TID and SID must be in 0-7")
            out.append(
                self.temporal_id << 5 | (0x10 if self.switching_up else 0)
                | self.spatial_id << 1 | (0x01 if self.inter_layer_dependency else 0)
            )  # fmt: skip
            if not self.flexible:
                tl0 = self.tl0_pic_idx or 0
                if not 0 <= tl0 <= 0xFF:
                    raise LocalProtocolError(f"VP9 TL0PICIDX {tl0} is not 8-bit")
                out.append(tl0)
        if self.flexible and self.inter_picture_predicted and not self.p_diffs:
            raise LocalProtocolError("VP9 flexible mode with P needs at least one P_DIFF")
        if self.p_diffs:
            if not (self.flexible and self.inter_picture_predicted) or len(self.p_diffs) > 3:
                raise LocalProtocolError("VP9 P_DIFFs need F and P, and at most 3 of them")
            for k, diff in enumerate(self.p_diffs):
                if not 0 <= diff <= 0x7F:
                    raise LocalProtocolError(f"VP9 P_DIFF {diff} is not 7-bit")
                out.append(diff << 1 | (1 if k + 1 < len(self.p_diffs) else 0))
        if self.scalability_structure is not None:
            first |= 0x02
            out += self.scalability_structure.serialize()
        out[0] = first
        return bytes(out)
