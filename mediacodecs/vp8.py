"""VP8 RTP payload descriptor (RFC 7741 section 4.2) and keyframe detection.

Rules of this file:

* Parsers work on the RTP *payload* (the bytes after the RTP header and extensions) and
  raise only :class:`~mediaserver.errors.MalformedPacket`.
* :class:`Vp8Descriptor` is for control code and tests; the ``peek_*`` functions and
  :func:`is_keyframe` read single facts without building an object, for the SFU's
  per-packet path.

Layout (RFC 7741 section 4.2)::

     0 1 2 3 4 5 6 7
    +-+-+-+-+-+-+-+-+
    |X|R|N|S|R| PID | (REQUIRED)
    +-+-+-+-+-+-+-+-+
    |I|L|T|K| RSV   | (OPTIONAL, present when X)
    +-+-+-+-+-+-+-+-+
    |M| PictureID   | (OPTIONAL, present when I; M selects a 15-bit picture id)
    +-+-+-+-+-+-+-+-+
    |   PictureID   | (second byte when M)
    +-+-+-+-+-+-+-+-+
    |   TL0PICIDX   | (OPTIONAL, present when L)
    +-+-+-+-+-+-+-+-+
    |TID|Y| KEYIDX  | (OPTIONAL, present when T or K)
    +-+-+-+-+-+-+-+-+

The VP8 payload header follows on the first packet of a frame (S=1, PID=0); bit 0 of its
first byte is the *inverse* key frame flag P (RFC 7741 section 4.3: "P: Inverse key frame
flag. When set to 0, the current frame is a key frame.").
"""

from __future__ import annotations

from dataclasses import dataclass

from mediaserver.errors import LocalProtocolError, MalformedPacket

__all__ = ["Vp8Descriptor", "descriptor_size", "is_keyframe", "peek_layer", "peek_picture_fields"]


def descriptor_size(payload: bytes | bytearray | memoryview) -> int:
    """Return the length of the payload descriptor at the start of ``payload``.

    Raises:
        MalformedPacket: the descriptor is truncated.
    """
    n = len(payload)
    if n < 1:
        raise MalformedPacket("VP8 payload is empty")
    if not payload[0] & 0x80:
        return 1
    if n < 2:
        raise MalformedPacket("VP8 descriptor is truncated after the X byte")
    ext = payload[1]
    size = 2
    if ext & 0x80:
        if size >= n:
            raise MalformedPacket("VP8 descriptor is truncated in the picture id")
        size += 2 if payload[size] & 0x80 else 1
    if ext & 0x40:
        size += 1
    if ext & 0x30:
        size += 1
    if size > n:
        raise MalformedPacket("VP8 descriptor is longer than the payload")
    return size


def is_keyframe(payload: bytes | bytearray | memoryview) -> bool:
    """Return True if ``payload`` is the first packet of a VP8 key frame.

    Only the first packet of a frame (S=1, PID=0) carries the VP8 payload header that
    says so; every other packet returns False.

    Raises:
        MalformedPacket: the descriptor is truncated.
    """
    first = payload[0] if payload else 0
    if (first & 0x17) != 0x10:  # S=1 and PID=0
        descriptor_size(payload)  # Raise on truncation, as documented.
        return False
    size = descriptor_size(payload)
    if size >= len(payload):
        raise MalformedPacket("VP8 packet has no payload header after its descriptor")
    return not payload[size] & 0x01


def peek_layer(
    payload: bytes | bytearray | memoryview,
) -> tuple[bool, bool, int, bool, int, int]:
    """Read what a layer selector needs in one pass.

    Returns:
        ``(keyframe, start_of_frame, temporal_id, layer_sync, picture_id, tl0_pic_idx)``;
        ``temporal_id`` is 0 and ``layer_sync`` True when the descriptor has no TID
        (a stream without temporal layers); ``picture_id`` and ``tl0_pic_idx`` are -1
        when absent.

    Raises:
        MalformedPacket: the descriptor is truncated.
    """
    n = len(payload)
    if n < 1:
        raise MalformedPacket("VP8 payload is empty")
    first = payload[0]
    start = (first & 0x17) == 0x10
    tid = 0
    sync = True
    picture_id = -1
    tl0 = -1
    i = 1
    if first & 0x80:
        if n < 2:
            raise MalformedPacket("VP8 descriptor is truncated after the X byte")
        ext = payload[1]
        i = 2
        if ext & 0x80:
            if i >= n:
                raise MalformedPacket("VP8 descriptor is truncated in the picture id")
            b = payload[i]
            if b & 0x80:
                if i + 1 >= n:
                    raise MalformedPacket("VP8 descriptor is truncated in the picture id")
                picture_id = ((b & 0x7F) << 8) | payload[i + 1]
                i += 2
            else:
                picture_id = b
                i += 1
        if ext & 0x40:
            if i >= n:
                raise MalformedPacket("VP8 descriptor is truncated in TL0PICIDX")
            tl0 = payload[i]
            i += 1
        if ext & 0x30:
            if i >= n:
                raise MalformedPacket("VP8 descriptor is truncated in TID/KEYIDX")
            if ext & 0x20:
                b = payload[i]
                tid = b >> 6
                sync = bool(b & 0x20)
            i += 1
    keyframe = False
    if start:
        if i >= n:
            raise MalformedPacket("VP8 packet has no payload header after its descriptor")
        keyframe = not payload[i] & 0x01
    return keyframe, start, tid, sync, picture_id, tl0


def peek_picture_fields(
    payload: bytes | bytearray | memoryview,
) -> tuple[int, int, int, int, int, int, int]:
    """Where the numbering fields of a descriptor are, for rewriting them in place.

    Returns:
        ``(picture_id, picture_id_at, picture_id_bits, tl0_pic_idx, tl0_pic_idx_at,
        key_index, key_index_at)``: each value with the offset of its byte in
        ``payload``; ``picture_id_bits`` is 15 or 7 (M, RFC 7741 section 4.2). An absent
        field has value and offset -1 (and 0 bits).

    Raises:
        MalformedPacket: the descriptor is truncated.
    """
    descriptor_size(payload)  # Raises on truncation; the reads below are then in range.
    pid = pid_at = tl0 = tl0_at = key = key_at = -1
    bits = 0
    if payload[0] & 0x80:
        ext = payload[1]
        i = 2
        if ext & 0x80:
            pid_at = i
            if payload[i] & 0x80:
                pid, bits = ((payload[i] & 0x7F) << 8) | payload[i + 1], 15
                i += 2
            else:
                pid, bits = payload[i], 7
                i += 1
        if ext & 0x40:
            tl0, tl0_at = payload[i], i
            i += 1
        if ext & 0x10:  # K: KEYIDX present (its byte is shared with TID/Y when T).
            key, key_at = payload[i] & 0x1F, i
    return pid, pid_at, bits, tl0, tl0_at, key, key_at


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """A VP8 payload descriptor (RFC 7741 section 4.2).

    Attributes:
        non_reference: N, the frame can be discarded without affecting others.
        start_of_partition: S, the first packet of a VP8 partition.
        partition_index: PID, 0-7.
        picture_id: the 7- or 15-bit picture id, or None (I clear).
        long_picture_id: True when the picture id uses the 15-bit form (M set).
        tl0_pic_idx: TL0PICIDX, or None (L clear).
        temporal_id: TID 0-3, or None (T clear).
        layer_sync: Y, the frame depends only on temporal layer 0 frames (or the last
            key frame); a receiver can switch up to this layer here.
        key_index: KEYIDX 0-31, or None (K clear).
        keyframe: the packet starts a key frame (S=1, PID=0 and P=0 in the payload
            header); always False for other packets.
        size: length of the descriptor in bytes.
    """

    non_reference: bool = False
    start_of_partition: bool = False
    partition_index: int = 0
    picture_id: int | None = None
    long_picture_id: bool = False
    tl0_pic_idx: int | None = None
    temporal_id: int | None = None
    layer_sync: bool = False
    key_index: int | None = None
    keyframe: bool = False
    size: int = 1

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> Vp8Descriptor:
        """Parse the descriptor at the start of an RTP payload.

        Raises:
            MalformedPacket: the descriptor is truncated, or a first packet of a frame has
                no payload header.
        """
        size = descriptor_size(payload)
        first = payload[0]
        picture_id: int | None = None
        long_id = False
        tl0: int | None = None
        tid: int | None = None
        sync = False
        key_index: int | None = None
        if first & 0x80:
            ext = payload[1]
            i = 2
            if ext & 0x80:
                b = payload[i]
                if b & 0x80:
                    long_id = True
                    picture_id = ((b & 0x7F) << 8) | payload[i + 1]
                    i += 2
                else:
                    picture_id = b
                    i += 1
            if ext & 0x40:
                tl0 = payload[i]
                i += 1
            if ext & 0x30:
                b = payload[i]
                if ext & 0x20:
                    tid = b >> 6
                    sync = bool(b & 0x20)
                if ext & 0x10:
                    key_index = b & 0x1F
        start = bool(first & 0x10)
        pid = first & 0x07
        keyframe = False
        if start and pid == 0:
            if size >= len(payload):
                raise MalformedPacket("VP8 packet has no payload header after its descriptor")
            keyframe = not payload[size] & 0x01
        return cls(
            non_reference=bool(first & 0x20),
            start_of_partition=start,
            partition_index=pid,
            picture_id=picture_id,
            long_picture_id=long_id,
            tl0_pic_idx=tl0,
            temporal_id=tid,
            layer_sync=sync,
            key_index=key_index,
            keyframe=keyframe,
            size=size,
        )

    def serialize(self) -> bytes:
        """Return the descriptor's bytes (without the VP8 payload header).

        ``keyframe`` and ``size`` are not written: they are facts about the payload.

        Raises:
            LocalProtocolError: a field is out of range.
        """
        if not 0 <= self.partition_index <= 7:
            raise LocalProtocolError(f"VP8 PID {self.partition_index} is not in 0-7")
        first = self.partition_index
        if self.non_reference:
            first |= 0x20
        if self.start_of_partition:
            first |= 0x10
        ext = 0
        tail = bytearray()
        if self.picture_id is not None:
            ext |= 0x80
            if self.long_picture_id or self.picture_id > 0x7F:
                if not 0 <= self.picture_id <= 0x7FFF:
                    raise LocalProtocolError(f"VP8 picture id {self.picture_id} is not 15-bit")
                tail += bytes((0x80 | self.picture_id >> 8, self.picture_id & 0xFF))
            else:
                if self.picture_id < 0:
                    raise LocalProtocolError(f"VP8 picture id {self.picture_id} is negative")
                tail.append(self.picture_id)
        if self.tl0_pic_idx is not None:
            if not 0 <= self.tl0_pic_idx <= 0xFF:
                raise LocalProtocolError(f"VP8 TL0PICIDX {self.tl0_pic_idx} is not 8-bit")
            ext |= 0x40
            tail.append(self.tl0_pic_idx)
        if self.temporal_id is not None or self.key_index is not None:
            b = 0
            if self.temporal_id is not None:
                if not 0 <= self.temporal_id <= 3:
                    raise LocalProtocolError(f"VP8 TID {self.temporal_id} is not in 0-3")
                ext |= 0x20
                b |= self.temporal_id << 6
                if self.layer_sync:
                    b |= 0x20
            if self.key_index is not None:
                if not 0 <= self.key_index <= 31:
                    raise LocalProtocolError(f"VP8 KEYIDX {self.key_index} is not in 0-31")
                ext |= 0x10
                b |= self.key_index
            tail.append(b)
        if ext:
            return bytes((first | 0x80, ext)) + bytes(tail)
        return bytes((first,))
