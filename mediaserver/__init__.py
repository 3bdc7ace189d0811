"""Carillon's server: a self-hosted meetings media server speaking the Chime SDK protocols.

Data flow::

    app/operator ──HTTP (SigV4)──► control.api ──► control.operations ──► registry
                                                                     (meetings, attendees,
                                                                      join tokens, SQLite)
    browser/bot ──WebSocket /control/{MeetingId} + join token──► gateway.server
                     │                         (signaling.session per connection,
                     │                          gateway.room per meeting: roster, INDEX,
                     │                          data messages, departures)
                     └─ SUBSCRIBE (SDP offer) ──► media.MediaServer ──► transport.sdp answer
    browser/bot ══ one UDP port (ICE-lite, DTLS-SRTP) ══► transport.udp ─┬─ transport.ice
                                                                         └─ transport.peer
        uplink Opus ─► audio.mixer (jitter buffers, top speakers, mix-minus) ─► 20 ms clock
        uplink video ─► video.VideoRouter (simulcast streams → subscriber m-lines) ─► SRTP
    registry and gateway ─► events (webhooks, SQS/SNS, events.jsonl) and metrics (/metrics)

``app`` is the composition root (``carillon serve``); every protocol core (signaling, RTP,
RTCP, STUN/ICE, DTLS, SDP, mixer, SFU) is sans-I/O with time passed in, and the asyncio
shells (``control.api``, ``gateway.server``, ``transport.udp``, ``media``) stay thin.
"""

__all__: list[str] = []
