"""Picture ids, TL0PICIDX and KEYIDX of one outgoing VP8/VP9 stream across switches.

A subscriber m-line forwards one publisher stream at a time, and switches (another
simulcast layer, another source, the same source after a pause). Each publisher stream
numbers its pictures on its own: libwebrtc starts every simulcast encoding's picture id
and TL0PICIDX at its own random value. A receiver's frame reference finder keys its state
by those numbers (for VP8: the picture id and, per TL0PICIDX, the last picture of each
temporal layer), so a jump back to numbers it saw from the previous stream makes it treat
the new stream's delta frames as old or as referring to frames it never decoded: the
tile decodes the key frame and a frame or two, then freezes. SFUs therefore renumber.

Rules of this file:

* One :class:`PictureIds` per subscriber m-line and payload format (VP8: RFC 7741
  section 4.2; VP9: RFC 9628 section 4.2). It rewrites the fields in a copy of the payload
  so that, on the m-line, the picture id goes up by one per picture, TL0PICIDX by one per
  base-layer picture and KEYIDX by one per key frame, across every switch.
* :meth:`PictureIds.rebase` marks a switch; the next packet (a key frame, where the
  server switches) continues right after the last numbers sent. The first stream of an
  m-line keeps its own numbers.
* Until the first switch (or dropped picture) nothing is rewritten or parsed: the
  m-line only remembers the last payload it sent (one reference), and reads its numbers
  when a switch comes. After that every copy is parsed and rewritten (a bytearray copy
  and two or three byte writes); the descriptor of a packet is read once for all of its
  copies (:func:`picture_fields`).
* :meth:`PictureIds.skip` is for pictures a layer selector drops (VP8 temporal layers,
  VP9 temporal layers): the pictures after one move down by one, so the picture ids the
  subscriber sees stay contiguous (RFC 7741 section 4.2: a gap in picture ids says a
  picture was lost). Not in VP9's flexible mode (F=1, what libwebrtc sends for SVC): there
  a picture names its references as picture-id differences (P_DIFF, RFC 9628 section 4.2),
  which renumbering would point at the wrong pictures (the receiver then waits for
  pictures that never come); the gaps of dropped pictures stay.
* A packet whose descriptor cannot be read is passed through unchanged: the payload was
  authenticated (SRTP), its decoder will judge it.
"""

from __future__ import annotations

from collections.abc import Callable

from mediacodecs import vp8, vp9
from mediaserver.errors import InvalidArgument, MalformedPacket

__all__ = ["PictureIds", "picture_fields"]

Fields = tuple[int, int, int, int, int, int, int]
"""``(picture_id, at, bits, tl0_pic_idx, at, key_index, at)``; -1 when absent."""

_PEEK: dict[str, Callable[[bytes], Fields]] = {
    "vp8": vp8.peek_picture_fields,
    "vp9": vp9.peek_picture_fields,
}

_last_read: tuple[object, Fields | None] = (None, None)
"""The last payload read and its fields: every copy of a packet shares one read."""


def picture_fields(payload_format: str, payload: bytes) -> Fields | None:
    """The numbering fields of ``payload`` (see :func:`mediacodecs.vp8.peek_picture_fields`),
    or None when the descriptor is malformed. Reads the same payload object only once."""
    global _last_read
    last, fields = _last_read
    if last is payload:
        return fields
    try:
        fields = _PEEK[payload_format](payload)
    except (MalformedPacket, IndexError):
        fields = None
    _last_read = (payload, fields)
    return fields


def _newer(a: int, b: int, bits: int) -> bool:
    """``a`` is after ``b`` in a ``bits``-bit wrapping number space."""
    half = 1 << (bits - 1)
    return 0 < (a - b) & ((1 << bits) - 1) < half


class PictureIds:
    """Renumbers the pictures of one outgoing VP8 or VP9 stream (sans-I/O).

    Args:
        payload_format: ``"vp8"`` or ``"vp9"``.

    Raises:
        InvalidArgument: another format.
    """

    __slots__ = (
        "_active",
        "_format",
        "_key_offset",
        "_last_in_pid",
        "_last_key",
        "_last_payload",
        "_last_pid",
        "_last_tl0",
        "_pid_offset",
        "_rebase",
        "_skipped_pid",
        "_tl0_offset",
    )

    def __init__(self, payload_format: str) -> None:
        if payload_format not in _PEEK:
            raise InvalidArgument(f"no picture ids in {payload_format!r}")
        self._format = payload_format
        self._active = False
        self._rebase = False
        self._last_payload: bytes | None = None
        """While passive: the last payload sent (its numbers are the m-line's)."""
        self._pid_offset = self._tl0_offset = self._key_offset = 0
        # While active: the newest numbers sent, and the newest input picture id.
        self._last_pid = self._last_tl0 = self._last_key = -1
        self._last_in_pid = -1
        self._skipped_pid = -1

    @property
    def payload_format(self) -> str:
        return self._format

    @property
    def rewriting(self) -> bool:
        """Whether copies are rewritten (after the first switch or dropped picture)."""
        return self._active

    def rebase(self) -> None:
        """The next packet starts another stream: continue its numbering from ours."""
        self._rebase = True

    def apply(self, payload: bytes) -> bytes:
        """The payload to send on this m-line: ``payload`` itself, or a renumbered copy."""
        if not self._active:
            if not self._rebase or self._last_payload is None:
                self._rebase = False
                self._last_payload = payload
                return payload
            self._activate()
        fields = picture_fields(self._format, payload)
        if fields is None:
            return payload
        pid, pid_at, bits, tl0, tl0_at, key, key_at = fields
        if self._rebase:
            self._rebase = False
            if pid >= 0:
                self._pid_offset = (self._last_pid + 1 - pid) if self._last_pid >= 0 else 0
                self._skipped_pid = -1
            if tl0 >= 0:
                self._tl0_offset = (self._last_tl0 + 1 - tl0) if self._last_tl0 >= 0 else 0
            if key >= 0:
                self._key_offset = (self._last_key + 1 - key) if self._last_key >= 0 else 0
        out = bytearray(payload)
        if pid >= 0:
            mask = (1 << bits) - 1
            value = (pid + self._pid_offset) & mask
            if bits == 15:
                out[pid_at] = 0x80 | value >> 8
                out[pid_at + 1] = value & 0xFF
            else:
                out[pid_at] = value
            if self._last_pid < 0 or _newer(value, self._last_pid, bits):
                self._last_pid = value
                self._last_in_pid = pid
        if tl0 >= 0:
            value = (tl0 + self._tl0_offset) & 0xFF
            out[tl0_at] = value
            if self._last_tl0 < 0 or _newer(value, self._last_tl0, 8):
                self._last_tl0 = value
        if key >= 0:
            value = (key + self._key_offset) & 0x1F
            out[key_at] = (out[key_at] & 0xE0) | value
            self._last_key = value
        return bytes(out)

    def skip(self, payload: bytes) -> None:
        """A layer selector dropped this packet: if it is the first packet seen of a new
        picture, the pictures after it move down by one (no picture-id gap)."""
        if self._rebase:
            return  # The next stream's first packet sent sets its numbering.
        if not self._active:
            if self._last_payload is None:
                return  # Nothing sent yet: the first picture sent sets the numbering.
            self._activate()
        if self._format == "vp9" and payload and payload[0] & 0x10:
            return  # Flexible mode: P_DIFFs count in the publisher's picture ids.
        fields = picture_fields(self._format, payload)
        if fields is None:
            return
        pid, bits = fields[0], fields[2]
        if pid < 0 or pid == self._skipped_pid or self._last_in_pid < 0:
            return
        if not _newer(pid, self._last_in_pid, bits):
            return  # A picture already (partly) sent, or older: it keeps its number.
        if self._skipped_pid >= 0 and not _newer(pid, self._skipped_pid, bits):
            return
        self._skipped_pid = pid
        self._pid_offset -= 1

    def _activate(self) -> None:
        """Switch from passing through to rewriting: the numbers sent so far are those of
        the last payload sent (unchanged, offsets zero)."""
        self._active = True
        last = self._last_payload
        self._last_payload = None
        fields = picture_fields(self._format, last) if last is not None else None
        if fields is None:
            return
        pid, _, _, tl0, _, key, _ = fields
        self._last_pid = self._last_in_pid = pid
        self._last_tl0 = tl0
        self._last_key = key
