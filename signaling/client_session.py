"""``ClientSignalingSession``: the client side of the signaling protocol, sans I/O.

It builds the frames ``amazon-chime-sdk-js`` sends (``chime-signaling-protocol.md`` sections
3.2, 3.3, 5 and 6.4) and turns server frames into events. Tests and bench bots use it to play
the client; the asyncio client shell (``signaling.client``) will wrap it.

It keeps no protocol state beyond the ping counter: it does not enforce the join order,
so tests can also send frames a real client would not (a SUBSCRIBE before JOIN, an
invalid data message).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mediaserver.errors import MalformedMessage
from signaling import signaling_pb2 as pb
from signaling.codec import decode_frame, encode_frame, new_frame
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
    Bitrate,
    ClientDetails,
    DataMessage,
    FrameType,
    JoinFlags,
    NotificationLevel,
    ServerSideNetworkAdaption,
    StreamAllocation,
    StreamDescriptor,
    StreamServiceType,
    TrackMapping,
    TurnCredentials,
    VideoCodecCapability,
    VideoSubscriptionConfiguration,
)
from signaling.session import WallClock

__all__ = ["ClientSignalingSession"]


class ClientSignalingSession:
    """Client side of one signaling connection (sans I/O).

    Args:
        wall_clock: epoch seconds, stamped as ``timestamp_ms`` on every frame (the JS client
            uses ``Date.now()``, section 2.1).

    Attributes:
        malformed_frames: server frames that did not decode.
    """

    def __init__(self, *, wall_clock: WallClock) -> None:
        self._wall_clock = wall_clock
        self._events: list[Event] = []
        self._frames: list[bytes] = []
        self._next_ping_id = 1
        self.malformed_frames = 0

    # Output.

    def events_received(self) -> list[Event]:
        """Pop the events produced since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def frames_to_send(self) -> list[bytes]:
        """Pop the encoded frames to send, in order."""
        frames, self._frames = self._frames, []
        return frames

    # Commands: the frames the JS client sends.

    def send_join(
        self,
        *,
        audio_session_id: int | None,
        client_details: ClientDetails | None = None,
        protocol_version: int | None = 2,
        flags: int | None = JoinFlags.HAS_STREAM_UPDATE,
        max_num_of_videos: int | None = None,
        wants_compressed_sdp: bool | None = None,
        server_side_network_adaption: ServerSideNetworkAdaption | None = None,
        supported_server_side_network_adaptions: Iterable[ServerSideNetworkAdaption] = (),
        wants_all_temporal_layers_in_index: bool | None = None,
        disable_periodic_keyframe_request_on_content_sender: bool | None = None,
    ) -> None:
        """Queue JOIN (section 3.2). ``None`` leaves a field off the wire.

        The JS client sends ``protocol_version 2``, ``flags 2``, a random uint32
        ``audio_session_id``, ``wants_compressed_sdp true`` and its client details.
        """
        frame = self._frame(FrameType.JOIN)
        join = frame.join
        join.SetInParent()
        if protocol_version is not None:
            join.protocol_version = protocol_version
        if flags is not None:
            join.flags = int(flags)
        if audio_session_id is not None:
            join.audio_session_id = audio_session_id
        if max_num_of_videos is not None:
            join.max_num_of_videos = max_num_of_videos
        if client_details is not None:
            join.client_details.CopyFrom(client_details.to_pb())
        if wants_compressed_sdp is not None:
            join.wants_compressed_sdp = wants_compressed_sdp
        if server_side_network_adaption is not None:
            join.server_side_network_adaption = pb.SdkServerSideNetworkAdaption.ValueType(
                server_side_network_adaption
            )
        join.supported_server_side_network_adaptions.extend(
            pb.SdkServerSideNetworkAdaption.ValueType(a)
            for a in supported_server_side_network_adaptions
        )
        if wants_all_temporal_layers_in_index is not None:
            join.wants_all_temporal_layers_in_index = wants_all_temporal_layers_in_index
        if disable_periodic_keyframe_request_on_content_sender is not None:
            join.disable_periodic_keyframe_request_on_content_sender = (
                disable_periodic_keyframe_request_on_content_sender
            )
        self._queue(frame)

    def send_subscribe(
        self,
        *,
        sdp_offer: str | None,
        duplex: StreamServiceType | None = StreamServiceType.RX,
        send_streams: Iterable[StreamDescriptor] = (),
        receive_stream_ids: Iterable[int] = (),
        audio_host: str | None = None,
        audio_checkin: bool | None = False,
        audio_muted: bool | None = False,
        compressed_sdp_offer: bytes | None = None,
        video_subscription_configuration: Iterable[VideoSubscriptionConfiguration] = (),
    ) -> None:
        """Queue SUBSCRIBE carrying the SDP offer (section 3.3)."""
        frame = self._frame(FrameType.SUBSCRIBE)
        sub = frame.sub
        sub.SetInParent()
        if duplex is not None:
            sub.duplex = pb.SdkStreamServiceType.ValueType(duplex)
        sub.send_streams.extend(s.to_pb() for s in send_streams)
        sub.receive_stream_ids.extend(receive_stream_ids)
        if sdp_offer is not None:
            sub.sdp_offer = sdp_offer
        if audio_host is not None:
            sub.audio_host = audio_host
        if audio_checkin is not None:
            sub.audio_checkin = audio_checkin
        if audio_muted is not None:
            sub.audio_muted = audio_muted
        if compressed_sdp_offer is not None:
            sub.compressed_sdp_offer = compressed_sdp_offer
        sub.video_subscription_configuration.extend(
            c.to_pb() for c in video_subscription_configuration
        )
        self._queue(frame)

    def send_ping(self) -> int:
        """Queue PING with the next ``ping_id`` (1, 2, … per socket, section 5.6).

        Returns:
            The ping id used.
        """
        ping_id = self._next_ping_id
        self._next_ping_id += 1
        frame = self._frame(FrameType.PING_PONG)
        frame.ping_pong.type = pb.PING
        frame.ping_pong.ping_id = ping_id
        self._queue(frame)
        return ping_id

    def send_leave(self) -> None:
        """Queue LEAVE (section 6.4)."""
        frame = self._frame(FrameType.LEAVE)
        frame.leave.SetInParent()
        self._queue(frame)

    def send_audio_control(self, muted: bool) -> None:
        """Queue AUDIO_CONTROL with the local mute state (section 5.3)."""
        frame = self._frame(FrameType.AUDIO_CONTROL)
        frame.audio_control.muted = muted
        self._queue(frame)

    def send_data_message(self, topic: str, data: bytes, lifetime_ms: int = 0) -> None:
        """Queue DATA_MESSAGE with one message (section 5.4). Nothing is validated."""
        self.send_data_messages([DataMessage(topic=topic, data=data, lifetime_ms=lifetime_ms)])

    def send_data_messages(self, messages: Iterable[DataMessage]) -> None:
        """Queue one DATA_MESSAGE frame carrying ``messages`` as given."""
        frame = self._frame(FrameType.DATA_MESSAGE)
        frame.data_message.SetInParent()
        frame.data_message.messages.extend(m.to_pb() for m in messages)
        self._queue(frame)

    def send_pause(self, stream_ids: Iterable[int]) -> None:
        """Queue C→S PAUSE of remote streams (section 4.6)."""
        frame = self._frame(FrameType.PAUSE)
        frame.pause.SetInParent()
        frame.pause.stream_ids.extend(stream_ids)
        self._queue(frame)

    def send_resume(self, stream_ids: Iterable[int]) -> None:
        """Queue C→S RESUME of remote streams (section 4.6)."""
        frame = self._frame(FrameType.RESUME)
        frame.pause.SetInParent()
        frame.pause.stream_ids.extend(stream_ids)
        self._queue(frame)

    def send_remote_video_update(
        self,
        added_or_updated: Iterable[VideoSubscriptionConfiguration] = (),
        removed_mids: Iterable[str] = (),
    ) -> None:
        """Queue REMOTE_VIDEO_UPDATE (section 4.5)."""
        frame = self._frame(FrameType.REMOTE_VIDEO_UPDATE)
        update = frame.remote_video_update
        update.SetInParent()
        update.added_or_updated_video_subscriptions.extend(c.to_pb() for c in added_or_updated)
        update.removed_video_subscription_mids.extend(removed_mids)
        self._queue(frame)

    def send_client_metrics(
        self,
        global_metrics: Mapping[int, float],
        stream_metrics: Iterable[tuple[int, Mapping[int, float]]] = (),
    ) -> None:
        """Queue CLIENT_METRIC (about 1 Hz on the JS client).

        Args:
            global_metrics: ``SdkMetric.Type`` value → value.
            stream_metrics: ``(stream_id, {metric type: value})`` per stream.
        """
        frame = self._frame(FrameType.CLIENT_METRIC)
        metric = frame.client_metric
        metric.SetInParent()
        for metric_type, value in global_metrics.items():
            metric.global_metrics.add(type=metric_type, value=value)
        for stream_id, values in stream_metrics:
            stream = metric.stream_metric_frames.add(stream_id=stream_id)
            for metric_type, value in values.items():
                stream.metrics.add(type=metric_type, value=value)
        self._queue(frame)

    def send_meeting_session_timing(self, signaling: Mapping[str, int | bool]) -> None:
        """Queue MEETING_SESSION_TIMING with one ``signaling`` timing entry."""
        frame = self._frame(FrameType.MEETING_SESSION_TIMING)
        frame.meeting_session_timing.signaling.add(**signaling)
        self._queue(frame)

    # Input.

    def receive_frame(self, data: bytes | str) -> None:
        """Feed one server message. Malformed ones become :class:`FrameRejected` events.

        A server PING is answered with a PONG echoing its ``ping_id`` (section 5.6).
        """
        try:
            frame = decode_frame(data)
            frame_type = FrameType(frame.type)
            if frame.HasField("error"):
                self._events.append(
                    ErrorStatusReceived(
                        frame_type=frame_type,
                        status=frame.error.status if frame.error.HasField("status") else None,
                        description=(
                            frame.error.description if frame.error.HasField("description") else None
                        ),
                    )
                )
            self._events.extend(self._convert(frame_type, frame))
        except MalformedMessage as exc:
            self.malformed_frames += 1
            self._events.append(FrameRejected(reason=str(exc), frame_type=None))

    # Internals.

    def _frame(self, frame_type: FrameType) -> pb.SdkSignalFrame:
        return new_frame(frame_type, round(self._wall_clock() * 1000))

    def _queue(self, frame: pb.SdkSignalFrame) -> None:
        self._frames.append(encode_frame(frame))

    def _convert(self, frame_type: FrameType, frame: pb.SdkSignalFrame) -> list[Event]:
        match frame_type:
            case FrameType.JOIN_ACK:
                ack = frame.joinack
                adaption = ack.default_server_side_network_adaption
                return [
                    JoinAckReceived(
                        turn_credentials=(
                            TurnCredentials.from_pb(ack.turn_credentials)
                            if ack.HasField("turn_credentials")
                            else None
                        ),
                        video_subscription_limit=(
                            ack.video_subscription_limit
                            if ack.HasField("video_subscription_limit")
                            else None
                        ),
                        wants_compressed_sdp=(
                            ack.wants_compressed_sdp
                            if ack.HasField("wants_compressed_sdp")
                            else None
                        ),
                        default_server_side_network_adaption=(
                            ServerSideNetworkAdaption(adaption)
                            if ack.HasField("default_server_side_network_adaption")
                            else None
                        ),
                    )
                ]
            case FrameType.INDEX:
                index = frame.index
                return [
                    IndexReceived(
                        sources=tuple(StreamDescriptor.from_pb(s) for s in index.sources),
                        at_capacity=index.at_capacity if index.HasField("at_capacity") else None,
                        paused_at_source_ids=tuple(index.paused_at_source_ids),
                        num_participants=(
                            index.num_participants if index.HasField("num_participants") else None
                        ),
                        supported_receive_codec_intersection=tuple(
                            VideoCodecCapability(c)
                            for c in index.supported_receive_codec_intersection
                        ),
                    )
                ]
            case FrameType.SUBSCRIBE_ACK:
                ack2 = frame.suback
                return [
                    SubscribeAckReceived(
                        duplex=StreamServiceType(ack2.duplex) if ack2.HasField("duplex") else None,
                        sdp_answer=ack2.sdp_answer if ack2.HasField("sdp_answer") else None,
                        compressed_sdp_answer=(
                            ack2.compressed_sdp_answer
                            if ack2.HasField("compressed_sdp_answer")
                            else None
                        ),
                        tracks=tuple(TrackMapping.from_pb(t) for t in ack2.tracks),
                        allocations=tuple(StreamAllocation.from_pb(a) for a in ack2.allocations),
                    )
                ]
            case FrameType.AUDIO_STREAM_ID_INFO:
                return [
                    AudioStreamIdInfoReceived(
                        streams=tuple(
                            AudioStreamIdInfo.from_pb(s) for s in frame.audio_stream_id_info.streams
                        )
                    )
                ]
            case FrameType.AUDIO_METADATA:
                return [
                    AudioMetadataReceived(
                        attendee_states=tuple(
                            AudioAttendeeState.from_pb(s)
                            for s in frame.audio_metadata.attendee_states
                        )
                    )
                ]
            case FrameType.AUDIO_STATUS:
                status = frame.audio_status
                return [
                    AudioStatusReceived(
                        status=status.audio_status if status.HasField("audio_status") else None
                    )
                ]
            case FrameType.BITRATES:
                rates = frame.bitrates
                return [
                    BitratesReceived(
                        bitrates=tuple(Bitrate.from_pb(b) for b in rates.bitrates),
                        server_available_outgoing_bitrate=(
                            rates.server_available_outgoing_bitrate
                            if rates.HasField("server_available_outgoing_bitrate")
                            else None
                        ),
                    )
                ]
            case FrameType.DATA_MESSAGE:
                return [
                    DataMessagesReceived(
                        messages=tuple(DataMessage.from_pb(m) for m in frame.data_message.messages)
                    )
                ]
            case FrameType.PING_PONG:
                ping = frame.ping_pong
                if ping.type == pb.PING:
                    reply = self._frame(FrameType.PING_PONG)
                    reply.ping_pong.type = pb.PONG
                    reply.ping_pong.ping_id = ping.ping_id
                    self._queue(reply)
                    return []
                return [PongReceived(ping_id=ping.ping_id, timestamp_ms=frame.timestamp_ms)]
            case FrameType.LEAVE_ACK:
                return [LeaveAckReceived()]
            case FrameType.NOTIFICATION:
                note = frame.notification
                return [
                    NotificationReceived(
                        level=NotificationLevel(note.level),
                        message=note.message if note.HasField("message") else None,
                    )
                ]
            case FrameType.PAUSE:
                return [
                    PauseReceived(
                        stream_ids=tuple(frame.pause.stream_ids),
                        group_ids=tuple(frame.pause.group_ids),
                    )
                ]
            case FrameType.RESUME:
                return [
                    ResumeReceived(
                        stream_ids=tuple(frame.pause.stream_ids),
                        group_ids=tuple(frame.pause.group_ids),
                    )
                ]
            case _:
                # Client-to-server types and replicated-meeting frames: nothing to report.
                return []
