"""Audio: the continuous per-attendee Opus egress and (later) the mix-minus mixer."""

from mediaserver.audio.egress import AudioSender, silence_frame

__all__ = ["AudioSender", "silence_frame"]
