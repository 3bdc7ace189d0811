"""AV1 Dependency Descriptor RTP header extension (AV1 RTP specification, appendix A).

Rules of this file:

* The descriptor is a bit string (appendix A.8.1). Mandatory fields (3 bytes):
  ``start_of_frame(1) end_of_frame(1) frame_dependency_template_id(6)
  frame_number(16)``. Longer descriptors carry extended fields; the first of them,
  ``template_dependency_structure_present_flag``, marks the packets that carry the
  template structure, which senders attach to key frames. We treat "structure present"
  as "key frame" (the start of a new dependency structure).
* Layers are not in the packet: ``frame_dependency_template_id`` indexes the template
  structure's layers (A.8.3.2), so a :class:`DependencyDescriptorTracker` per stream keeps
  the latest structure.
* Parsers raise only :class:`~mediaserver.errors.MalformedPacket`. Custom DTIs, frame
  diffs and chains of a packet are parsed only when the structure is known (their
  lengths depend on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from mediaserver.errors import MalformedPacket

__all__ = [
    "DependencyDescriptor",
    "DependencyDescriptorTracker",
    "TemplateStructure",
    "is_keyframe",
]


class _Bits:
    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self._data = data
        self._pos = pos
        self._end = 8 * len(data)

    @property
    def position(self) -> int:
        return self._pos

    def f(self, n: int) -> int:
        """Read ``n`` bits, most significant first (A.8.1 ``f(n)``)."""
        if self._pos + n > self._end:
            raise MalformedPacket("AV1 dependency descriptor is truncated")
        value = 0
        data = self._data
        pos = self._pos
        for _ in range(n):
            value = (value << 1) | ((data[pos >> 3] >> (7 - (pos & 7))) & 1)
            pos += 1
        self._pos = pos
        return value

    def ns(self, n: int) -> int:
        """Read a non-symmetric unsigned value in ``[0, n)`` (A.8.1 ``ns(n)``)."""
        w = 0
        x = n
        while x:
            x >>= 1
            w += 1
        m = (1 << w) - n
        v = self.f(w - 1)
        if v < m:
            return v
        extra = self.f(1)
        return (v << 1) - m + extra


@dataclass(frozen=True, slots=True)
class TemplateStructure:
    """``template_dependency_structure()`` (appendix A.8.3.2).

    Attributes:
        template_id_offset: id of the first template.
        decode_target_count: DtCnt.
        template_layers: ``(spatial_id, temporal_id)`` per template.
        template_dtis: decode target indications per template (0-3 each).
        template_fdiffs: frame diffs per template.
        chain_count: number of chains.
        decode_target_protected_by: chain index per decode target.
        template_chain_fdiffs: per template, one frame diff per chain.
        resolutions: ``(width, height)`` per spatial layer, or empty.
    """

    template_id_offset: int
    decode_target_count: int
    template_layers: tuple[tuple[int, int], ...]
    template_dtis: tuple[tuple[int, ...], ...]
    template_fdiffs: tuple[tuple[int, ...], ...]
    chain_count: int
    decode_target_protected_by: tuple[int, ...]
    template_chain_fdiffs: tuple[tuple[int, ...], ...]
    resolutions: tuple[tuple[int, int], ...] = ()

    @property
    def max_spatial_id(self) -> int:
        """The highest spatial layer."""
        return max(s for s, _ in self.template_layers)

    @property
    def max_temporal_id(self) -> int:
        """The highest temporal layer."""
        return max(t for _, t in self.template_layers)

    def layer(self, template_id: int) -> tuple[int, int] | None:
        """``(spatial_id, temporal_id)`` of a packet's template id, or None if unknown."""
        index = (template_id - self.template_id_offset) % 64
        if index < len(self.template_layers):
            return self.template_layers[index]
        return None

    @classmethod
    def _read(cls, bits: _Bits) -> TemplateStructure:
        offset = bits.f(6)
        dt_count = bits.f(5) + 1
        layers: list[tuple[int, int]] = []
        spatial = temporal = 0
        while True:
            layers.append((spatial, temporal))
            if len(layers) > 64:
                raise MalformedPacket("AV1 dependency descriptor has more than 64 templates")
            next_layer = bits.f(2)
            if next_layer == 1:
                temporal += 1
            elif next_layer == 2:
                temporal = 0
                spatial += 1
            elif next_layer == 3:
                break
        dtis = tuple(tuple(bits.f(2) for _ in range(dt_count)) for _ in layers)
        fdiffs: list[tuple[int, ...]] = []
        for _ in layers:
            diffs: list[int] = []
            while bits.f(1):
                diffs.append(bits.f(4) + 1)
            fdiffs.append(tuple(diffs))
        chain_count = bits.ns(dt_count + 1)
        protected_by: tuple[int, ...] = ()
        chain_fdiffs: tuple[tuple[int, ...], ...] = tuple(() for _ in layers)
        if chain_count:
            protected_by = tuple(bits.ns(chain_count) for _ in range(dt_count))
            chain_fdiffs = tuple(tuple(bits.f(4) for _ in range(chain_count)) for _ in layers)
        resolutions: list[tuple[int, int]] = []
        if bits.f(1):
            for _ in range(max(s for s, _ in layers) + 1):
                resolutions.append((bits.f(16) + 1, bits.f(16) + 1))
        return cls(offset, dt_count, tuple(layers), dtis, tuple(fdiffs), chain_count,
                   protected_by, chain_fdiffs, tuple(resolutions))  # fmt: skip


@dataclass(frozen=True, slots=True)
class DependencyDescriptor:
    """One dependency descriptor (appendix A.8.2).

    Attributes:
        start_of_frame: the packet starts a frame.
        end_of_frame: the packet ends a frame.
        template_id: frame_dependency_template_id.
        frame_number: the 16-bit frame number.
        structure: the template structure carried by this packet, or None.
        active_decode_targets: the bitmask, or None when not present (or unknown).
        custom_dtis: custom_dtis_flag.
        custom_fdiffs: custom_fdiffs_flag.
        custom_chains: custom_chains_flag.
    """

    start_of_frame: bool
    end_of_frame: bool
    template_id: int
    frame_number: int
    structure: TemplateStructure | None = None
    active_decode_targets: int | None = None
    custom_dtis: bool = False
    custom_fdiffs: bool = False
    custom_chains: bool = False

    @property
    def keyframe(self) -> bool:
        """The packet carries a template structure (what senders attach to key frames)."""
        return self.structure is not None

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, structure: TemplateStructure | None = None
    ) -> DependencyDescriptor:
        """Parse the extension element's data.

        Args:
            structure: the latest known structure, needed to read an active decode
                targets bitmask when the packet does not carry its own structure.

        Raises:
            MalformedPacket: shorter than 3 bytes, or truncated.
        """
        if len(data) < 3:
            raise MalformedPacket(f"AV1 dependency descriptor is {len(data)} bytes, at least 3")
        first = data[0]
        start = bool(first & 0x80)
        end = bool(first & 0x40)
        template_id = first & 0x3F
        frame_number = (data[1] << 8) | data[2]
        if len(data) == 3:
            return cls(start, end, template_id, frame_number)
        bits = _Bits(data, 24)
        has_structure = bits.f(1)
        has_active = bits.f(1)
        custom_dtis = bool(bits.f(1))
        custom_fdiffs = bool(bits.f(1))
        custom_chains = bool(bits.f(1))
        own: TemplateStructure | None = None
        active: int | None = None
        if has_structure:
            own = TemplateStructure._read(bits)
            active = (1 << own.decode_target_count) - 1
        known = own or structure
        if has_active and known is not None:
            active = bits.f(known.decode_target_count)
        return cls(start, end, template_id, frame_number, own, active, custom_dtis,
                   custom_fdiffs, custom_chains)  # fmt: skip


def is_keyframe(data: bytes | bytearray | memoryview) -> bool:
    """Return True if the descriptor carries a template structure (see module docstring).

    Raises:
        MalformedPacket: shorter than 3 bytes.
    """
    if len(data) < 3:
        raise MalformedPacket(f"AV1 dependency descriptor is {len(data)} bytes, at least 3")
    return len(data) > 3 and bool(data[3] & 0x80)


class DependencyDescriptorTracker:
    """Keeps the latest template structure of one stream and maps packets to layers."""

    __slots__ = ("structure",)

    def __init__(self) -> None:
        self.structure: TemplateStructure | None = None
        """The latest template structure seen."""

    def layer(self, data: bytes | bytearray | memoryview) -> tuple[bool, bool, bool, int, int]:
        """Return ``(keyframe, start_of_frame, end_of_frame, spatial_id, temporal_id)``.

        Packets whose template is unknown (no structure yet) report layer (0, 0).

        Raises:
            MalformedPacket: the descriptor does not parse.
        """
        if len(data) < 3:
            raise MalformedPacket(f"AV1 dependency descriptor is {len(data)} bytes, at least 3")
        first = data[0]
        keyframe = len(data) > 3 and bool(data[3] & 0x80)
        if keyframe:
            self.structure = DependencyDescriptor.parse(data).structure
        structure = self.structure
        spatial = temporal = 0
        if structure is not None:
            found = structure.layer(first & 0x3F)
            if found is not None:
                spatial, temporal = found
        return keyframe, bool(first & 0x80), bool(first & 0x40), spatial, temporal
