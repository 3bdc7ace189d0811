"""Tests for signaling.session: the server side of one connection, driven without I/O."""

from __future__ import annotations

import pytest

from mediaserver.errors import LocalProtocolError
from signaling import signaling_pb2 as pb
from signaling.codec import decode_frame, encode_frame, new_frame
from signaling.events import (
    AudioMetadataReceived,
    AudioMuteChanged,
    AudioStatusReceived,
    AudioStreamIdInfoReceived,
    BitratesReceived,
    ClientMetricsReceived,
    CloseInitiated,
    ConnectionClosed,
    DataMessagesReceived,
    ErrorStatusReceived,
    FrameRejected,
    IndexReceived,
    JoinAckReceived,
    JoinReceived,
    LeaveAckReceived,
    LeaveReceived,
    MeetingSessionTimingReceived,
    NotificationReceived,
    PauseReceived,
    PongReceived,
    RemoteVideoUpdateReceived,
    ResumeReceived,
    SubscribeAckReceived,
    SubscribeReceived,
)
from signaling.messages import (
    AudioAttendeeState,
    AudioStatus,
    AudioStreamIdInfo,
    Bitrate,
    ClientDetails,
    CloseCode,
    DataMessage,
    FrameType,
    MediaType,
    NotificationLevel,
    RejectedDataMessage,
    ServerSideNetworkAdaption,
    StreamAllocation,
    StreamDescriptor,
    StreamServiceType,
    TrackMapping,
    TurnCredentials,
    VideoCodecCapability,
    VideoQualityAdaptationPreference,
    VideoSubscriptionConfiguration,
)
from signaling.session import SignalingSession, validate_data_message
from signaling.states import SessionState
from tests.helpers.clock import FakeClock
from tests.helpers.signaling_pair import SignalingPair
from tests.helpers.signaling_wire import AUDIO_HOST, AUDIO_SESSION_ID, SDP_OFFER
from tests.helpers.vectors import load

WALL_MS = 1_790_000_000_000


@pytest.fixture
def pair() -> SignalingPair:
    return SignalingPair()


def joined_pair() -> SignalingPair:
    pair = SignalingPair()
    pair.client.send_join(audio_session_id=42)
    pair.roundtrip_until_idle()
    pair.pop_server_events()
    return pair


def feed(session: SignalingSession, name: str, now: float = 1000.0) -> None:
    session.receive_frame(load(f"signaling/{name}"), now)


# Join sequence (section 3).


def test_ping_before_join_is_answered_with_the_same_id_and_wall_clock_time(
    pair: SignalingPair,
) -> None:
    ping_id = pair.client.send_ping()
    pair.roundtrip()
    assert pair.pop_client_events() == [PongReceived(ping_id=ping_id, timestamp_ms=WALL_MS)]
    assert pair.server.state is SessionState.AWAITING_JOIN


def test_pong_timestamp_follows_the_injected_wall_clock(pair: SignalingPair) -> None:
    pair.clock.advance(2.5)
    pair.client.send_ping()
    pair.roundtrip()
    (pong,) = pair.pop_client_events()
    assert isinstance(pong, PongReceived)
    assert pong.timestamp_ms == WALL_MS + 2500


def test_js_client_join_vector_yields_join_received() -> None:
    session = SignalingSession(now=1000.0, wall_clock=FakeClock().wall)
    feed(session, "join_js_client.bin")
    assert session.events_received() == [
        JoinReceived(
            audio_session_id=AUDIO_SESSION_ID,
            protocol_version=2,
            flags=2,
            max_num_of_videos=None,
            client_details=ClientDetails(
                platform_name="Chrome",
                platform_version="156.0.8078.79",
                client_source="amazon-chime-sdk-js",
                chime_sdk_version="3.32.0",
                client_utc_offset="+02:00",
                os_name="Linux",
                os_version="x86_64",
            ),
            wants_compressed_sdp=True,
            server_side_network_adaption=ServerSideNetworkAdaption.DEFAULT,
            supported_server_side_network_adaptions=(),
            wants_all_temporal_layers_in_index=False,
            disable_periodic_keyframe_request_on_content_sender=False,
        )
    ]
    assert session.state is SessionState.JOINED
    assert session.joined
    assert session.frames_to_send() == []


def test_full_join_exchange(pair: SignalingPair) -> None:
    pair.client.send_ping()
    pair.client.send_join(
        audio_session_id=7,
        wants_compressed_sdp=True,
        supported_server_side_network_adaptions=[ServerSideNetworkAdaption.NONE],
    )
    pair.roundtrip()
    (join,) = pair.pop_server_events()
    assert isinstance(join, JoinReceived)
    assert join.supported_server_side_network_adaptions == (ServerSideNetworkAdaption.NONE,)
    assert [type(e) for e in pair.pop_client_events()] == [PongReceived]

    pair.server.send_join_ack()
    pair.server.send_audio_stream_id_info(
        [
            AudioStreamIdInfo(
                audio_stream_id=7, attendee_id="A", external_user_id="alice", muted=False
            )
        ]
    )
    source = StreamDescriptor(
        stream_id=11,
        group_id=5,
        attendee_id="A",
        external_user_id="alice",
        max_bitrate_kbps=1400,
        framerate=15,
        width=1280,
        height=720,
    )
    pair.server.send_index([source], num_participants=2)
    pair.roundtrip()
    events = pair.pop_client_events()
    assert events[0] == JoinAckReceived(
        turn_credentials=None,
        video_subscription_limit=None,
        wants_compressed_sdp=None,
        default_server_side_network_adaption=None,
    )
    assert events[1] == AudioStreamIdInfoReceived(
        streams=(
            AudioStreamIdInfo(
                audio_stream_id=7, attendee_id="A", external_user_id="alice", muted=False
            ),
        )
    )
    index = events[2]
    assert isinstance(index, IndexReceived)
    # media_type is filled in as VIDEO: absent would read as AUDIO on the client (section 3.2).
    assert index.sources == (
        StreamDescriptor(
            stream_id=11,
            group_id=5,
            attendee_id="A",
            external_user_id="alice",
            media_type=MediaType.VIDEO,
            max_bitrate_kbps=1400,
            framerate=15,
            width=1280,
            height=720,
        ),
    )
    assert index.num_participants == 2
    assert index.at_capacity is None


def test_subscribe_vector_yields_subscribe_received_and_ack_answers_it() -> None:
    clock = FakeClock()
    session = SignalingSession(now=clock.monotonic(), wall_clock=clock.wall)
    feed(session, "join_js_client.bin")
    feed(session, "subscribe_js_client.bin")
    events = session.events_received()
    sub = events[1]
    assert sub == SubscribeReceived(
        duplex=StreamServiceType.RX,
        sdp_offer=SDP_OFFER,
        compressed_sdp_offer=None,
        send_streams=(
            StreamDescriptor(
                stream_id=1,
                group_id=1,
                attendee_id="attendee-b",
                media_type=MediaType.AUDIO,
                track_label="AmazonChimeExpressAudio",
                max_bitrate_kbps=600,
                avg_bitrate_bps=400_000,
                framerate=15,
            ),
        ),
        receive_stream_ids=(0,),
        audio_host=AUDIO_HOST,
        audio_checkin=False,
        audio_muted=False,
        video_subscription_configuration=(),
    )
    session.send_subscribe_ack(
        sdp_answer="v=0\r\n",
        duplex=StreamServiceType.RX,
        tracks=[TrackMapping(stream_id=11, ssrc=555, track_label="v_2")],
        allocations=[StreamAllocation(track_label="", stream_id=2, group_id=2)],
    )
    (data,) = session.frames_to_send()
    frame = decode_frame(data)
    assert FrameType(frame.type) is FrameType.SUBSCRIBE_ACK
    assert frame.timestamp_ms == WALL_MS
    assert frame.suback.sdp_answer == "v=0\r\n"
    assert frame.suback.tracks[0].track_label == "v_2"
    assert not frame.HasField("error")


def test_subscribe_ack_round_trip_with_error_status(pair: SignalingPair) -> None:
    pair = joined_pair()
    pair.client.send_subscribe(
        sdp_offer="offer",
        duplex=StreamServiceType.DUPLEX,
        receive_stream_ids=[0, 11],
        video_subscription_configuration=[
            VideoSubscriptionConfiguration(
                mid="2",
                stream_id=11,
                quality_adaptation_preference=VideoQualityAdaptationPreference.BALANCED,
            )
        ],
    )
    pair.roundtrip()
    (sub,) = pair.pop_server_events()
    assert isinstance(sub, SubscribeReceived)
    assert sub.duplex is StreamServiceType.DUPLEX
    assert sub.receive_stream_ids == (0, 11)
    assert sub.video_subscription_configuration[0].quality_adaptation_preference is (
        VideoQualityAdaptationPreference.BALANCED
    )
    pair.server.send_subscribe_ack(
        sdp_answer="answer",
        tracks=[TrackMapping(stream_id=11, ssrc=555, track_label="v_2")],
        error_status=206,
        error_description="video sender limit reached",
    )
    pair.roundtrip()
    assert pair.pop_client_events() == [
        ErrorStatusReceived(
            frame_type=FrameType.SUBSCRIBE_ACK,
            status=206,
            description="video sender limit reached",
        ),
        SubscribeAckReceived(
            duplex=None,
            sdp_answer="answer",
            compressed_sdp_answer=None,
            tracks=(TrackMapping(stream_id=11, ssrc=555, track_label="v_2"),),
            allocations=(),
        ),
    ]


def test_subscribe_ack_without_a_pending_subscribe_is_a_local_error() -> None:
    pair = joined_pair()
    with pytest.raises(LocalProtocolError, match=r"^SUBSCRIBE_ACK without a pending SUBSCRIBE$"):
        pair.server.send_subscribe_ack(sdp_answer="x")


def test_join_ack_with_turn_credentials_and_options() -> None:
    pair = joined_pair()
    pair.server.send_join_ack(
        turn_credentials=TurnCredentials(
            username="u", password="p", ttl=300, uris=("turn:t.example.org:3478",)
        ),
        video_subscription_limit=10,
        wants_compressed_sdp=False,
        default_server_side_network_adaption=(
            ServerSideNetworkAdaption.BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION
        ),
    )
    pair.roundtrip()
    assert pair.pop_client_events() == [
        JoinAckReceived(
            turn_credentials=TurnCredentials(
                username="u", password="p", ttl=300, uris=("turn:t.example.org:3478",)
            ),
            video_subscription_limit=10,
            wants_compressed_sdp=False,
            default_server_side_network_adaption=(
                ServerSideNetworkAdaption.BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION
            ),
        )
    ]


def test_join_ack_must_come_once_and_before_the_first_index() -> None:
    pair = joined_pair()
    pair.server.send_join_ack()
    with pytest.raises(LocalProtocolError, match=r"^JOIN_ACK was already sent$"):
        pair.server.send_join_ack()
    other = joined_pair()
    other.server.send_index()
    with pytest.raises(
        LocalProtocolError, match=r"^JOIN_ACK must come before the first INDEX \(section 2\.2\)$"
    ):
        other.server.send_join_ack()


def test_server_frames_before_join_are_a_local_error(pair: SignalingPair) -> None:
    with pytest.raises(LocalProtocolError, match=r"^cannot send INDEX in state AWAITING_JOIN$"):
        pair.server.send_index()


def test_index_with_every_field() -> None:
    pair = joined_pair()
    pair.server.send_index(
        [StreamDescriptor(stream_id=3, media_type=MediaType.VIDEO)],
        at_capacity=True,
        paused_at_source_ids=[3],
        supported_receive_codec_intersection=[VideoCodecCapability.VP8],
    )
    pair.roundtrip()
    (index,) = pair.pop_client_events()
    assert index == IndexReceived(
        sources=(StreamDescriptor(stream_id=3, media_type=MediaType.VIDEO),),
        at_capacity=True,
        paused_at_source_ids=(3,),
        num_participants=None,
        supported_receive_codec_intersection=(VideoCodecCapability.VP8,),
    )


# Realtime features (section 5).


def test_audio_control_vector_yields_audio_mute_changed() -> None:
    session = SignalingSession(now=1000.0, wall_clock=FakeClock().wall)
    feed(session, "join_js_client.bin")
    feed(session, "audio_control_muted_js_client.bin")
    assert session.events_received()[1:] == [AudioMuteChanged(muted=True)]


def test_audio_control_without_muted_is_malformed_and_dropped() -> None:
    pair = joined_pair()
    frame = new_frame(FrameType.AUDIO_CONTROL, 1)
    frame.audio_control.SetInParent()
    pair.server.receive_frame(encode_frame(frame), 1000.0)
    assert pair.server.events_received() == [
        FrameRejected(
            reason="AUDIO_CONTROL frame without audio_control.muted",
            frame_type=FrameType.AUDIO_CONTROL,
        )
    ]
    assert pair.server.malformed_frames == 1
    assert pair.server.close_code() is None


def test_data_message_vector_yields_data_messages_received() -> None:
    session = SignalingSession(now=1000.0, wall_clock=FakeClock().wall)
    feed(session, "join_js_client.bin")
    feed(session, "data_message_js_client.bin")
    assert session.events_received()[1:] == [
        DataMessagesReceived(
            messages=(DataMessage(topic="chat", data=b'{"text":"hello"}', lifetime_ms=10_000),),
            rejected=(),
        )
    ]


def test_data_messages_are_validated_one_by_one_and_sender_fields_stripped() -> None:
    pair = joined_pair()
    pair.client.send_data_messages(
        [
            DataMessage(
                topic="ok_topic-1",
                data=b"x" * 2048,
                sender_attendee_id="spoofed",
                ingest_time_ns=5,
            ),
            DataMessage(topic="", data=b""),
            DataMessage(topic="a" * 37, data=b""),
            DataMessage(topic="aws:chime:transcription", data=b""),
            DataMessage(topic="big", data=b"x" * 2049),
            DataMessage(topic="neg", data=b"", lifetime_ms=2**32 - 1),
            DataMessage(topic="a" * 36, data=b"", lifetime_ms=2**31 - 1),
        ]
    )
    pair.roundtrip()
    (event,) = pair.pop_server_events()
    assert event == DataMessagesReceived(
        messages=(
            DataMessage(topic="ok_topic-1", data=b"x" * 2048, lifetime_ms=0),
            DataMessage(topic="a" * 36, data=b"", lifetime_ms=2**31 - 1),
        ),
        rejected=(
            RejectedDataMessage(
                topic="", size=0, reason="topic '' does not match ^[a-zA-Z0-9_-]{1,36}$"
            ),
            RejectedDataMessage(
                topic="a" * 37,
                size=0,
                reason=f"topic '{'a' * 37}' does not match ^[a-zA-Z0-9_-]{{1,36}}$",
            ),
            RejectedDataMessage(
                topic="aws:chime:transcription",
                size=0,
                reason="topic 'aws:chime:transcription' does not match ^[a-zA-Z0-9_-]{1,36}$",
            ),
            RejectedDataMessage(topic="big", size=2049, reason="data is 2049 bytes (max 2048)"),
            RejectedDataMessage(
                topic="neg",
                size=0,
                reason="lifetime_ms 4294967295 is negative as a signed 32-bit value",
            ),
        ),
    )
    assert pair.server.malformed_frames == 0


def test_a_topic_with_a_trailing_newline_is_rejected() -> None:
    assert validate_data_message(DataMessage(topic="chat\n", data=b"")) is not None
    assert validate_data_message(DataMessage(topic="chät", data=b"")) is not None


def test_an_empty_data_message_frame_yields_no_event() -> None:
    pair = joined_pair()
    pair.client.send_data_messages([])
    pair.roundtrip()
    assert pair.pop_server_events() == []


def test_server_data_messages_reach_the_client_with_sender_fields() -> None:
    pair = joined_pair()
    message = DataMessage(
        topic="aws:chime:transcription",
        data=b"\x01",
        lifetime_ms=0,
        sender_attendee_id="A",
        sender_external_user_id="alice",
        ingest_time_ns=1_790_000_000_000_000_000,
    )
    pair.server.send_data_messages([message])
    pair.roundtrip()
    assert pair.pop_client_events() == [DataMessagesReceived(messages=(message,))]


def test_audio_metadata_status_bitrates_notification_reach_the_client() -> None:
    pair = joined_pair()
    pair.server.send_audio_metadata(
        [AudioAttendeeState(audio_stream_id=7, volume=20, signal_strength=2)]
    )
    pair.server.send_bitrates(
        [Bitrate(source_stream_id=11, avg_bitrate_bps=900_000)],
        server_available_outgoing_bitrate=5000,
    )
    pair.server.send_notification(NotificationLevel.WARNING, "hello")
    pair.server.send_audio_status(AudioStatus.OK)
    pair.roundtrip()
    assert pair.pop_client_events() == [
        AudioMetadataReceived(
            attendee_states=(AudioAttendeeState(audio_stream_id=7, volume=20, signal_strength=2),)
        ),
        BitratesReceived(
            bitrates=(Bitrate(source_stream_id=11, avg_bitrate_bps=900_000),),
            server_available_outgoing_bitrate=5000,
        ),
        NotificationReceived(level=NotificationLevel.WARNING, message="hello"),
        AudioStatusReceived(status=200),
    ]


def test_pause_and_resume_in_both_directions() -> None:
    pair = joined_pair()
    pair.client.send_pause([11, 12])
    pair.client.send_resume([11])
    pair.server.send_pause([5])
    pair.server.send_resume([5])
    pair.roundtrip()
    assert pair.pop_server_events() == [
        PauseReceived(stream_ids=(11, 12), group_ids=()),
        ResumeReceived(stream_ids=(11,), group_ids=()),
    ]
    assert pair.pop_client_events() == [
        PauseReceived(stream_ids=(), group_ids=(5,)),
        ResumeReceived(stream_ids=(), group_ids=(5,)),
    ]


def test_remote_video_update() -> None:
    pair = joined_pair()
    pair.client.send_remote_video_update(
        [VideoSubscriptionConfiguration(mid="2", stream_id=12, priority=1)], ["3"]
    )
    pair.roundtrip()
    assert pair.pop_server_events() == [
        RemoteVideoUpdateReceived(
            added_or_updated=(VideoSubscriptionConfiguration(mid="2", stream_id=12, priority=1),),
            removed_mids=("3",),
        )
    ]


def test_client_metrics_and_session_timing_are_surfaced(pair: SignalingPair) -> None:
    pair.client.send_client_metrics({7: 12.5}, [(2, {32: 1000.0})])
    pair.client.send_meeting_session_timing({"start_ms": 5, "timed_out": False})
    pair.roundtrip()
    events = pair.pop_server_events()
    metrics = events[0]
    assert isinstance(metrics, ClientMetricsReceived)
    assert metrics.global_metrics == {7: 12.5}
    assert metrics.stream_metrics[0].stream_id == 2
    assert metrics.stream_metrics[0].metrics == {32: 1000.0}
    assert events[1] == MeetingSessionTimingReceived(
        timings={"signaling": ({"start_ms": 5, "timed_out": False},)}
    )
    # Telemetry is allowed before JOIN and does not change the state.
    assert pair.server.state is SessionState.AWAITING_JOIN


def test_client_metric_dimensions() -> None:
    session = SignalingSession(now=0.0, wall_clock=FakeClock().wall)
    frame = new_frame(FrameType.CLIENT_METRIC, 1)
    stream = frame.client_metric.stream_metric_frames.add(group_id=4, media_type=pb.VIDEO)
    stream.metrics.add(value=1.0)  # no type: skipped
    stream.dimensions.add(type=pb.SdkStreamDimension.VIDEO_ENCODER_NAME).value.string_value = "vp8"
    stream.dimensions.add(type=pb.SdkStreamDimension.VIDEO_DECODER_NAME).value.bool_value = True
    stream.dimensions.add().value.uint_value = 3  # no type: skipped
    session.receive_frame(encode_frame(frame), 0.0)
    (event,) = session.events_received()
    assert isinstance(event, ClientMetricsReceived)
    (metrics,) = event.stream_metrics
    assert metrics.media_type is MediaType.VIDEO
    assert metrics.metrics == {}
    assert metrics.dimensions == {1: "vp8", 2: True}


# Leave and close (section 6).


def test_leave_vector_yields_leave_received_and_leave_ack() -> None:
    pair = joined_pair()
    pair.server.receive_frame(load("signaling/leave_js_client.bin"), 1000.0)
    assert pair.server.events_received() == [LeaveReceived()]
    assert pair.server.state is SessionState.LEFT
    (data,) = pair.server.frames_to_send()
    pair.client.receive_frame(data)
    assert pair.client.events_received() == [LeaveAckReceived()]


def test_after_leave_pings_are_answered_and_broadcasts_dropped() -> None:
    pair = joined_pair()
    pair.client.send_leave()
    pair.roundtrip()
    assert pair.pop_server_events() == [LeaveReceived()]
    assert pair.pop_client_events() == [LeaveAckReceived()]
    pair.server.send_index()
    pair.server.send_audio_stream_id_info([AudioStreamIdInfo(audio_stream_id=1)])
    assert pair.server.dropped_sends == 2
    pair.client.send_ping()
    pair.client.send_audio_control(muted=False)
    pair.roundtrip()
    assert [type(e) for e in pair.pop_client_events()] == [PongReceived]
    assert pair.pop_server_events() == []
    assert pair.server.ignored_frames == 1


def test_manual_leave_ack() -> None:
    clock = FakeClock()
    session = SignalingSession(now=0.0, wall_clock=clock.wall, auto_leave_ack=False)
    feed(session, "join_js_client.bin")
    feed(session, "leave_js_client.bin")
    assert session.frames_to_send() == []
    session.send_leave_ack()
    assert FrameType(decode_frame(session.frames_to_send()[0]).type) is FrameType.LEAVE_ACK
    with pytest.raises(LocalProtocolError, match=r"^LEAVE_ACK without a pending LEAVE$"):
        session.send_leave_ack()


def test_client_close_after_leave_is_reported_as_clean() -> None:
    pair = joined_pair()
    pair.client.send_leave()
    pair.roundtrip()
    pair.server.receive_close(1005)
    assert pair.server.events_received() == [ConnectionClosed(code=1005, after_leave=True)]
    assert pair.server.state is SessionState.CLOSED
    assert pair.server.get_timer() is None
    pair.server.receive_close(1005)
    assert pair.server.events_received() == []


def test_connection_lost_without_leave() -> None:
    pair = joined_pair()
    pair.server.send_index()
    pair.server.receive_close(1006)
    assert pair.server.events_received() == [ConnectionClosed(code=1006, after_leave=False)]
    assert pair.server.frames_to_send() == []
    pair.server.send_index()
    pair.server.receive_frame(b"\x05", 1000.0)
    assert pair.server.dropped_sends == 1
    assert pair.server.ignored_frames == 1


def test_leave_linger_closes_with_1000_if_the_client_stays() -> None:
    session = SignalingSession(now=0.0, wall_clock=FakeClock().wall, idle_timeout=None)
    feed(session, "join_js_client.bin", now=1.0)
    feed(session, "leave_js_client.bin", now=2.0)
    assert session.get_timer() == 7.0
    session.handle_timer(6.9)
    assert session.close_code() is None
    session.handle_timer(7.0)
    assert session.close_code() == CloseCode.NORMAL
    assert session.events_received()[-1] == CloseInitiated(
        code=1000, reason="client did not close after LEAVE_ACK"
    )


def test_end_session_sends_audio_status_then_closes_after_the_delay() -> None:
    pair = joined_pair()
    now = pair.clock.monotonic()
    pair.server.end_session(AudioStatus.MEETING_ENDED, CloseCode.MEETING_ENDED, now)
    assert pair.server.state is SessionState.CLOSING
    assert pair.server.close_code() is None
    assert pair.server.get_timer() == pytest.approx(now + 0.1)
    pair.roundtrip()
    assert pair.pop_client_events() == [AudioStatusReceived(status=410)]
    pair.server.send_index()  # dropped while closing
    pair.server.handle_timer(now + 0.1)
    assert pair.server.close_code() == 4410
    assert pair.server.get_timer() is None
    pair.server.handle_timer(now + 1.0)
    pair.server.end_session(AudioStatus.MEETING_ENDED, CloseCode.MEETING_ENDED, now)
    assert pair.server.frames_to_send() == []


def test_end_session_before_join_closes_at_once(pair: SignalingPair) -> None:
    pair.server.end_session(AudioStatus.ATTENDEE_REMOVED, CloseCode.ATTENDEE_UNAVAILABLE, 0.0)
    assert pair.server.close_code() == 4403
    assert pair.server.frames_to_send() == []


def test_close_is_idempotent(pair: SignalingPair) -> None:
    pair.server.close(4500)
    pair.server.close(4410)
    assert pair.server.close_code() == 4500


def test_idle_timeout_closes_with_4408() -> None:
    session = SignalingSession(now=100.0, wall_clock=FakeClock().wall)
    assert session.get_timer() == 160.0
    session.receive_frame(load("signaling/ping_js_client.bin"), 110.0)
    assert session.get_timer() == 170.0
    session.handle_timer(169.0)
    assert session.close_code() is None
    session.handle_timer(170.0)
    assert session.close_code() == CloseCode.IDLE_TIMEOUT
    assert session.events_received() == [
        CloseInitiated(code=4408, reason="no frame received for 60 s")
    ]


def test_no_timer_when_deadlines_are_disabled(pair: SignalingPair) -> None:
    session = SignalingSession(
        now=0.0, wall_clock=FakeClock().wall, idle_timeout=None, leave_linger=None
    )
    assert session.get_timer() is None
    session.handle_timer(1e9)
    assert session.close_code() is None


# Malformed frames and protocol violations.


def test_frames_before_join_other_than_ping_close_with_4400(pair: SignalingPair) -> None:
    pair.client.send_subscribe(sdp_offer="x")
    pair.roundtrip()
    assert pair.pop_server_events() == [
        FrameRejected(
            reason="SUBSCRIBE frame not allowed in state AWAITING_JOIN",
            frame_type=FrameType.SUBSCRIBE,
        ),
        CloseInitiated(code=4400, reason="SUBSCRIBE frame not allowed in state AWAITING_JOIN"),
    ]
    assert pair.server.close_code() == CloseCode.BAD_REQUEST
    assert pair.server.rejected_frames == 1
    # Frames arriving while closing are ignored.
    pair.client.send_join(audio_session_id=1)
    pair.roundtrip()
    assert pair.pop_server_events() == []
    assert pair.server.ignored_frames == 1


def test_a_malformed_frame_before_join_closes_with_4400() -> None:
    session = SignalingSession(now=0.0, wall_clock=FakeClock().wall)
    session.receive_frame(b"", 0.0)
    assert session.events_received() == [
        FrameRejected(reason="empty frame", frame_type=None),
        CloseInitiated(code=4400, reason="empty frame"),
    ]
    assert session.malformed_frames == 1
    session.receive_frame(b"", 0.0)
    assert session.malformed_frames == 2
    assert session.events_received() == []


@pytest.mark.parametrize(
    "name",
    [
        "empty_invalid.bin",
        "type_byte_0x02_invalid.bin",
        "truncated_invalid.bin",
        "unknown_frame_type_invalid.bin",
        "missing_timestamp_invalid.bin",
        "ping_without_ping_id_invalid.bin",
        "subscribe_without_payload_invalid.bin",
        "invalid_utf8_invalid.bin",
    ],
)
def test_malformed_frames_after_join_are_dropped_and_counted(name: str) -> None:
    pair = joined_pair()
    pair.server.receive_frame(load(f"signaling/{name}"), 1000.0)
    (event,) = pair.server.events_received()
    assert isinstance(event, FrameRejected)
    assert pair.server.malformed_frames == 1
    assert pair.server.close_code() is None
    assert pair.server.state is SessionState.JOINED


def test_text_frames_are_malformed() -> None:
    pair = joined_pair()
    pair.server.receive_frame("hello", 1000.0)
    assert pair.server.events_received() == [
        FrameRejected(reason="text frame; signaling frames are binary", frame_type=None)
    ]


@pytest.mark.parametrize(
    "frame_type",
    [FrameType.JOIN, FrameType.JOIN_ACK, FrameType.INDEX, FrameType.AUDIO_STATUS],
)
def test_unexpected_frame_types_after_join_are_rejected_not_closed(frame_type: FrameType) -> None:
    pair = joined_pair()
    frame = new_frame(frame_type, 1)
    frame.join.SetInParent()
    frame.joinack.SetInParent()
    frame.index.SetInParent()
    frame.audio_status.SetInParent()
    pair.server.receive_frame(encode_frame(frame), 1000.0)
    assert pair.server.events_received() == [
        FrameRejected(
            reason=f"{frame_type.name} frame not allowed in state JOINED", frame_type=frame_type
        )
    ]
    assert pair.server.rejected_frames == 1
    assert pair.server.close_code() is None


def test_primary_meeting_frames_are_ignored() -> None:
    pair = joined_pair()
    frame = new_frame(FrameType.PRIMARY_MEETING_JOIN, 1)
    frame.primary_meeting_join.credentials.attendee_id = "x"
    pair.server.receive_frame(encode_frame(frame), 1000.0)
    assert pair.server.events_received() == []
    assert pair.server.ignored_frames == 1


def test_a_client_pong_is_accepted_silently() -> None:
    pair = joined_pair()
    frame = new_frame(FrameType.PING_PONG, 1)
    frame.ping_pong.type = pb.PONG
    frame.ping_pong.ping_id = 3
    pair.server.receive_frame(encode_frame(frame), 1000.0)
    assert pair.server.events_received() == []
    assert pair.server.frames_to_send() == []


def test_server_ping_is_answered_by_the_client_session() -> None:
    pair = joined_pair()
    frame = new_frame(FrameType.PING_PONG, 1)
    frame.ping_pong.type = pb.PING
    frame.ping_pong.ping_id = 9
    pair.client.receive_frame(encode_frame(frame))
    (data,) = pair.client.frames_to_send()
    reply = decode_frame(data)
    assert (reply.ping_pong.type, reply.ping_pong.ping_id) == (pb.PONG, 9)


def test_client_session_reports_malformed_server_frames() -> None:
    pair = joined_pair()
    pair.client.receive_frame(b"\x02")
    assert pair.client.events_received() == [
        FrameRejected(reason="unexpected frame type byte 0x02 (expected 0x05)", frame_type=None)
    ]
    assert pair.client.malformed_frames == 1


SEND_COMMANDS = {
    "join_ack": lambda s: s.send_join_ack(),
    "index": lambda s: s.send_index(),
    "subscribe_ack": lambda s: s.send_subscribe_ack(sdp_answer="x"),
    "audio_stream_id_info": lambda s: s.send_audio_stream_id_info([]),
    "audio_metadata": lambda s: s.send_audio_metadata([]),
    "audio_status": lambda s: s.send_audio_status(200),
    "data_messages": lambda s: s.send_data_messages([]),
    "bitrates": lambda s: s.send_bitrates([]),
    "pause": lambda s: s.send_pause([1]),
    "resume": lambda s: s.send_resume([1]),
    "notification": lambda s: s.send_notification(NotificationLevel.INFO, "x"),
    "leave_ack": lambda s: s.send_leave_ack(),
}


@pytest.mark.parametrize("name", sorted(SEND_COMMANDS))
def test_every_send_command_is_a_no_op_once_closed(name: str) -> None:
    pair = joined_pair()
    pair.server.receive_close(1006)
    SEND_COMMANDS[name](pair.server)
    assert pair.server.frames_to_send() == []
    assert pair.server.dropped_sends == 1


def test_client_join_with_every_option_reaches_the_server() -> None:
    pair = SignalingPair()
    pair.client.send_join(
        audio_session_id=None,
        client_details=ClientDetails(app_name="demo", app_version="1"),
        protocol_version=None,
        flags=None,
        max_num_of_videos=25,
        server_side_network_adaption=ServerSideNetworkAdaption.NONE,
        wants_all_temporal_layers_in_index=True,
        disable_periodic_keyframe_request_on_content_sender=True,
    )
    pair.client.send_subscribe(
        sdp_offer=None,
        duplex=None,
        audio_host=None,
        audio_checkin=None,
        audio_muted=None,
        compressed_sdp_offer=b"\x00",
    )
    pair.roundtrip()
    join, sub = pair.pop_server_events()
    assert join == JoinReceived(
        audio_session_id=None,
        protocol_version=2,  # the schema default
        flags=0,
        max_num_of_videos=25,
        client_details=ClientDetails(app_name="demo", app_version="1"),
        wants_compressed_sdp=False,
        server_side_network_adaption=ServerSideNetworkAdaption.NONE,
        supported_server_side_network_adaptions=(),
        wants_all_temporal_layers_in_index=True,
        disable_periodic_keyframe_request_on_content_sender=True,
    )
    assert isinstance(sub, SubscribeReceived)
    assert sub.duplex is StreamServiceType.RX  # the schema default
    assert sub.sdp_offer is None
    assert sub.compressed_sdp_offer == b"\x00"
    assert sub.audio_muted is None
