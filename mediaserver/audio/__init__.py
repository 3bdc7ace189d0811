"""Audio: the continuous per-attendee Opus egress and the mix-minus mixer."""

from mediaserver.audio.egress import AudioSender, silence_frame
from mediaserver.audio.jitter import LOST, JitterBuffer, JitterStats
from mediaserver.audio.levels import SpeakerSelector, signal_strength, volume_from_level
from mediaserver.audio.mixer import (
    TICK_SECONDS,
    MixerStats,
    MixMinusMixer,
    MixOutput,
    SourceLevel,
    owner_of,
)

__all__ = [
    "LOST",
    "TICK_SECONDS",
    "AudioSender",
    "JitterBuffer",
    "JitterStats",
    "MixMinusMixer",
    "MixOutput",
    "MixerStats",
    "SourceLevel",
    "SpeakerSelector",
    "owner_of",
    "signal_strength",
    "silence_frame",
    "volume_from_level",
]
