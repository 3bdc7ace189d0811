"""States of one server-side signaling connection, and what each state allows.

Rules of this file:

1. Everything that decides whether a frame may be received or sent in a state lives here, as
   data. :mod:`signaling.session` looks rules up; it never tests the state with ``if``
   chains of its own to accept or refuse a frame type.
2. The tables are total: every (state, frame type) pair has an answer, either listed or given
   by the state's default. ``tests/signaling/test_states.py`` checks this.
3. Only :class:`~signaling.session.SignalingSession` changes the state, and only to a state
   that :data:`TRANSITIONS` lists for the current one.
4. Per-command ordering rules that need counters (JOIN_ACK before the first INDEX, one
   SUBSCRIBE_ACK per SUBSCRIBE) are in the session, next to the counters; they only apply to
   sends this file allows.

Theory of operation (``chime-signaling-protocol.md`` sections 3, 5.6 and 6):

* ``AWAITING_JOIN``: the socket is open. The client pings from the moment it opens, before
  JOIN (section 5.6), and a ``start({signalingOnly: true})`` client may sit here for a long
  time before sending JOIN (section 3.1). PING and telemetry are handled; JOIN moves on;
  anything else is a protocol violation, and violations here close the socket with 4400,
  which the client reads as terminal SignalingBadRequest (section 6.1).
* ``JOINED``: the steady state. Violations and malformed frames are dropped and counted, not
  closed on: after the join, close codes other than 1006 and 45xx make the client do nothing
  (section 6.1), which would strand it, and the client itself ignores frames it cannot decode
  (section 2.1).
* ``LEFT``: LEAVE arrived and LEAVE_ACK went out; the client is about to close the socket
  (section 6.4). Pings are still answered; everything else is ignored.
* ``CLOSING``: the session decided to close; the shell should close with ``close_code()``.
* ``CLOSED``: the socket is gone. Nothing is received or sent.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from signaling.messages import FrameType

__all__ = [
    "RECEIVE_DEFAULT",
    "RECEIVE_RULES",
    "SEND_ALLOWED",
    "SEND_OTHERWISE",
    "TRANSITIONS",
    "VIOLATION_POLICY",
    "Disposition",
    "ReceiveRule",
    "SendDisposition",
    "SessionState",
    "Violation",
    "receive_rule",
    "send_disposition",
]


class SessionState(enum.Enum):
    """Where a server-side signaling connection is in its life."""

    AWAITING_JOIN = "awaiting_join"
    JOINED = "joined"
    LEFT = "left"
    CLOSING = "closing"
    CLOSED = "closed"


class Disposition(enum.Enum):
    """What the session does with a well-formed client frame."""

    HANDLE = "handle"
    """Run the frame's handler (events, automatic replies)."""
    IGNORE = "ignore"
    """Drop it silently (counted in ``ignored_frames``)."""
    REJECT = "reject"
    """A protocol violation: apply the state's :class:`Violation` policy."""


class Violation(enum.Enum):
    """What a protocol violation or a malformed frame leads to, per state."""

    CLOSE = "close"
    """Drop the frame, report it, and close with 4400 (SignalingBadRequest)."""
    DROP = "drop"
    """Drop the frame and report it; the connection stays up."""
    IGNORE = "ignore"
    """Drop it silently (the connection is going away anyway)."""


class SendDisposition(enum.Enum):
    """What a send command does in a state."""

    SEND = "send"
    """Queue the frame."""
    DROP = "drop"
    """Do nothing: the client is leaving or gone. Lets the gateway fan out without checks."""
    ERROR = "error"
    """Raise :class:`~mediaserver.errors.LocalProtocolError`: a bug in the caller."""


@dataclass(frozen=True, slots=True)
class ReceiveRule:
    """The answer for one (state, frame type) pair."""

    disposition: Disposition
    next_state: SessionState | None = None
    """The state after the frame is handled; ``None`` keeps the current one."""


_HANDLE = ReceiveRule(Disposition.HANDLE)
_IGNORE = ReceiveRule(Disposition.IGNORE)
_REJECT = ReceiveRule(Disposition.REJECT)

_TELEMETRY: Mapping[FrameType, ReceiveRule] = {
    FrameType.CLIENT_METRIC: _HANDLE,
    FrameType.MEETING_SESSION_TIMING: _HANDLE,
}

RECEIVE_RULES: Mapping[SessionState, Mapping[FrameType, ReceiveRule]] = {
    SessionState.AWAITING_JOIN: {
        FrameType.JOIN: ReceiveRule(Disposition.HANDLE, SessionState.JOINED),
        FrameType.PING_PONG: _HANDLE,
        **_TELEMETRY,
    },
    SessionState.JOINED: {
        FrameType.SUBSCRIBE: _HANDLE,
        FrameType.AUDIO_CONTROL: _HANDLE,
        FrameType.DATA_MESSAGE: _HANDLE,
        FrameType.PAUSE: _HANDLE,
        FrameType.RESUME: _HANDLE,
        FrameType.REMOTE_VIDEO_UPDATE: _HANDLE,
        FrameType.PING_PONG: _HANDLE,
        **_TELEMETRY,
        FrameType.LEAVE: ReceiveRule(Disposition.HANDLE, SessionState.LEFT),
        # Replicated meetings are not supported yet (section 8, "Later").
        FrameType.PRIMARY_MEETING_JOIN: _IGNORE,
        FrameType.PRIMARY_MEETING_LEAVE: _IGNORE,
    },
    SessionState.LEFT: {
        FrameType.PING_PONG: _HANDLE,
    },
    SessionState.CLOSING: {},
    SessionState.CLOSED: {},
}
"""State → frame type → rule, for frame types with an explicit rule."""

RECEIVE_DEFAULT: Mapping[SessionState, ReceiveRule] = {
    SessionState.AWAITING_JOIN: _REJECT,
    SessionState.JOINED: _REJECT,
    SessionState.LEFT: _IGNORE,
    SessionState.CLOSING: _IGNORE,
    SessionState.CLOSED: _IGNORE,
}
"""The rule for frame types a state does not list (a second JOIN, server-only types…)."""

VIOLATION_POLICY: Mapping[SessionState, Violation] = {
    SessionState.AWAITING_JOIN: Violation.CLOSE,
    SessionState.JOINED: Violation.DROP,
    SessionState.LEFT: Violation.DROP,
    SessionState.CLOSING: Violation.IGNORE,
    SessionState.CLOSED: Violation.IGNORE,
}
"""State → what a REJECT or a malformed frame leads to."""

_SERVER_FRAMES = frozenset(
    {
        FrameType.JOIN_ACK,
        FrameType.SUBSCRIBE_ACK,
        FrameType.INDEX,
        FrameType.PAUSE,
        FrameType.RESUME,
        FrameType.BITRATES,
        FrameType.AUDIO_METADATA,
        FrameType.AUDIO_STREAM_ID_INFO,
        FrameType.PING_PONG,
        FrameType.AUDIO_STATUS,
        FrameType.DATA_MESSAGE,
        FrameType.NOTIFICATION,
    }
)

SEND_ALLOWED: Mapping[SessionState, frozenset[FrameType]] = {
    SessionState.AWAITING_JOIN: frozenset({FrameType.PING_PONG}),
    SessionState.JOINED: _SERVER_FRAMES,
    SessionState.LEFT: frozenset({FrameType.PING_PONG, FrameType.LEAVE_ACK}),
    SessionState.CLOSING: frozenset(),
    SessionState.CLOSED: frozenset(),
}
"""State → the frame types the server may send in it."""

SEND_OTHERWISE: Mapping[SessionState, SendDisposition] = {
    SessionState.AWAITING_JOIN: SendDisposition.ERROR,
    SessionState.JOINED: SendDisposition.ERROR,
    SessionState.LEFT: SendDisposition.DROP,
    SessionState.CLOSING: SendDisposition.DROP,
    SessionState.CLOSED: SendDisposition.DROP,
}
"""State → what happens to a send that :data:`SEND_ALLOWED` does not list."""

TRANSITIONS: Mapping[SessionState, frozenset[SessionState]] = {
    SessionState.AWAITING_JOIN: frozenset(
        {SessionState.JOINED, SessionState.CLOSING, SessionState.CLOSED}
    ),
    SessionState.JOINED: frozenset({SessionState.LEFT, SessionState.CLOSING, SessionState.CLOSED}),
    SessionState.LEFT: frozenset({SessionState.CLOSING, SessionState.CLOSED}),
    SessionState.CLOSING: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}
"""State → the states it may move to."""


def receive_rule(state: SessionState, frame_type: FrameType) -> ReceiveRule:
    """Return the rule for receiving ``frame_type`` in ``state``."""
    return RECEIVE_RULES[state].get(frame_type, RECEIVE_DEFAULT[state])


def send_disposition(state: SessionState, frame_type: FrameType) -> SendDisposition:
    """Return what sending ``frame_type`` in ``state`` does."""
    if frame_type in SEND_ALLOWED[state]:
        return SendDisposition.SEND
    return SEND_OTHERWISE[state]
