"""``SignalingClient``: the asyncio client shell, joining a meeting as ``amazon-chime-sdk-js`` does.

The protocol lives in :class:`~signaling.client_session.ClientSignalingSession` (sans I/O); this
module only opens the WebSocket, feeds received messages to that core, flushes its frames, runs
the 10 s ping timer and keeps what the server told us (roster, INDEX, data messages, statuses,
close code) as plain attributes that tests and bots can poll with :meth:`SignalingClient.wait_for`.

Section numbers refer to ``chime-signaling-protocol.md``:

* the URL and the subprotocol auth are built by :func:`signaling_url` and
  :func:`signaling_subprotocols` (section 1.1);
* the meeting and attendee JSON is read by :func:`parse_join_info` exactly as
  ``MeetingSessionConfiguration`` reads it (section 1): keys in any case, wrapper optional;
* :meth:`SignalingClient.join` and :meth:`SignalingClient.subscribe` follow section 3.2/3.3;
* the roster follows the ``AUDIO_STREAM_ID_INFO`` rules of section 5.1;
* :meth:`SignalingClient.leave` follows section 6.4.

Every wait has a timeout. The only timer that sleeps is the ping interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import platform
import re
import secrets
import ssl
import sys
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import quote_plus, urlsplit

from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from mediaserver.errors import InvalidArgument, InvalidState
from signaling.client_session import ClientSignalingSession
from signaling.events import (
    AudioMetadataReceived,
    AudioStatusReceived,
    AudioStreamIdInfoReceived,
    BitratesReceived,
    DataMessagesReceived,
    ErrorStatusReceived,
    Event,
    FrameRejected,
    IndexReceived,
    JoinAckReceived,
    LeaveAckReceived,
    NotificationReceived,
    PauseReceived,
    PongReceived,
    ResumeReceived,
    SubscribeAckReceived,
)
from signaling.messages import (
    AudioAttendeeState,
    AudioStreamIdInfo,
    ClientDetails,
    DataMessage,
    JoinFlags,
    MediaType,
    ServerSideNetworkAdaption,
    StreamAllocation,
    StreamDescriptor,
    StreamServiceType,
    TrackMapping,
    VideoSubscriptionConfiguration,
)
from signaling.session import validate_data_message

__all__ = [
    "CLIENT_SOURCE",
    "CONTENT_SUFFIX",
    "DEFAULT_SDK_VERSION",
    "SUBPROTOCOL",
    "Connector",
    "JoinInfo",
    "RosterEntry",
    "SignalingClient",
    "SignalingClosedError",
    "SignalingTransport",
    "SubscribeAck",
    "audio_send_stream",
    "client_details",
    "content_share_info",
    "parse_join_info",
    "receive_stream_ids_for",
    "signaling_subprotocols",
    "signaling_url",
    "websockets_connector",
]

logger = logging.getLogger(__name__)

SUBPROTOCOL = "_aws_wt_session"
"""First entry of the subprotocol list; the join token is the second (section 1.1)."""

CONTENT_SUFFIX = "#content"
"""Appended to the attendee id and to the join token of a content-share session (section 4.7)."""

CLIENT_SOURCE = "carillon-python"
"""``client_details.client_source`` (the JS client sends ``amazon-chime-sdk-js``)."""

DEFAULT_SDK_VERSION = "0.1.0"
"""``X-Amzn-Version`` and ``client_details.chime_sdk_version``: Carillon's own version."""

DEFAULT_USER_AGENT = f"python-{sys.version_info.major}"
"""``X-Amzn-User-Agent``: ``<browser>-<major>`` on the JS client, here ``python-3``."""

PROTOCOL_QUERY = "X-Chime-Control-Protocol-Version=3&X-Amzn-Chime-Send-Close-On-Error=1"
"""The literal query the JS client appends to ``SignalingUrl`` (section 1.1)."""

PING_INTERVAL = 10.0
"""Seconds between PINGs; the first goes out as soon as the socket opens (section 5.6)."""

DEFAULT_TIMEOUT = 15.0
"""The JS client's ``connectionTimeoutMs`` and LEAVE_ACK wait (sections 3.1 and 6.4)."""

CLOSE_WAIT = 2.0
"""How long the JS client gives the close handshake after it closes (section 6.4)."""

MAX_DICTIONARY = 31744
"""The previous answer used as DEFLATE dictionary is cut to this many characters (section 3.2)."""

AUDIO_TRACK_LABEL = "AmazonChimeExpressAudio"

_M_LINE = re.compile(r"^m=(\w+) ", re.MULTILINE)


class SignalingClosedError(ConnectionError):
    """The signaling WebSocket closed while the client waited for something.

    Attributes:
        code: the close code received from the server (1006 when there was none).
        reason: the close reason received from the server.
        waiting_for: what the client was waiting for, for messages.
    """

    def __init__(self, code: int | None, reason: str | None, waiting_for: str) -> None:
        super().__init__(code, reason, waiting_for)
        self.code = code
        self.reason = reason
        self.waiting_for = waiting_for

    def __str__(self) -> str:
        return f"signaling closed with {self.code} ({self.reason!r}) while {self.waiting_for}"


# The meeting and attendee JSON (section 1).


@dataclass(frozen=True, slots=True)
class JoinInfo:
    """What the JS client reads from the CreateMeeting and CreateAttendee responses."""

    meeting_id: str
    signaling_url: str
    attendee_id: str
    join_token: str
    external_user_id: str | None = None
    external_meeting_id: str | None = None
    audio_host_url: str | None = None
    """Empty or absent means a video-only session (no audio transceiver, section 1)."""
    turn_control_url: str | None = None
    event_ingestion_url: str | None = None


def _lower_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _unwrap(obj: Mapping[str, Any], wrapper: str, what: str) -> Mapping[str, Any]:
    lowered = _lower_keys(obj)
    inner = lowered.get(wrapper, lowered)
    if not isinstance(inner, Mapping):
        raise InvalidArgument(f"the {what} JSON is not an object")
    return inner


def _required(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"the {what} JSON has no {key}")
    return value


def _optional(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def parse_join_info(meeting: Mapping[str, Any], attendee: Mapping[str, Any]) -> JoinInfo:
    """Read the CreateMeeting / CreateAttendee JSON as ``MeetingSessionConfiguration`` does.

    Keys are matched in any case, and the ``{"Meeting": …}`` / ``{"Attendee": …}`` wrappers
    are optional (section 1).

    Args:
        meeting: the meeting object, wrapped or bare.
        attendee: the attendee object, wrapped or bare.

    Returns:
        The fields the client uses.

    Raises:
        InvalidArgument: ``MediaPlacement``, ``MeetingId``, ``SignalingUrl``, ``AttendeeId``
            or ``JoinToken`` is missing (the JS client dereferences them without a guard).
    """
    m = _unwrap(meeting, "meeting", "meeting")
    a = _unwrap(attendee, "attendee", "attendee")
    placement = m.get("mediaplacement")
    if not isinstance(placement, Mapping):
        raise InvalidArgument("the meeting JSON has no MediaPlacement")
    return JoinInfo(
        meeting_id=_required(m, "meetingid", "meeting"),
        signaling_url=_required(placement, "signalingurl", "meeting"),
        attendee_id=_required(a, "attendeeid", "attendee"),
        join_token=_required(a, "jointoken", "attendee"),
        external_user_id=_optional(a, "externaluserid"),
        external_meeting_id=_optional(m, "externalmeetingid"),
        audio_host_url=_optional(placement, "audiohosturl") or None,
        turn_control_url=_optional(placement, "turncontrolurl"),
        event_ingestion_url=_optional(placement, "eventingestionurl"),
    )


def content_share_info(info: JoinInfo) -> JoinInfo:
    """The credentials of the content-share session of ``info`` (section 4.7).

    The attendee id and the join token get ``#content`` appended; the external user id and
    the URLs stay the same.
    """
    return replace(
        info,
        attendee_id=info.attendee_id + CONTENT_SUFFIX,
        join_token=info.join_token + CONTENT_SUFFIX,
    )


def _form_encode(value: str) -> str:
    # URLSearchParams serializes with application/x-www-form-urlencoded, which leaves only
    # ASCII alphanumerics and "*-._" unescaped and writes a space as "+".
    return quote_plus(value, safe="*").replace("~", "%7E")


def signaling_url(
    base: str,
    *,
    sdk_version: str = DEFAULT_SDK_VERSION,
    user_agent: str = DEFAULT_USER_AGENT,
) -> str:
    """Build the WebSocket URL the JS client opens (section 1.1).

    The literal protocol query is appended after an unconditional ``?``, then
    ``X-Amzn-Version`` and ``X-Amzn-User-Agent`` are appended as URLSearchParams would.

    Args:
        base: ``MediaPlacement.SignalingUrl``.
        sdk_version: the ``X-Amzn-Version`` value.
        user_agent: the ``X-Amzn-User-Agent`` value (``<browser>-<major>``).

    Raises:
        InvalidArgument: ``base`` is not an absolute ``ws``/``wss`` URL or has a query
            string (the JS client would build a broken URL from it).
    """
    parts = urlsplit(base)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise InvalidArgument(f"SignalingUrl {base!r} is not an absolute ws:// or wss:// URL")
    if "?" in base or "#" in base:
        raise InvalidArgument(f"SignalingUrl {base!r} must not have a query or fragment")
    return (
        f"{base}?{PROTOCOL_QUERY}"
        f"&X-Amzn-Version={_form_encode(sdk_version)}"
        f"&X-Amzn-User-Agent={_form_encode(user_agent)}"
    )


def signaling_subprotocols(join_token: str) -> list[str]:
    """The subprotocol list carrying the join token: ``['_aws_wt_session', <JoinToken>]``."""
    return [SUBPROTOCOL, join_token]


def _utc_offset() -> str:
    offset = datetime.datetime.now().astimezone().utcoffset() or datetime.timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def client_details(
    *,
    sdk_version: str = DEFAULT_SDK_VERSION,
    app_name: str | None = None,
    app_version: str | None = None,
) -> ClientDetails:
    """The JOIN ``client_details`` of this client (section 3.2), with Python as the platform."""
    return ClientDetails(
        app_name=app_name,
        app_version=app_version,
        platform_name="python",
        platform_version=platform.python_version(),
        client_source=CLIENT_SOURCE,
        chime_sdk_version=sdk_version,
        client_utc_offset=_utc_offset(),
        os_name=platform.system() or None,
        os_version=platform.release() or None,
    )


def audio_send_stream(attendee_id: str) -> StreamDescriptor:
    """Entry 0 of SUBSCRIBE ``send_streams``: the JS client's placeholder audio descriptor."""
    return StreamDescriptor(
        stream_id=1,
        group_id=1,
        attendee_id=attendee_id,
        media_type=MediaType.AUDIO,
        track_label=AUDIO_TRACK_LABEL,
        max_bitrate_kbps=600,
        avg_bitrate_bps=400000,
        framerate=15,
    )


def receive_stream_ids_for(sdp: str, subscriptions: Mapping[int, int] | None = None) -> list[int]:
    """SUBSCRIBE ``receive_stream_ids``: one per video m-line of ``sdp``, in m-line order.

    Args:
        sdp: the offer.
        subscriptions: video m-line position (0 is the camera slot) → remote stream id.

    Returns:
        The list, 0 for the camera slot and for every m-line without a subscription
        (section 3.3).
    """
    count = sum(1 for kind in _M_LINE.findall(sdp) if kind == "video")
    wanted = dict(subscriptions or {})
    return [0 if k == 0 else wanted.get(k, 0) for k in range(count)]


# Observable state.


@dataclass(slots=True)
class RosterEntry:
    """One attendee as the client knows it from ``AUDIO_STREAM_ID_INFO`` (section 5.1)."""

    attendee_id: str
    external_user_id: str
    audio_stream_id: int
    present: bool = True
    muted: bool | None = None
    """``None`` until a ``muted`` field arrived for this attendee."""
    dropped: bool | None = None
    """After a departure: true if the attendee dropped, false on a clean leave."""


@dataclass(frozen=True, slots=True)
class SubscribeAck:
    """The decoded SUBSCRIBE_ACK (section 3.3)."""

    sdp_answer: str
    """Plain text, decompressed if the server sent ``compressed_sdp_answer``."""
    tracks: tuple[TrackMapping, ...]
    allocations: tuple[StreamAllocation, ...]
    duplex: StreamServiceType | None
    compressed: bool


class SignalingTransport(Protocol):
    """The part of a websockets ``ClientConnection`` the client uses (fakes implement it)."""

    async def send(self, message: bytes) -> None: ...

    async def recv(self) -> bytes | str: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...


Connector = Callable[[str, list[str], float], Awaitable[SignalingTransport]]
"""``(url, subprotocols, open_timeout) → connected transport``; raises on handshake failure."""


def websockets_connector(ssl_context: ssl.SSLContext | None = None) -> Connector:
    """The default :data:`Connector`: ``websockets`` with ``ssl_context`` for ``wss://``
    URLs (``None``: the system's trusted certificates)."""

    async def connect(url: str, subprotocols: list[str], open_timeout: float) -> SignalingTransport:
        # Like a browser: no WebSocket-level keepalive pings (the protocol has its own), and
        # no proxy from the environment.
        connection = await websockets_connect(
            url,
            subprotocols=[Subprotocol(p) for p in subprotocols],
            open_timeout=open_timeout,
            ping_interval=None,
            close_timeout=CLOSE_WAIT,
            proxy=None,
            ssl=ssl_context if url.startswith("wss:") else None,
        )
        return connection

    return connect


@dataclass(slots=True)
class _Waiter:
    predicate: Callable[[], bool]
    future: asyncio.Future[None] = field(repr=False)


class SignalingClient:
    """One attendee's signaling connection, as ``amazon-chime-sdk-js`` runs it.

    Args:
        meeting: CreateMeeting / GetMeeting JSON (wrapped or bare, keys in any case).
        attendee: CreateAttendee JSON (wrapped or bare, keys in any case).
        content_share: join as the content-share session of the attendee (section 4.7).
        sdk_version: ``X-Amzn-Version`` and ``chime_sdk_version``.
        user_agent: ``X-Amzn-User-Agent``.
        details: JOIN ``client_details``; defaults to :func:`client_details`.
        audio_session_id: JOIN ``audio_session_id``; random uint32 by default, kept for
            every reconnect of this client.
        wants_compressed_sdp: sent in JOIN (the JS client sends true); SDPs are compressed
            only if the JOIN_ACK also says true.
        ping_interval: seconds between PINGs.
        connector: opens the transport; defaults to ``websockets.asyncio.client.connect``.
        ssl_context: how the default connector checks a ``wss://`` server's certificate
            (``None``: the system's trusted certificates).
        wall_clock: epoch seconds for ``timestamp_ms``.

    Attributes:
        info: the credentials and URLs in use.
        audio_session_id: see above.
        muted: the local mute state (sent in AUDIO_CONTROL and SUBSCRIBE).
        roster: attendee id → :class:`RosterEntry`.
        data_messages: every DATA_MESSAGE received, oldest first.
        index: the latest INDEX (``None`` before the first one on this socket).
        join_ack: the JOIN_ACK of this socket, if it came before the first INDEX.
        subscribe_ack: the latest SUBSCRIBE_ACK.
        audio_metadata: audio stream id → its latest AUDIO_METADATA entry.
        audio_statuses: every ``AUDIO_STATUS`` value, oldest first.
        error_statuses: every frame ``error`` received.
        notifications: every NOTIFICATION received.
        bitrates: the latest BITRATES.
        paused_groups: video group ids the server paused (S→C PAUSE, section 4.6) and has
            not resumed; only sent with server-side adaption.
        pause_log: ``(group_id, paused)`` for every S→C PAUSE/RESUME, oldest first.
        close_code / close_reason: what the server closed the socket with (1006 if it
            vanished), ``None`` while open.
        closed_by_client: true if this client closed the socket.
        pings_sent / last_pong_id: ping bookkeeping of the current socket.
        presence_log: ``(attendee_id, present)`` for every presence change, oldest first.
        events: the most recent events received (bounded).
        timings: monotonic times of ``connect_start``, ``ws_open``, ``join_sent``,
            ``join_ack``, ``index``, ``subscribe_sent``, ``subscribe_ack``, ``leave_sent``,
            ``leave_ack`` and ``closed`` for the current socket.
        connections: how many sockets this client opened.
    """

    def __init__(
        self,
        meeting: Mapping[str, Any],
        attendee: Mapping[str, Any],
        *,
        content_share: bool = False,
        sdk_version: str = DEFAULT_SDK_VERSION,
        user_agent: str = DEFAULT_USER_AGENT,
        details: ClientDetails | None = None,
        audio_session_id: int | None = None,
        wants_compressed_sdp: bool = True,
        server_side_adaption: bool = False,
        ping_interval: float = PING_INTERVAL,
        connector: Connector | None = None,
        ssl_context: ssl.SSLContext | None = None,
        wall_clock: Callable[[], float] = time.time,
        event_log_size: int = 10000,
    ) -> None:
        info = parse_join_info(meeting, attendee)
        self.info = content_share_info(info) if content_share else info
        self.content_share = content_share
        self.sdk_version = sdk_version
        self.user_agent = user_agent
        self.details = details or client_details(sdk_version=sdk_version)
        self.audio_session_id = (
            audio_session_id if audio_session_id is not None else secrets.randbelow(2**32 - 1) + 1
        )
        self.wants_compressed_sdp = wants_compressed_sdp
        self.server_side_adaption = server_side_adaption
        """JOIN asks for server-side quality adaption as VideoPriorityBasedPolicy does (§3.2)."""
        self.ping_interval = ping_interval
        self._connector = connector or websockets_connector(ssl_context)
        self._wall_clock = wall_clock
        self.log = logging.LoggerAdapter(
            logger, {"meeting": self.info.meeting_id, "attendee": self.info.attendee_id}
        )
        self.debug = logger.isEnabledFor(logging.DEBUG)

        self.muted = False
        self.roster: dict[str, RosterEntry] = {}
        self._stream_to_attendee: dict[int, str] = {}
        self._full_roster_pending = False
        self.presence_log: list[tuple[str, bool]] = []
        self.data_messages: list[DataMessage] = []
        self.audio_metadata: dict[int, AudioAttendeeState] = {}
        self.audio_statuses: list[int | None] = []
        self.error_statuses: list[ErrorStatusReceived] = []
        self.notifications: list[NotificationReceived] = []
        self.bitrates: BitratesReceived | None = None
        self.paused_groups: set[int] = set()
        self.pause_log: list[tuple[int, bool]] = []
        self.events: deque[Event] = deque(maxlen=event_log_size)
        self.connections = 0
        self._listeners: list[Callable[[Event], None]] = []
        self._waiters: list[_Waiter] = []
        self._reset_socket_state()

    def _reset_socket_state(self) -> None:
        self._session = ClientSignalingSession(wall_clock=self._wall_clock)
        self._transport: SignalingTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self.join_ack: JoinAckReceived | None = None
        self.index: IndexReceived | None = None
        self.index_count = 0
        self.subscribe_ack: SubscribeAck | None = None
        self._subscribe_ack_count = 0
        self._compress = False
        self._previous_answer = ""
        self.leave_acked = False
        self.left = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_by_client = False
        self.pings_sent = 0
        self.last_pong_id = 0
        self.last_pong_timestamp_ms: int | None = None
        self.timings: dict[str, float] = {}

    # Introspection.

    @property
    def url(self) -> str:
        """The WebSocket URL this client opens."""
        return signaling_url(
            self.info.signaling_url, sdk_version=self.sdk_version, user_agent=self.user_agent
        )

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocol list this client offers."""
        return signaling_subprotocols(self.info.join_token)

    @property
    def attendee_id(self) -> str:
        return self.info.attendee_id

    @property
    def is_open(self) -> bool:
        """True while the socket is connected."""
        return self._transport is not None and self.close_code is None

    @property
    def joined(self) -> bool:
        """True once the first INDEX arrived on the current socket (section 3.2)."""
        return self.index is not None

    @property
    def audio_status(self) -> int | None:
        """The last ``AUDIO_STATUS`` value received."""
        return self.audio_statuses[-1] if self.audio_statuses else None

    @property
    def index_sources(self) -> tuple[StreamDescriptor, ...]:
        """The video sources of the latest INDEX."""
        return self.index.sources if self.index is not None else ()

    @property
    def missed_pongs(self) -> int:
        """Pings sent on this socket since the last answered one."""
        return self.pings_sent - self.last_pong_id

    def present_attendees(self) -> dict[str, str]:
        """Attendee id → external user id of everyone currently present."""
        return {a: e.external_user_id for a, e in self.roster.items() if e.present}

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event received; its exceptions are logged, not raised."""
        self._listeners.append(listener)

    # Waiting.

    async def wait_for(
        self,
        predicate: Callable[[SignalingClient], bool],
        timeout: float,
        what: str = "",
    ) -> None:
        """Wait until ``predicate(self)`` is true; it is checked after every received frame.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        if predicate(self):
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(lambda: predicate(self), loop.create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except TimeoutError:
            raise TimeoutError(
                f"{self.attendee_id}: timed out after {timeout} s waiting for {what or predicate}"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def _wait_or_closed(
        self,
        predicate: Callable[[SignalingClient], bool],
        timeout: float,
        what: str,
    ) -> None:
        await self.wait_for(lambda c: predicate(c) or c.close_code is not None, timeout, what)
        if not predicate(self):
            raise SignalingClosedError(self.close_code, self.close_reason, f"waiting for {what}")

    async def wait_closed(self, timeout: float) -> int | None:
        """Wait until the socket is closed; return the close code."""
        await self.wait_for(lambda c: c.close_code is not None, timeout, "the socket to close")
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=timeout)
        return self.close_code

    def _notify(self) -> None:
        for waiter in list(self._waiters):
            if waiter.future.done():
                continue
            try:
                if waiter.predicate():
                    waiter.future.set_result(None)
            except Exception as exc:  # a broken predicate fails its own wait only
                waiter.future.set_exception(exc)

    # Commands.

    async def connect(
        self, timeout: float = DEFAULT_TIMEOUT, *, reconnecting: bool = False
    ) -> None:
        """Open the socket (section 1.1), start reading and send the first PING.

        Args:
            timeout: for the WebSocket upgrade.
            reconnecting: this socket replaces an earlier one of the same session, so the
                first AUDIO_STREAM_ID_INFO on it is a complete roster (section 5.1).

        Raises:
            InvalidState: a socket is already open.
            TimeoutError, OSError, websockets.exceptions.InvalidHandshake: the upgrade failed.
        """
        if self.is_open:
            raise InvalidState("the signaling socket is already open")
        self._reset_socket_state()
        self._full_roster_pending = reconnecting and bool(self.roster)
        self.timings["connect_start"] = time.monotonic()
        url, subprotocols = self.url, self.subprotocols
        if self.debug:
            self.log.debug("connecting to %s", url)
        async with asyncio.timeout(timeout):
            self._transport = await self._connector(url, subprotocols, timeout)
        self.timings["ws_open"] = time.monotonic()
        self.connections += 1
        self._reader = asyncio.create_task(self._read_loop(self._transport))
        self._pinger = asyncio.create_task(self._ping_loop())

    async def join(self, timeout: float = DEFAULT_TIMEOUT) -> IndexReceived:
        """Send JOIN and wait for the first INDEX, reading a JOIN_ACK that precedes it.

        Returns:
            The first INDEX.

        Raises:
            SignalingClosedError: the server closed the socket first (e.g. 4403, 4410).
            TimeoutError: no INDEX in ``timeout`` seconds.
        """
        self._require_open()
        adaption = ServerSideNetworkAdaption
        self._session.send_join(
            audio_session_id=self.audio_session_id,
            client_details=self.details,
            protocol_version=2,
            flags=JoinFlags.HAS_STREAM_UPDATE,
            wants_compressed_sdp=self.wants_compressed_sdp,
            # What VideoPriorityBasedPolicy's JOIN asks for (section 3.2).
            server_side_network_adaption=(
                adaption.BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION
                if self.server_side_adaption
                else None
            ),
            supported_server_side_network_adaptions=(
                (
                    adaption.NONE,
                    adaption.BANDWIDTH_PROBING,
                    adaption.BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION,
                )
                if self.server_side_adaption
                else ()
            ),
        )
        self.timings["join_sent"] = time.monotonic()
        await self._flush()
        await self._wait_or_closed(lambda c: c.index is not None, timeout, "the first INDEX")
        assert self.index is not None
        return self.index

    async def subscribe(
        self,
        sdp_offer: str,
        *,
        receive_stream_ids: Sequence[int] | None = None,
        video_send_streams: Sequence[StreamDescriptor] = (),
        duplex: StreamServiceType | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> SubscribeAck:
        """Send SUBSCRIBE with ``sdp_offer`` and wait for the SUBSCRIBE_ACK (section 3.3).

        Args:
            sdp_offer: the complete offer, candidates included.
            receive_stream_ids: one per video m-line; by default all 0
                (:func:`receive_stream_ids_for`).
            video_send_streams: video descriptors after the audio one (camera on).
            duplex: RX by default, DUPLEX when ``video_send_streams`` is not empty.
            timeout: seconds to wait for the SUBSCRIBE_ACK.

        Raises:
            SignalingClosedError, TimeoutError.
        """
        self._require_open()
        send_streams: list[StreamDescriptor] = []
        if self.info.audio_host_url:
            send_streams.append(audio_send_stream(self.attendee_id))
        send_streams.extend(video_send_streams)
        if duplex is None:
            duplex = StreamServiceType.DUPLEX if video_send_streams else StreamServiceType.RX
        if receive_stream_ids is None:
            receive_stream_ids = receive_stream_ids_for(sdp_offer)
        compressed: bytes | None = None
        if self._compress:
            # Raw DEFLATE as pako.deflateRaw makes it, without a dictionary: the JS client
            # resets its "previous offer" to "" in compressed mode (section 3.2).
            compressor = zlib.compressobj(wbits=-15)
            compressed = compressor.compress(sdp_offer.encode()) + compressor.flush()
        before = self._subscribe_ack_count
        self._session.send_subscribe(
            sdp_offer="" if compressed is not None else sdp_offer,
            compressed_sdp_offer=compressed,
            duplex=duplex,
            send_streams=send_streams,
            receive_stream_ids=receive_stream_ids,
            audio_host=self.info.audio_host_url,
            audio_checkin=False,
            audio_muted=self.muted,
        )
        self.timings["subscribe_sent"] = time.monotonic()
        await self._flush()
        await self._wait_or_closed(
            lambda c: c._subscribe_ack_count > before, timeout, "SUBSCRIBE_ACK"
        )
        assert self.subscribe_ack is not None
        return self.subscribe_ack

    async def send_data_message(self, topic: str, data: bytes | str, lifetime_ms: int = 0) -> None:
        """Send one data message after the JS client's checks (section 5.4).

        Raises:
            InvalidArgument: bad topic, more than 2048 bytes, or a negative lifetime.
            InvalidState: the socket is not open.
        """
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if lifetime_ms < 0:
            raise InvalidArgument(f"lifetime_ms {lifetime_ms} is negative")
        message = DataMessage(topic=topic, data=payload, lifetime_ms=lifetime_ms)
        problem = validate_data_message(message)
        if problem is not None:
            raise InvalidArgument(problem)
        self._require_open()
        self._session.send_data_messages([message])
        await self._flush()

    async def update_remote_video(
        self,
        mid: str,
        stream_id: int,
        *,
        priority: int | None = None,
        target_bitrate_kbps: int | None = None,
    ) -> None:
        """REMOTE_VIDEO_UPDATE: forward ``stream_id`` on the video m-line ``mid`` from now
        on, without renegotiation (section 4.5; how a simulcast layer is switched). With
        server-side adaption the server picks the layer of that source itself, by
        ``priority`` (lower first) and within ``target_bitrate_kbps``."""
        self._require_open()
        config = VideoSubscriptionConfiguration(
            mid=mid,
            stream_id=stream_id,
            priority=priority,
            target_bitrate_kbps=target_bitrate_kbps,
        )
        self._session.send_remote_video_update(added_or_updated=[config])
        await self._flush()

    async def set_muted(self, muted: bool) -> None:
        """Mute or unmute locally: AUDIO_CONTROL now, ``audio_muted`` in later SUBSCRIBEs."""
        self._require_open()
        self.muted = muted
        self._session.send_audio_control(muted)
        await self._flush()

    async def leave(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Send LEAVE, wait for LEAVE_ACK or the socket closing (at most ``timeout``), close.

        Never raises for a server that does not answer: the JS client closes anyway.
        """
        if self.is_open:
            self._session.send_leave()
            self.left = True
            self.timings["leave_sent"] = time.monotonic()
            try:
                await self._flush()
                await self.wait_for(
                    lambda c: c.leave_acked or c.close_code is not None, timeout, "LEAVE_ACK"
                )
            except TimeoutError as exc:
                self.log.warning("no LEAVE_ACK: %s", exc)
        await self.close()

    async def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Close the socket from this side (no LEAVE) and stop the tasks. Idempotent."""
        if self._pinger is not None:
            self._pinger.cancel()
        transport = self._transport
        if transport is not None and self.close_code is None:
            self.closed_by_client = True
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await transport.close()
        if self._reader is not None and not self._reader.done():
            _, pending = await asyncio.wait({self._reader}, timeout=timeout)
            for stuck in pending:
                stuck.cancel()
        if self.close_code is None and transport is not None:
            self._record_close(transport)
        for task in (self._reader, self._pinger):
            if task is not None and task.done() and not task.cancelled():
                task.exception()  # retrieve it so asyncio does not log it
        self._notify()

    async def reconnect(self, timeout: float = DEFAULT_TIMEOUT) -> IndexReceived:
        """Close the old socket, open a new one and JOIN again with the same session id.

        The first AUDIO_STREAM_ID_INFO afterwards is read as a complete roster
        (section 5.1). The caller then subscribes again with a new offer.

        Returns:
            The first INDEX of the new socket.
        """
        await self.close()
        await self.connect(timeout, reconnecting=True)
        return await self.join(timeout)

    # Internals.

    def _require_open(self) -> None:
        if not self.is_open:
            raise InvalidState("the signaling socket is not open")

    async def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        async with self._send_lock:
            frames = self._session.frames_to_send()
            try:
                for frame in frames:
                    await transport.send(frame)
            except ConnectionClosed:
                # The reader records the close code; waits then fail with it.
                if self.debug:
                    self.log.debug("dropped %d frames: the socket is closed", len(frames))

    async def _ping_loop(self) -> None:
        while self.close_code is None:
            self._session.send_ping()
            self.pings_sent += 1
            await self._flush()
            await asyncio.sleep(self.ping_interval)

    async def _read_loop(self, transport: SignalingTransport) -> None:
        try:
            while True:
                message = await transport.recv()
                self._session.receive_frame(message)
                for event in self._session.events_received():
                    self._handle(event)
                await self._flush()  # PONGs answering server PINGs
                self._notify()
        except ConnectionClosed:
            pass
        except Exception:
            self.log.exception("signaling reader failed; closing")
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_WAIT):
                    await transport.close(1011, "client error")
        finally:
            self._record_close(transport)
            if self._pinger is not None:
                self._pinger.cancel()
            self._notify()

    def _record_close(self, transport: SignalingTransport) -> None:
        if self.close_code is not None:
            return
        self.close_code = transport.close_code if transport.close_code is not None else 1006
        self.close_reason = transport.close_reason
        self.timings["closed"] = time.monotonic()
        if self.debug:
            self.log.debug("closed with %s %r", self.close_code, self.close_reason)

    def _handle(self, event: Event) -> None:
        if self.debug:
            self.log.debug("< %s", event)
        self.events.append(event)
        now = time.monotonic()
        match event:
            case JoinAckReceived():
                # The JS client uses JOIN_ACK only if it arrives before the first INDEX.
                if self.index is None:
                    self.join_ack = event
                    self.timings["join_ack"] = now
                    self._compress = bool(self.wants_compressed_sdp and event.wants_compressed_sdp)
            case IndexReceived():
                if self.index is None:
                    self.timings["index"] = now
                self.index = event
                self.index_count += 1
            case SubscribeAckReceived():
                self._handle_subscribe_ack(event)
                self.timings["subscribe_ack"] = now
            case AudioStreamIdInfoReceived(streams=streams):
                self._handle_roster(streams)
            case AudioMetadataReceived(attendee_states=states):
                for state in states:
                    self.audio_metadata[state.audio_stream_id] = state
            case AudioStatusReceived(status=status):
                self.audio_statuses.append(status)
            case DataMessagesReceived(messages=messages):
                self.data_messages.extend(messages)
            case ErrorStatusReceived():
                self.error_statuses.append(event)
            case NotificationReceived():
                self.notifications.append(event)
            case BitratesReceived():
                self.bitrates = event
            case PauseReceived(group_ids=groups) | ResumeReceived(group_ids=groups):
                paused = isinstance(event, PauseReceived)
                for group_id in groups:
                    self.pause_log.append((group_id, paused))
                    if paused:
                        self.paused_groups.add(group_id)
                    else:
                        self.paused_groups.discard(group_id)
            case PongReceived(ping_id=ping_id, timestamp_ms=ts):
                # A reply to an older ping is ignored (section 5.6).
                if ping_id == self.pings_sent:
                    self.last_pong_id = ping_id
                    self.last_pong_timestamp_ms = ts
            case LeaveAckReceived():
                self.leave_acked = True
                self.timings["leave_ack"] = now
            case FrameRejected(reason=reason):
                self.log.warning("undecodable frame from the server: %s", reason)
            case _:
                pass
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                self.log.exception("signaling event listener failed")

    def _handle_subscribe_ack(self, event: SubscribeAckReceived) -> None:
        compressed = event.compressed_sdp_answer is not None and not event.sdp_answer
        if compressed:
            assert event.compressed_sdp_answer is not None
            # The dictionary is the previous plain-text answer on this socket, cut to its
            # first 31744 characters; empty after each JOIN (section 3.2).
            dictionary = self._previous_answer[:MAX_DICTIONARY].encode()
            decompressor = (
                zlib.decompressobj(wbits=-15, zdict=dictionary)
                if dictionary
                else zlib.decompressobj(wbits=-15)
            )
            answer = (
                decompressor.decompress(event.compressed_sdp_answer) + decompressor.flush()
            ).decode()
        else:
            answer = event.sdp_answer or ""
        self._previous_answer = answer
        self.subscribe_ack = SubscribeAck(
            sdp_answer=answer,
            tracks=event.tracks,
            allocations=event.allocations,
            duplex=event.duplex,
            compressed=compressed,
        )
        self._subscribe_ack_count += 1

    def _set_presence(self, entry: RosterEntry, present: bool) -> None:
        if entry.present != present:
            self.presence_log.append((entry.attendee_id, present))
        entry.present = present

    def _handle_roster(self, streams: Iterable[AudioStreamIdInfo]) -> None:
        streams = list(streams)
        if self._full_roster_pending:
            # After a reconnect the first roster frame is complete: whoever is missing left.
            self._full_roster_pending = False
            named = {s.attendee_id for s in streams if s.attendee_id}
            for known in self.roster.values():
                if known.present and known.attendee_id not in named:
                    known.dropped = False
                    self._set_presence(known, False)
        for info in streams:
            stream_id = info.audio_stream_id
            if info.attendee_id:
                self._stream_to_attendee[stream_id] = info.attendee_id
                entry = self.roster.get(info.attendee_id)
                external = info.external_user_id or info.attendee_id
                if entry is None:
                    entry = RosterEntry(info.attendee_id, external, stream_id, present=False)
                    self.roster[info.attendee_id] = entry
                    self._set_presence(entry, True)
                elif stream_id >= entry.audio_stream_id or not entry.present:
                    # A higher stream id for the same attendee replaces the older one, without
                    # a presence flap.
                    entry.audio_stream_id = stream_id
                    entry.external_user_id = external
                    entry.dropped = None
                    if not entry.present:
                        self._set_presence(entry, True)
            if info.muted is not None:
                attendee_id = self._stream_to_attendee.get(stream_id)
                if attendee_id is not None and attendee_id in self.roster:
                    self.roster[attendee_id].muted = info.muted
            if not info.attendee_id and info.muted is None:
                attendee_id = self._stream_to_attendee.get(stream_id)
                entry2 = self.roster.get(attendee_id) if attendee_id is not None else None
                # Not reported if the attendee already has a newer stream id.
                if entry2 is not None and entry2.audio_stream_id <= stream_id and entry2.present:
                    entry2.dropped = bool(info.dropped)
                    self._set_presence(entry2, False)
