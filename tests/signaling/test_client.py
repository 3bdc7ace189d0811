"""``signaling.client``: URL and subprotocols, meeting/attendee JSON, and the asyncio shell.

The shell is driven through an in-memory transport whose other end is the real server core
(:class:`~signaling.session.SignalingSession`), so no socket is opened.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from mediaserver.errors import InvalidArgument, InvalidState
from signaling import SignalingSession
from signaling.client import (
    CLIENT_SOURCE,
    SignalingClient,
    SignalingClosedError,
    SignalingTransport,
    audio_send_stream,
    content_share_info,
    parse_join_info,
    receive_stream_ids_for,
    signaling_subprotocols,
    signaling_url,
)
from signaling.events import (
    AudioMuteChanged,
    DataMessagesReceived,
    Event,
    JoinReceived,
    LeaveReceived,
    SubscribeReceived,
)
from signaling.messages import (
    AudioAttendeeState,
    AudioStreamIdInfo,
    DataMessage,
    JoinFlags,
    MediaType,
    StreamAllocation,
    StreamDescriptor,
    StreamServiceType,
    TrackMapping,
)

MEETING_ID = "6e8f0c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b"
ATTENDEE_ID = "a1b2c3d4-0000-4000-8000-000000000001"
TOKEN = "dG9rZW4tb25l"

MEETING: dict[str, Any] = {
    "Meeting": {
        "MeetingId": MEETING_ID,
        "ExternalMeetingId": "standup",
        "MediaRegion": "us-east-1",
        "MediaPlacement": {
            "AudioHostUrl": "127.0.0.1:4000",
            "SignalingUrl": f"ws://127.0.0.1:8080/control/{MEETING_ID}",
            "TurnControlUrl": "http://127.0.0.1:8080/v2/turn_sessions",
        },
    }
}
ATTENDEE: dict[str, Any] = {
    "Attendee": {"AttendeeId": ATTENDEE_ID, "ExternalUserId": "alice", "JoinToken": TOKEN}
}

OFFER = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 9 x 96\r\nm=video 9 x 96\r\n"

# Pure functions.


def test_url_is_the_signaling_url_plus_the_literal_query_and_two_search_params() -> None:
    url = signaling_url(
        f"ws://127.0.0.1:8080/control/{MEETING_ID}", sdk_version="3.32.0", user_agent="chrome-156"
    )
    assert url == (
        f"ws://127.0.0.1:8080/control/{MEETING_ID}"
        "?X-Chime-Control-Protocol-Version=3&X-Amzn-Chime-Send-Close-On-Error=1"
        "&X-Amzn-Version=3.32.0&X-Amzn-User-Agent=chrome-156"
    )


def test_url_parameters_are_form_encoded_like_url_search_params() -> None:
    url = signaling_url("wss://h/control/m", sdk_version="1.0 beta~1", user_agent="a/b&c")
    assert url.endswith("&X-Amzn-Version=1.0+beta%7E1&X-Amzn-User-Agent=a%2Fb%26c")


@pytest.mark.parametrize(
    "base",
    [
        "ws://h/control/m?x=1",
        "https://h/control/m",
        "/control/m",
        "ws:///control/m",
        "ws://h/control/m#f",
    ],
)
def test_url_rejects_a_signaling_url_the_js_client_would_break(base: str) -> None:
    with pytest.raises(InvalidArgument):
        signaling_url(base)


def test_subprotocols_carry_the_join_token_second() -> None:
    assert signaling_subprotocols(TOKEN) == ["_aws_wt_session", TOKEN]


def test_join_info_reads_the_wrapped_responses() -> None:
    info = parse_join_info(MEETING, ATTENDEE)
    assert info.meeting_id == MEETING_ID
    assert info.external_meeting_id == "standup"
    assert info.signaling_url == f"ws://127.0.0.1:8080/control/{MEETING_ID}"
    assert info.audio_host_url == "127.0.0.1:4000"
    assert info.turn_control_url == "http://127.0.0.1:8080/v2/turn_sessions"
    assert info.event_ingestion_url is None
    assert (info.attendee_id, info.external_user_id, info.join_token) == (
        ATTENDEE_ID,
        "alice",
        TOKEN,
    )


def _recase(value: Any, how: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {how(k): _recase(v, how) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    "how", [str.lower, str.upper, lambda k: k[0].lower() + k[1:]], ids=["lower", "upper", "camel"]
)
def test_join_info_keys_are_case_insensitive_and_wrappers_optional(
    how: Callable[[str], str],
) -> None:
    expected = parse_join_info(MEETING, ATTENDEE)
    bare_meeting = _recase(MEETING["Meeting"], how)
    bare_attendee = _recase(ATTENDEE["Attendee"], how)
    assert parse_join_info(bare_meeting, bare_attendee) == expected
    assert parse_join_info(_recase(MEETING, how), _recase(ATTENDEE, how)) == expected


def test_join_info_without_audio_host_is_video_only() -> None:
    meeting = {"Meeting": {**MEETING["Meeting"], "MediaPlacement": {"SignalingUrl": "ws://h/c/m"}}}
    assert parse_join_info(meeting, ATTENDEE).audio_host_url is None
    meeting["Meeting"]["MediaPlacement"]["AudioHostUrl"] = ""
    assert parse_join_info(meeting, ATTENDEE).audio_host_url is None


@pytest.mark.parametrize(
    ("meeting", "attendee", "missing"),
    [
        ({"MeetingId": MEETING_ID}, ATTENDEE, "MediaPlacement"),
        ({"MeetingId": MEETING_ID, "MediaPlacement": {}}, ATTENDEE, "signalingurl"),
        ({"MediaPlacement": {"SignalingUrl": "ws://h/c/m"}}, ATTENDEE, "meetingid"),
        (MEETING, {"AttendeeId": ATTENDEE_ID}, "jointoken"),
        (MEETING, {"JoinToken": TOKEN}, "attendeeid"),
        (MEETING, {"Attendee": "x"}, "not an object"),
    ],
)
def test_join_info_requires_what_the_js_client_dereferences(
    meeting: dict[str, Any], attendee: dict[str, Any], missing: str
) -> None:
    with pytest.raises(InvalidArgument, match=missing):
        parse_join_info(meeting, attendee)


def test_content_share_credentials_append_content_to_id_and_token() -> None:
    info = content_share_info(parse_join_info(MEETING, ATTENDEE))
    assert info.attendee_id == ATTENDEE_ID + "#content"
    assert info.join_token == TOKEN + "#content"
    assert info.external_user_id == "alice"
    client = SignalingClient(MEETING, ATTENDEE, content_share=True)
    assert client.subprotocols == ["_aws_wt_session", TOKEN + "#content"]
    assert client.attendee_id == ATTENDEE_ID + "#content"


def test_client_url_and_subprotocols() -> None:
    client = SignalingClient(MEETING, ATTENDEE, sdk_version="9.9.9", user_agent="python-3")
    assert client.url == (
        f"ws://127.0.0.1:8080/control/{MEETING_ID}?X-Chime-Control-Protocol-Version=3"
        "&X-Amzn-Chime-Send-Close-On-Error=1&X-Amzn-Version=9.9.9&X-Amzn-User-Agent=python-3"
    )
    assert client.subprotocols == ["_aws_wt_session", TOKEN]
    assert 1 <= client.audio_session_id < 2**32


def test_receive_stream_ids_have_one_entry_per_video_m_line_camera_first() -> None:
    assert receive_stream_ids_for(OFFER) == [0, 0]
    assert receive_stream_ids_for(OFFER, {1: 7, 0: 5}) == [0, 7]
    assert receive_stream_ids_for("v=0\r\nm=audio 9 x 111\r\n") == []


def test_audio_send_stream_is_the_js_placeholder() -> None:
    assert audio_send_stream("a") == StreamDescriptor(
        stream_id=1,
        group_id=1,
        attendee_id="a",
        media_type=MediaType.AUDIO,
        track_label="AmazonChimeExpressAudio",
        max_bitrate_kbps=600,
        avg_bitrate_bps=400000,
        framerate=15,
    )


# The asyncio shell against an in-memory server core.


class FakeGateway:
    """A transport whose far end is a ``SignalingSession`` run by a scripted handler."""

    def __init__(self, handler: Callable[[FakeGateway, Event], None]) -> None:
        self.session = SignalingSession(
            now=0.0, wall_clock=lambda: 1_700_000_000.0, idle_timeout=None, leave_linger=None
        )
        self.handler = handler
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.events: list[Event] = []
        self.url = ""
        self.subprotocols: list[str] = []
        self._close: Close | None = None
        self.client_close: int | None = None

    # SignalingTransport.

    async def send(self, message: bytes) -> None:
        if self._close is not None:
            raise ConnectionClosedOK(None, self._close)
        self.session.receive_frame(message, 0.0)
        for event in self.session.events_received():
            self.events.append(event)
            self.handler(self, event)
        self.pump()

    async def recv(self) -> bytes | str:
        item = await self.inbox.get()
        if item is None:
            assert self._close is not None
            if self._close.code == 1006:
                raise ConnectionClosedError(None, None)
            raise ConnectionClosedOK(self._close, None)
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._close is None:
            self.client_close = code
            self._close = Close(code, reason)
            self.inbox.put_nowait(None)

    @property
    def close_code(self) -> int | None:
        return self._close.code if self._close is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._close.reason if self._close is not None else None

    # Server-side helpers.

    def pump(self) -> None:
        for frame in self.session.frames_to_send():
            self.inbox.put_nowait(frame)
        code = self.session.close_code()
        if code is not None and self._close is None:
            self._close = Close(code, "")
            self.inbox.put_nowait(None)

    def end(self, status: int, code: int) -> None:
        self.session.end_session(status, code, now=0.0, delay=0.0)
        self.pump()
        self.session.handle_timer(0.0)
        self.pump()


def standard_server(gateway: FakeGateway, event: Event) -> None:
    """JOIN → JOIN_ACK, roster, INDEX; SUBSCRIBE → SUBSCRIBE_ACK; data messages fanned back."""
    session = gateway.session
    match event:
        case JoinReceived():
            session.send_join_ack()
            session.send_audio_stream_id_info(
                [
                    AudioStreamIdInfo(audio_stream_id=1, attendee_id="other", external_user_id="o"),
                    AudioStreamIdInfo(audio_stream_id=2, attendee_id=ATTENDEE_ID),
                ]
            )
            session.send_index([], num_participants=2)
        case SubscribeReceived():
            session.send_subscribe_ack(
                sdp_answer="v=0\r\nanswer\r\n",
                duplex=event.duplex,
                tracks=[TrackMapping(stream_id=0, ssrc=5, track_label="v_2")],
                allocations=[StreamAllocation(track_label="", stream_id=2, group_id=2)],
            )
        case DataMessagesReceived(messages=messages):
            session.send_data_messages(
                [
                    DataMessage(
                        topic=m.topic,
                        data=m.data,
                        lifetime_ms=m.lifetime_ms,
                        sender_attendee_id="other",
                        sender_external_user_id="o",
                        ingest_time_ns=1,
                    )
                    for m in messages
                ]
            )
        case _:
            pass


class Harness:
    def __init__(self, handler: Callable[[FakeGateway, Event], None] = standard_server) -> None:
        self.handler = handler
        self.gateways: list[FakeGateway] = []

    async def connect(
        self, url: str, subprotocols: list[str], timeout: float
    ) -> SignalingTransport:
        gateway = FakeGateway(self.handler)
        gateway.url, gateway.subprotocols = url, subprotocols
        self.gateways.append(gateway)
        return gateway

    @property
    def gateway(self) -> FakeGateway:
        return self.gateways[-1]


def make_client(harness: Harness, **options: Any) -> SignalingClient:
    return SignalingClient(MEETING, ATTENDEE, connector=harness.connect, **options)


async def test_join_sends_ping_then_join_and_waits_for_the_first_index() -> None:
    harness = Harness()
    client = make_client(harness, audio_session_id=1234)
    await client.connect(1.0)
    assert harness.gateway.url == client.url
    assert harness.gateway.subprotocols == ["_aws_wt_session", TOKEN]
    index = await client.join(1.0)
    assert index.num_participants == 2
    assert client.joined and client.join_ack is not None
    joins = [e for e in harness.gateway.events if isinstance(e, JoinReceived)]
    assert len(joins) == 1
    join = joins[0]
    assert (join.protocol_version, join.flags, join.audio_session_id) == (
        2,
        JoinFlags.HAS_STREAM_UPDATE,
        1234,
    )
    assert join.client_details.client_source == CLIENT_SOURCE
    assert join.wants_compressed_sdp is True
    assert client.pings_sent == 1
    await client.wait_for(lambda c: c.last_pong_id == 1, 1.0, "PONG")
    assert client.missed_pongs == 0
    assert client.present_attendees() == {"other": "o", ATTENDEE_ID: ATTENDEE_ID}
    assert {"connect_start", "ws_open", "join_sent", "join_ack", "index"} <= set(client.timings)
    await client.close()


async def test_subscribe_sends_the_browser_fields_and_returns_the_answer() -> None:
    harness = Harness()
    client = make_client(harness)
    await client.connect(1.0)
    await client.join(1.0)
    await client.set_muted(True)
    ack = await client.subscribe(OFFER, timeout=1.0)
    assert ack.sdp_answer == "v=0\r\nanswer\r\n"
    assert ack.compressed is False
    assert ack.allocations == (StreamAllocation(track_label="", stream_id=2, group_id=2),)
    sub = next(e for e in harness.gateway.events if isinstance(e, SubscribeReceived))
    assert sub.sdp_offer == OFFER
    assert sub.duplex is StreamServiceType.RX
    assert sub.send_streams == (audio_send_stream(ATTENDEE_ID),)
    assert sub.receive_stream_ids == (0, 0)
    assert sub.audio_host == "127.0.0.1:4000"
    assert sub.audio_checkin is False
    assert sub.audio_muted is True
    assert AudioMuteChanged(muted=True) in harness.gateway.events
    await client.close()


async def test_compressed_sdp_is_used_when_join_ack_asks_for_it() -> None:
    answers = ["v=0\r\nfirst answer\r\n", "v=0\r\nfirst answer\r\nsecond\r\n"]
    offers: list[str] = []

    def server(gateway: FakeGateway, event: Event) -> None:
        session = gateway.session
        match event:
            case JoinReceived():
                session.send_join_ack(wants_compressed_sdp=True)
                session.send_index([])
            case SubscribeReceived(compressed_sdp_offer=compressed):
                assert compressed is not None and event.sdp_offer in (None, "")
                offers.append(zlib.decompressobj(wbits=-15).decompress(compressed).decode())
                answer = answers[len(offers) - 1]
                if len(offers) == 1:
                    c = zlib.compressobj(wbits=-15)
                else:
                    c = zlib.compressobj(wbits=-15, zdict=answers[0].encode())
                session.send_subscribe_ack(
                    compressed_sdp_answer=c.compress(answer.encode()) + c.flush()
                )
            case _:
                pass

    client = make_client(Harness(server))
    await client.connect(1.0)
    await client.join(1.0)
    first = await client.subscribe(OFFER, timeout=1.0)
    second = await client.subscribe(OFFER + "x\r\n", timeout=1.0)
    assert offers == [OFFER, OFFER + "x\r\n"]
    assert (first.sdp_answer, second.sdp_answer) == (answers[0], answers[1])
    assert first.compressed and second.compressed
    await client.close()


async def test_data_messages_are_validated_like_the_js_client() -> None:
    harness = Harness()
    client = make_client(harness)
    with pytest.raises(InvalidState):
        await client.send_data_message("chat", "hi")
    await client.connect(1.0)
    await client.join(1.0)
    cases: list[tuple[str, bytes | str, int]] = [
        ("bad topic", "x", 0),
        ("a" * 37, "x", 0),
        ("chat", b"x" * 2049, 0),
        ("chat", "x", -1),
    ]
    for topic, data, lifetime in cases:
        with pytest.raises(InvalidArgument):
            await client.send_data_message(topic, data, lifetime)
    await client.send_data_message("chat", "héllo", 1000)
    await client.wait_for(lambda c: len(c.data_messages) == 1, 1.0)
    message = client.data_messages[0]
    assert (message.topic, message.data, message.sender_attendee_id) == (
        "chat",
        "héllo".encode(),
        "other",
    )
    await client.close()


async def test_roster_follows_audio_stream_id_info_rules() -> None:
    harness = Harness()
    client = make_client(harness)
    await client.connect(1.0)
    await client.join(1.0)
    session = harness.gateway.session

    def send(*streams: AudioStreamIdInfo) -> None:
        session.send_audio_stream_id_info(streams)
        harness.gateway.pump()

    send(AudioStreamIdInfo(audio_stream_id=1, muted=True))
    await client.wait_for(lambda c: c.roster["other"].muted is True, 1.0)
    # A newer stream id replaces the old one without a presence flap; the old id leaving is
    # then not reported.
    send(AudioStreamIdInfo(audio_stream_id=5, attendee_id="other", external_user_id="o"))
    send(AudioStreamIdInfo(audio_stream_id=1))
    send(AudioStreamIdInfo(audio_stream_id=5, muted=False))
    await client.wait_for(lambda c: c.roster["other"].muted is False, 1.0)
    assert client.roster["other"].present and client.roster["other"].audio_stream_id == 5
    send(AudioStreamIdInfo(audio_stream_id=5, dropped=True))
    await client.wait_for(lambda c: not c.roster["other"].present, 1.0)
    assert client.roster["other"].dropped is True
    assert [p for p in client.presence_log if p[0] == "other"] == [
        ("other", True),
        ("other", False),
    ]
    session.send_audio_metadata([AudioAttendeeState(audio_stream_id=2, volume=20)])
    session.send_audio_status(200)
    harness.gateway.pump()
    await client.wait_for(lambda c: c.audio_status == 200, 1.0)
    assert client.audio_metadata[2].volume == 20
    await client.close()


async def test_leave_waits_for_leave_ack_then_closes() -> None:
    harness = Harness()
    client = make_client(harness)
    await client.connect(1.0)
    await client.join(1.0)
    await client.leave(1.0)
    assert client.leave_acked
    assert client.closed_by_client and client.close_code == 1000
    assert harness.gateway.client_close == 1000
    assert any(isinstance(e, LeaveReceived) for e in harness.gateway.events)
    assert not client.is_open
    await client.leave(1.0)  # idempotent


async def test_server_end_session_gives_status_then_close_code() -> None:
    harness = Harness()
    client = make_client(harness)
    await client.connect(1.0)
    await client.join(1.0)
    harness.gateway.end(411, 4403)
    assert await client.wait_closed(1.0) == 4403
    assert client.audio_statuses == [411]
    assert not client.closed_by_client
    with pytest.raises(InvalidState):
        await client.set_muted(True)
    await client.close()


async def test_a_close_before_the_index_fails_the_join() -> None:
    def reject(gateway: FakeGateway, event: Event) -> None:
        if isinstance(event, JoinReceived):
            gateway.session.close(4410)

    client = make_client(Harness(reject))
    await client.connect(1.0)
    with pytest.raises(SignalingClosedError) as info:
        await client.join(1.0)
    assert info.value.code == 4410
    assert "4410" in str(info.value)
    await client.close()


async def test_join_times_out_without_an_index() -> None:
    client = make_client(Harness(lambda g, e: None))
    await client.connect(1.0)
    with pytest.raises(TimeoutError, match="INDEX"):
        await client.join(0.05)
    await client.close()


async def test_an_abnormal_close_reads_as_1006() -> None:
    harness = Harness()
    client = make_client(harness)
    await client.connect(1.0)
    await client.join(1.0)
    await harness.gateway.close(1006)
    assert await client.wait_closed(1.0) == 1006


async def test_reconnect_reuses_the_audio_session_id_and_reads_a_full_roster() -> None:
    harness = Harness()
    client = make_client(harness)
    await client.connect(1.0)
    await client.join(1.0)
    assert client.roster["other"].present

    def second(gateway: FakeGateway, event: Event) -> None:
        if isinstance(event, JoinReceived):
            gateway.session.send_audio_stream_id_info(
                [AudioStreamIdInfo(audio_stream_id=9, attendee_id=ATTENDEE_ID)]
            )
            gateway.session.send_index([])

    harness.handler = second
    await client.reconnect(1.0)
    assert len(harness.gateways) == 2 and client.connections == 2
    assert harness.gateways[0].client_close == 1000
    joins = [e for g in harness.gateways for e in g.events if isinstance(e, JoinReceived)]
    assert [j.audio_session_id for j in joins] == [client.audio_session_id] * 2
    assert client.pings_sent == 1  # ping ids restart per socket
    await client.wait_for(lambda c: not c.roster["other"].present, 1.0)
    assert client.roster[ATTENDEE_ID].present
    assert client.roster[ATTENDEE_ID].audio_stream_id == 9
    with pytest.raises(InvalidState):
        await client.connect(1.0)
    await client.close()


async def test_listener_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Event] = []

    def broken(event: Event) -> None:
        seen.append(event)
        raise RuntimeError("boom")

    client = make_client(Harness())
    client.add_listener(broken)
    await client.connect(1.0)
    await client.join(1.0)
    assert seen
    assert "listener failed" in caplog.text
    await client.close()
