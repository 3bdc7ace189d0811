"""Opus: thin libopus wrappers for the mixer, and TOC parsing without decoding.

Rules of this file:

* libopus is called directly through ctypes (the library opuslib locates), not through
  opuslib's Python classes: those allocate a fresh ctypes buffer and a ``bytes`` copy per
  call, which costs about as much again as the decode itself
  (``anchors-and-performance.md`` §9.3a: 68 µs through opuslib, 32 µs direct). Every
  codec object decodes into, and encodes from, buffers it allocated once.
* Codec states are allocated by us (``opus_*_get_size`` + ``opus_*_init``) in ctypes
  buffers, so they are freed with the object and an encoder state can be duplicated with
  one ``memmove``: libopus keeps its states position-independent (sub-states are found by
  offsets, the only pointers go to static tables). :meth:`OpusEncoder.copy_state_from`
  uses that to fork a listener's stream off the shared one without a decoder glitch.
* Everything the peer can make fail raises :class:`~mediaserver.errors.MalformedPacket`.
  Bad arguments from our own code raise :class:`~mediaserver.errors.InvalidArgument`.
* Sample rate is always 48 kHz (RFC 7587 §4.1: the RTP clock of Opus), frames are 20 ms
  (960 samples per channel) unless a packet says otherwise.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import opuslib.api

from mediaserver.errors import InvalidArgument, MalformedPacket

__all__ = [
    "FRAME_SAMPLES",
    "MAX_FRAME_SAMPLES",
    "SAMPLE_RATE",
    "OpusDecoder",
    "OpusEncoder",
    "OpusToc",
    "estimate_level",
    "opus_version",
    "packet_frame_count",
    "packet_has_lbrr",
    "packet_samples",
    "parse_toc",
]

SAMPLE_RATE: Final = 48000
"""The Opus RTP clock rate and our decode/encode rate (RFC 7587 §4.1)."""

FRAME_SAMPLES: Final = 960
"""Samples per channel in a 20 ms frame at 48 kHz."""

MAX_FRAME_SAMPLES: Final = 5760
"""Samples per channel in the longest Opus packet, 120 ms (RFC 6716 §3.2.5)."""

_MAX_PACKET: Final = 1275 * 3 + 7
"""The largest possible Opus packet (RFC 6716 §3.2.1 and §3.4, R5)."""

# opus_defines.h request codes and constants (stable ABI since libopus 1.0).
_OPUS_OK: Final = 0
_APPLICATIONS: Final = {"voip": 2048, "audio": 2049, "restricted_lowdelay": 2051}
_SET_BITRATE: Final = 4002
_SET_MAX_BANDWIDTH: Final = 4004
_SET_COMPLEXITY: Final = 4010
_SET_INBAND_FEC: Final = 4012
_SET_PACKET_LOSS_PERC: Final = 4014
_SET_DTX: Final = 4016
_SET_SIGNAL: Final = 4024
_GET_LOOKAHEAD: Final = 4027
_RESET_STATE: Final = 4028
_SIGNAL_VOICE: Final = 3001
_BANDWIDTHS: Final = {"nb": 1101, "mb": 1102, "wb": 1103, "swb": 1104, "fb": 1105}
_ERRORS: Final = {
    -1: "bad argument",
    -2: "buffer too small",
    -3: "internal error",
    -4: "invalid packet",
    -5: "unimplemented",
    -6: "invalid state",
    -7: "allocation failed",
}

# A private CDLL instance: its function objects (and their argtypes) are not shared with
# opuslib's, so neither side can break the other's declarations.
_lib = ctypes.CDLL(opuslib.api.lib_location)
_c_int = ctypes.c_int
_vp = ctypes.c_void_p

_lib.opus_get_version_string.restype = ctypes.c_char_p
_lib.opus_get_version_string.argtypes = ()
_lib.opus_encoder_get_size.restype = _c_int
_lib.opus_encoder_get_size.argtypes = (_c_int,)
_lib.opus_decoder_get_size.restype = _c_int
_lib.opus_decoder_get_size.argtypes = (_c_int,)
_lib.opus_encoder_init.restype = _c_int
_lib.opus_encoder_init.argtypes = (_vp, ctypes.c_int32, _c_int, _c_int)
_lib.opus_decoder_init.restype = _c_int
_lib.opus_decoder_init.argtypes = (_vp, ctypes.c_int32, _c_int)
_decode = _lib.opus_decode
_decode.restype = _c_int
_decode.argtypes = (_vp, ctypes.c_char_p, ctypes.c_int32, _vp, _c_int, _c_int)
_encode = _lib.opus_encode
_encode.restype = ctypes.c_int32
_encode.argtypes = (_vp, _vp, _c_int, _vp, ctypes.c_int32)
# The ctl functions are variadic: every argument is passed as an int (or a pointer).
_encoder_ctl = _lib.opus_encoder_ctl
_encoder_ctl.restype = _c_int
_decoder_ctl = _lib.opus_decoder_ctl
_decoder_ctl.restype = _c_int
_memmove = ctypes.memmove
_string_at = ctypes.string_at


def opus_version() -> str:
    """The version string of the libopus in use, e.g. ``"libopus 1.3.1"``."""
    version: bytes = _lib.opus_get_version_string()
    return version.decode()


def _check_channels(channels: int) -> None:
    if channels not in (1, 2):
        raise InvalidArgument(f"Opus channels must be 1 or 2, not {channels}")


def _error(code: int) -> str:
    return _ERRORS.get(code, f"error {code}")


# --- TOC (RFC 6716 §3.1) -------------------------------------------------------------------

_MODES: Final = ("silk",) * 12 + ("hybrid",) * 4 + ("celt",) * 16
_CONFIG_BANDWIDTH: Final = (
    ("nb",) * 4 + ("mb",) * 4 + ("wb",) * 4 + ("swb",) * 2 + ("fb",) * 2
    + ("nb",) * 4 + ("wb",) * 4 + ("swb",) * 4 + ("fb",) * 4
)  # fmt: skip
# Frame size in 48 kHz samples per config (RFC 6716 Table 2).
_CONFIG_SAMPLES: Final = (480, 960, 1920, 2880) * 3 + (480, 960) * 2 + (120, 240, 480, 960) * 4


@dataclass(frozen=True, slots=True)
class OpusToc:
    """The table-of-contents byte of an Opus packet (RFC 6716 §3.1).

    Attributes:
        config: the 5-bit configuration number, 0-31 (Table 2).
        stereo: the ``s`` bit.
        code: the 2-bit frame count code ``c`` (0: one frame, 1: two equal frames,
            2: two frames of different sizes, 3: an arbitrary number of frames).
    """

    config: int
    stereo: bool
    code: int

    @property
    def mode(self) -> Literal["silk", "hybrid", "celt"]:
        """The coding mode of the configuration."""
        mode = _MODES[self.config]
        if mode == "silk":
            return "silk"
        if mode == "hybrid":
            return "hybrid"
        return "celt"

    @property
    def bandwidth(self) -> str:
        """The audio bandwidth: ``"nb"``, ``"mb"``, ``"wb"``, ``"swb"`` or ``"fb"``."""
        return _CONFIG_BANDWIDTH[self.config]

    @property
    def frame_samples(self) -> int:
        """Samples per channel of one frame at 48 kHz (120 to 2880)."""
        return _CONFIG_SAMPLES[self.config]


def parse_toc(packet: bytes) -> OpusToc:
    """Read the TOC byte of an Opus packet without decoding it.

    Raises:
        MalformedPacket: the packet is empty (RFC 6716 §3.4, R1).
    """
    if not packet:
        raise MalformedPacket("Opus packet is empty")
    toc = packet[0]
    return OpusToc(config=toc >> 3, stereo=bool(toc & 0x04), code=toc & 0x03)


def packet_frame_count(packet: bytes) -> int:
    """The number of Opus frames in a packet (RFC 6716 §3.2).

    Raises:
        MalformedPacket: the packet is empty, or a code 3 packet lacks its frame count
            byte or declares zero frames or more than 120 ms (§3.4, R5).
    """
    if not packet:
        raise MalformedPacket("Opus packet is empty")
    code = packet[0] & 0x03
    if code == 0:
        return 1
    if code != 3:
        return 2
    if len(packet) < 2:
        raise MalformedPacket("Opus code 3 packet has no frame count byte")
    count = packet[1] & 0x3F
    if count == 0 or count * _CONFIG_SAMPLES[packet[0] >> 3] > MAX_FRAME_SAMPLES:
        raise MalformedPacket(f"Opus code 3 packet declares {count} frames")
    return count


def packet_samples(packet: bytes) -> int:
    """Samples per channel the packet decodes to at 48 kHz (960 for 20 ms).

    Raises:
        MalformedPacket: as :func:`packet_frame_count`.
    """
    return packet_frame_count(packet) * _CONFIG_SAMPLES[packet[0] >> 3]


def packet_has_lbrr(packet: bytes) -> bool:
    """Whether a single-frame SILK or hybrid packet carries in-band FEC (LBRR) data.

    The SILK layer starts with the VAD flags and the LBRR flag of each channel, range
    coded with probability one half, so they are the leading bits of the first frame
    (RFC 6716 §4.2.3 and §4.2.4): for one 20 ms (or 10 ms) SILK frame, bit 6 of the
    first payload byte is the mid channel's LBRR flag and, in stereo, bit 4 the side
    channel's. CELT-only packets never carry FEC. Multi-frame packets report False.
    """
    if len(packet) < 2 or packet[0] & 0x03:
        return False
    config = packet[0] >> 3
    if config >= 16 or _CONFIG_SAMPLES[config] > 960:
        return False
    first = packet[1]
    if packet[0] & 0x04:
        return bool(first & 0x50)
    return bool(first & 0x40)


def estimate_level(packet: bytes) -> int:
    """A cheap loudness proxy in -dBov (0 loud to 127 silent) from the packet size alone.

    For senders without the RFC 6464 extension. Opus in VBR mode spends bits on what it
    cannot predict: DTX frames are 1-3 bytes, digital silence and steady low noise about
    30-40 bytes at 32 kbit/s (libopus 1.3, measured), speech 65-120 bytes per 20 ms. So
    the size per 20 ms maps to a level: 40 bytes or less is silence (127), 100 or more is
    loud speech (20), linear in between (41 bytes -> 65 dBov). It ranks talkers against
    non-talkers for senders around 32 kbit/s; it does not measure loudness, and a source
    that sends the extension always ranks by it.
    Never raises: an unparsable packet counts as silence.
    """
    size = len(packet)
    if size <= 1:
        return 127
    try:
        samples = _CONFIG_SAMPLES[packet[0] >> 3] * packet_frame_count(packet)
    except MalformedPacket:
        return 127
    per_20ms = size * 960 // samples
    if per_20ms <= 40:
        return 127
    if per_20ms >= 100:
        return 20
    return 65 - (per_20ms - 41) * 45 // 59


# --- Decoder --------------------------------------------------------------------------------


class OpusDecoder:
    """One Opus decoder at 48 kHz, decoding into a buffer it owns.

    A mono decoder accepts stereo packets and downmixes them (libopus does it for free),
    so the mixer always decodes mono.

    Args:
        channels: 1 (mono) or 2 (interleaved stereo output).

    Raises:
        InvalidArgument: ``channels`` is not 1 or 2.
    """

    __slots__ = ("_addr", "_pcm", "_state", "_state_addr", "channels", "last_samples")

    def __init__(self, channels: int = 1) -> None:
        _check_channels(channels)
        self.channels = channels
        self._state = ctypes.create_string_buffer(_lib.opus_decoder_get_size(channels))
        self._state_addr = ctypes.addressof(self._state)
        result = _lib.opus_decoder_init(self._state_addr, SAMPLE_RATE, channels)
        if result != _OPUS_OK:  # pragma: no cover - only fails on bad arguments
            raise InvalidArgument(f"opus_decoder_init failed: {_error(result)}")
        shape = (MAX_FRAME_SAMPLES,) if channels == 1 else (MAX_FRAME_SAMPLES, 2)
        self._pcm: npt.NDArray[np.int16] = np.zeros(shape, dtype=np.int16)
        self._addr: int = self._pcm.ctypes.data
        self.last_samples = FRAME_SAMPLES
        """Samples per channel of the last decoded frame (the PLC frame size)."""

    def _run(self, data: bytes | None, samples: int, fec: int) -> npt.NDArray[np.int16]:
        n = _decode(self._state_addr, data, len(data) if data else 0, self._addr, samples, fec)
        if n < 0:
            raise MalformedPacket(f"Opus decode failed: {_error(n)}")
        if data is not None and not fec:
            self.last_samples = n
        return self._pcm[:n]

    def decode_view(self, payload: bytes) -> npt.NDArray[np.int16]:
        """Decode one packet; the result is a view of the internal buffer.

        The view is valid until the next call on this decoder: the mixer adds it into its
        accumulator at once, which saves a copy.

        Raises:
            MalformedPacket: the packet is empty or libopus rejects it.
        """
        if not payload:
            raise MalformedPacket("Opus packet is empty")
        return self._run(payload, MAX_FRAME_SAMPLES, 0)

    def decode(self, payload: bytes) -> npt.NDArray[np.int16]:
        """Decode one packet into a new int16 array, shape ``(n,)`` or ``(n, 2)``.

        Raises:
            MalformedPacket: the packet is empty or libopus rejects it.
        """
        return self.decode_view(payload).copy()

    def conceal_view(self, samples: int | None = None) -> npt.NDArray[np.int16]:
        """Packet-loss concealment (decode with no data) into the internal buffer.

        Args:
            samples: samples per channel to synthesise; the last frame's size by default.
        """
        return self._run(None, samples or self.last_samples, 0)

    def conceal(self, samples: int | None = None) -> npt.NDArray[np.int16]:
        """Like :meth:`conceal_view`, into a new array."""
        return self.conceal_view(samples).copy()

    def decode_fec_view(
        self, next_payload: bytes, samples: int | None = None
    ) -> npt.NDArray[np.int16]:
        """Recover a lost frame from the in-band FEC (LBRR) data of the packet after it.

        When ``next_payload`` carries no FEC, libopus falls back to concealment, so calling
        this whenever the next packet is at hand is always at least as good as PLC. Call
        :meth:`decode_view` on ``next_payload`` afterwards, as usual, in its own slot.

        Raises:
            MalformedPacket: the packet is empty or libopus rejects it.
        """
        if not next_payload:
            raise MalformedPacket("Opus packet is empty")
        return self._run(next_payload, samples or self.last_samples, 1)

    def decode_fec(self, next_payload: bytes, samples: int | None = None) -> npt.NDArray[np.int16]:
        """Like :meth:`decode_fec_view`, into a new array."""
        return self.decode_fec_view(next_payload, samples).copy()

    def reset(self) -> None:
        """Forget all history (``OPUS_RESET_STATE``), as if freshly created."""
        _decoder_ctl(_vp(self._state_addr), _c_int(_RESET_STATE))
        self.last_samples = FRAME_SAMPLES


# --- Encoder --------------------------------------------------------------------------------


class OpusEncoder:
    """One Opus encoder at 48 kHz, encoding 20 ms frames from int16 PCM.

    Args:
        channels: 1 or 2.
        bitrate: bits per second (6000-510000).
        complexity: 0-10. 5 costs about half of 10 on libopus 1.3
            (``anchors-and-performance.md`` §9.3a).
        application: ``"voip"`` (the default, tuned for speech), ``"audio"`` or
            ``"restricted_lowdelay"``.
        fec: produce in-band FEC (LBRR); it only appears when ``packet_loss_perc`` > 0.
        packet_loss_perc: expected loss, 0-100, which sizes the FEC.
        dtx: discontinuous transmission. Off for the mixer's output: the client wants 50
            packets per second (``chime-signaling-protocol.md`` §6.3).
        max_bandwidth: ``"nb"``, ``"mb"``, ``"wb"``, ``"swb"``, ``"fb"`` or None.

    Raises:
        InvalidArgument: any argument is out of range.
    """

    __slots__ = ("_out", "_out_addr", "_size", "_state", "_state_addr", "channels", "encodes")

    def __init__(
        self,
        channels: int = 1,
        bitrate: int = 32000,
        *,
        complexity: int = 5,
        application: Literal["voip", "audio", "restricted_lowdelay"] = "voip",
        fec: bool = False,
        packet_loss_perc: int = 0,
        dtx: bool = False,
        max_bandwidth: str | None = None,
    ) -> None:
        _check_channels(channels)
        if not 6000 <= bitrate <= 510000:
            raise InvalidArgument(f"Opus bitrate {bitrate} is not in 6000-510000")
        if not 0 <= complexity <= 10:
            raise InvalidArgument(f"Opus complexity {complexity} is not in 0-10")
        if not 0 <= packet_loss_perc <= 100:
            raise InvalidArgument(f"packet loss {packet_loss_perc}% is not in 0-100")
        if application not in _APPLICATIONS:
            raise InvalidArgument(f"unknown Opus application {application!r}")
        if max_bandwidth is not None and max_bandwidth not in _BANDWIDTHS:
            raise InvalidArgument(f"unknown Opus bandwidth {max_bandwidth!r}")
        self.channels = channels
        self._size = _lib.opus_encoder_get_size(channels)
        self._state = ctypes.create_string_buffer(self._size)
        self._state_addr = ctypes.addressof(self._state)
        result = _lib.opus_encoder_init(
            self._state_addr, SAMPLE_RATE, channels, _APPLICATIONS[application]
        )
        if result != _OPUS_OK:  # pragma: no cover - only fails on bad arguments
            raise InvalidArgument(f"opus_encoder_init failed: {_error(result)}")
        self._out = ctypes.create_string_buffer(_MAX_PACKET)
        self._out_addr = ctypes.addressof(self._out)
        self.encodes = 0
        """How many frames this encoder produced (for tests and metrics)."""
        self._ctl(_SET_BITRATE, bitrate)
        self._ctl(_SET_COMPLEXITY, complexity)
        self._ctl(_SET_SIGNAL, _SIGNAL_VOICE)
        self._ctl(_SET_INBAND_FEC, int(fec))
        self._ctl(_SET_PACKET_LOSS_PERC, packet_loss_perc)
        self._ctl(_SET_DTX, int(dtx))
        if max_bandwidth is not None:
            self._ctl(_SET_MAX_BANDWIDTH, _BANDWIDTHS[max_bandwidth])

    def _ctl(self, request: int, value: int) -> None:
        result = _encoder_ctl(_vp(self._state_addr), _c_int(request), _c_int(value))
        if result != _OPUS_OK:
            raise InvalidArgument(f"opus_encoder_ctl({request}, {value}): {_error(result)}")

    @property
    def lookahead(self) -> int:
        """The encoder's algorithmic delay in 48 kHz samples (312 = 6.5 ms for VOIP)."""
        value = _c_int()
        _encoder_ctl(_vp(self._state_addr), _c_int(_GET_LOOKAHEAD), ctypes.byref(value))
        return value.value

    def encode_address(self, address: int, samples: int = FRAME_SAMPLES) -> bytes:
        """Encode ``samples`` int16 samples per channel read from raw memory ``address``.

        The fast path for a caller that owns a preallocated C-contiguous int16 buffer and
        computed its address once (``array.ctypes.data``). No checks: the buffer must hold
        ``samples * channels`` samples.
        """
        n = _encode(self._state_addr, address, samples, self._out_addr, _MAX_PACKET)
        if n < 0:  # pragma: no cover - only with a bad frame size
            raise InvalidArgument(f"Opus encode failed: {_error(n)}")
        self.encodes += 1
        return _string_at(self._out_addr, n)

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        """Encode one frame of int16 PCM: shape ``(n,)`` mono or ``(n, 2)`` stereo.

        ``n`` must be an Opus frame size: 120, 240, 480, 960, 1920 or 2880.

        Raises:
            InvalidArgument: wrong dtype, channel count or frame size.
        """
        if pcm.dtype != np.int16:
            raise InvalidArgument(f"Opus encode needs int16 PCM, not {pcm.dtype}")
        samples = pcm.size // self.channels
        if samples not in (120, 240, 480, 960, 1920, 2880) or pcm.size != samples * self.channels:
            raise InvalidArgument(f"{pcm.shape} is not an Opus frame for {self.channels} ch")
        if not pcm.flags.c_contiguous:
            pcm = np.ascontiguousarray(pcm)
        return self.encode_address(pcm.ctypes.data, samples)

    def copy_state_from(self, other: OpusEncoder) -> None:
        """Make this encoder continue exactly where ``other`` is (same bitstream state).

        After this, encoding the same PCM with both gives identical packets, so a client
        decoder that was fed ``other``'s packets can be fed this encoder's next packets
        without a discontinuity. Settings (bitrate, complexity, FEC) are copied too.

        Raises:
            InvalidArgument: the two encoders have different channel counts.
        """
        if other.channels != self.channels:
            raise InvalidArgument("cannot copy an encoder state across channel counts")
        _memmove(self._state_addr, other._state_addr, self._size)

    def reset(self) -> None:
        """Forget all history (``OPUS_RESET_STATE``); settings are kept."""
        _encoder_ctl(_vp(self._state_addr), _c_int(_RESET_STATE))
