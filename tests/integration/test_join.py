"""Bots join the real server exactly as amazon-chime-sdk-js does (signaling + aiortc media).

Covers chime-signaling-protocol.md §1.1 (URL and subprotocol auth), §3 (the join sequence),
§5.1 (roster), §5.3 (mute), §5.4 (data messages), §6.1/§6.2 (close codes and statuses) and
§6.4 (leave), end to end against ``carillon serve``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.bot import JOIN_STEPS, Bot
from bench.media import bot_frequency
from signaling.client import SignalingClient, SignalingClosedError
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess

pytestmark = pytest.mark.timeout(90)

T = 15.0 * TIMEOUT_FACTOR
"""The JS client's budgets (socket open, then JOIN → ICE connected)."""


def create_meeting(chime: Any, name: str) -> dict[str, Any]:
    response: dict[str, Any] = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId=name
    )
    return response


def create_attendee(chime: Any, meeting: dict[str, Any], user: str) -> dict[str, Any]:
    response: dict[str, Any] = chime.create_attendee(
        MeetingId=meeting["Meeting"]["MeetingId"], ExternalUserId=user
    )
    return response


class Room:
    """A meeting plus the bots joined to it; every bot is closed at the end."""

    def __init__(self, chime: Any, server: ServerProcess, name: str) -> None:
        self.chime = chime
        self.server = server
        self.meeting = create_meeting(chime, name)
        self.bots: list[Bot] = []
        self.clients: list[SignalingClient] = []

    @property
    def meeting_id(self) -> str:
        meeting_id: str = self.meeting["Meeting"]["MeetingId"]
        return meeting_id

    async def bot(self, user: str, *, join: bool = True, audio: float | None = None) -> Bot:
        attendee = await asyncio.to_thread(create_attendee, self.chime, self.meeting, user)
        tone = audio if audio is not None else bot_frequency(len(self.bots))
        bot = Bot(self.meeting, attendee, audio=tone, name=user)
        self.bots.append(bot)
        if join:
            try:
                await bot.join(T)
            except BaseException:
                print(self.server.log()[-6000:])
                raise
        return bot


@pytest.fixture
async def room(
    request: pytest.FixtureRequest, chime: Any, server: ServerProcess
) -> AsyncIterator[Room]:
    r = Room(chime, server, request.node.name[:60])
    yield r
    await asyncio.gather(
        *(b.close() for b in r.bots), *(c.close() for c in r.clients), return_exceptions=True
    )


async def test_two_bots_join_and_see_each_other_in_the_roster(room: Room) -> None:
    a, b = await asyncio.gather(room.bot("bot-a"), room.bot("bot-b"))
    expected = {a.attendee_id: "bot-a", b.attendee_id: "bot-b"}
    for bot in (a, b):
        await bot.wait_for(lambda x: x.signaling.present_attendees() == expected, T)
        timings = bot.join_timings()
        assert list(timings) == list(JOIN_STEPS) or list(timings) == [
            s for s in JOIN_STEPS if s != "join_ack"
        ], timings
        assert all(v < T for v in timings.values()), timings
        assert bot.signaling.roster[bot.attendee_id].audio_stream_id > 0


async def test_data_messages_reach_the_others_and_are_not_echoed(room: Room) -> None:
    a, b = await asyncio.gather(room.bot("dm-a"), room.bot("dm-b"))
    await a.send_data_message("chat", "hello from a", lifetime_ms=0)
    await b.wait_for(lambda x: len(x.signaling.data_messages) == 1, T)
    got = b.signaling.data_messages[0]
    assert (got.topic, got.data) == ("chat", b"hello from a")
    assert got.sender_attendee_id == a.attendee_id
    assert got.sender_external_user_id == "dm-a"
    assert got.ingest_time_ns is not None and got.ingest_time_ns > 0
    # b's reply reaches a after a's own message would have: a got only the reply.
    await b.send_data_message("chat", b"reply")
    await a.wait_for(lambda x: len(x.signaling.data_messages) >= 1, T)
    assert [m.data for m in a.signaling.data_messages] == [b"reply"]
    assert [m.data for m in b.signaling.data_messages] == [b"hello from a"]


async def test_each_bot_receives_continuous_downlink_audio(room: Room) -> None:
    a, b = await asyncio.gather(room.bot("au-a"), room.bot("au-b"))
    for bot in (a, b):
        assert bot.peer is not None
        start_count, start = bot.peer.audio_packets_received, time.monotonic()
        await bot.peer.wait_audio_packets(start_count + 100, 5.0 * TIMEOUT_FACTOR)
        elapsed = time.monotonic() - start
        rate = (bot.peer.audio_packets_received - start_count) / elapsed
        assert rate >= 40, f"{bot.name}: {rate:.1f} audio packets/s"
        assert bot.peer.recorder.frames_received > 0


async def test_mute_is_broadcast_in_the_roster(room: Room) -> None:
    a, b = await asyncio.gather(room.bot("mute-a"), room.bot("mute-b"))
    await a.set_muted(True)
    await b.wait_for(lambda x: x.signaling.roster[a.attendee_id].muted is True, T)
    await a.set_muted(False)
    await b.wait_for(lambda x: x.signaling.roster[a.attendee_id].muted is False, T)


async def test_leave_is_acknowledged_and_the_others_see_a_clean_departure(room: Room) -> None:
    a, b = await asyncio.gather(room.bot("lv-a"), room.bot("lv-b"))
    await b.wait_for(lambda x: a.attendee_id in x.signaling.present_attendees(), T)
    await a.leave(T)
    assert a.signaling.leave_acked
    assert a.signaling.closed_by_client or a.signaling.close_code in (1000, 1005)
    await b.wait_for(lambda x: not x.signaling.roster[a.attendee_id].present, T)
    assert b.signaling.roster[a.attendee_id].dropped is False
    await b.leave(T)
    assert b.signaling.leave_acked


async def test_reconnect_keeps_the_session_and_gets_a_new_stream_id(room: Room) -> None:
    a, b = await asyncio.gather(room.bot("rc-a"), room.bot("rc-b"))
    await b.wait_for(lambda x: a.attendee_id in x.signaling.present_attendees(), T)
    old_stream = b.signaling.roster[a.attendee_id].audio_stream_id
    session_id = a.signaling.audio_session_id
    await a.reconnect(T)
    assert a.signaling.audio_session_id == session_id and a.signaling.connections == 2
    await b.wait_for(lambda x: x.signaling.roster[a.attendee_id].audio_stream_id > old_stream, T)
    assert b.signaling.roster[a.attendee_id].present
    assert a.signaling.present_attendees() == {a.attendee_id: "rc-a", b.attendee_id: "rc-b"}


async def test_delete_attendee_sends_411_then_closes_4403(room: Room, chime: Any) -> None:
    a, b = await asyncio.gather(room.bot("del-a"), room.bot("del-b"))
    await asyncio.to_thread(
        chime.delete_attendee, MeetingId=room.meeting_id, AttendeeId=a.attendee_id
    )
    assert await a.signaling.wait_closed(T) == 4403
    assert 411 in a.signaling.audio_statuses
    assert b.signaling.close_code is None
    await b.wait_for(lambda x: not x.signaling.roster[a.attendee_id].present, T)


async def test_delete_meeting_sends_410_then_closes_4410(room: Room, chime: Any) -> None:
    a, b = await asyncio.gather(room.bot("end-a"), room.bot("end-b"))
    await asyncio.to_thread(chime.delete_meeting, MeetingId=room.meeting_id)
    for bot in (a, b):
        assert await bot.signaling.wait_closed(T) == 4410
        assert 410 in bot.signaling.audio_statuses


async def test_a_bad_join_token_is_closed_with_4403(room: Room) -> None:
    attendee = await asyncio.to_thread(create_attendee, room.chime, room.meeting, "bad-token")
    attendee["Attendee"]["JoinToken"] = "bm90LWEtcmVhbC10b2tlbg"
    client = SignalingClient(room.meeting, attendee)
    await client.connect(T)
    with pytest.raises(SignalingClosedError) as info:
        await client.join(T)
    assert info.value.code == 4403
    await client.close()


async def test_an_unknown_meeting_is_closed_with_4410(room: Room) -> None:
    attendee = await asyncio.to_thread(create_attendee, room.chime, room.meeting, "lost")
    meeting = {"Meeting": dict(room.meeting["Meeting"])}
    unknown = str(uuid.uuid4())
    placement = dict(meeting["Meeting"]["MediaPlacement"])
    placement["SignalingUrl"] = placement["SignalingUrl"].replace(room.meeting_id, unknown)
    meeting["Meeting"]["MediaPlacement"] = placement
    meeting["Meeting"]["MeetingId"] = unknown
    client = SignalingClient(meeting, attendee)
    await client.connect(T)
    with pytest.raises(SignalingClosedError) as info:
        await client.join(T)
    assert info.value.code == 4410
    await client.close()


# Signaling only: JOIN without SUBSCRIBE (no media); the server must still serve these.


async def joined_client(room: Room, user: str) -> SignalingClient:
    attendee = await asyncio.to_thread(create_attendee, room.chime, room.meeting, user)
    client = SignalingClient(room.meeting, attendee)
    room.clients.append(client)
    await client.connect(T)
    await client.join(T)
    return client


async def test_signaling_only_join_gets_join_ack_index_and_pongs(room: Room) -> None:
    client = await joined_client(room, "sig-a")
    assert client.join_ack is not None
    assert client.index is not None and client.index.sources == ()
    await client.wait_for(lambda c: c.last_pong_id == 1, T, "PONG 1")
    await client.leave(T)
    assert client.leave_acked


async def test_signaling_only_data_messages_are_fanned_out_not_echoed(room: Room) -> None:
    a = await joined_client(room, "sdm-a")
    b = await joined_client(room, "sdm-b")
    await a.send_data_message("chat", "one")
    await b.wait_for(lambda c: len(c.data_messages) == 1, T, "a's message")
    assert b.data_messages[0].sender_attendee_id == a.attendee_id
    assert b.data_messages[0].sender_external_user_id == "sdm-a"
    await b.send_data_message("chat", "two")
    await a.wait_for(lambda c: len(c.data_messages) >= 1, T, "b's message")
    assert [m.data for m in a.data_messages] == [b"two"]


async def test_signaling_only_delete_attendee_sends_411_then_4403(room: Room, chime: Any) -> None:
    a = await joined_client(room, "sdel-a")
    await asyncio.to_thread(
        chime.delete_attendee, MeetingId=room.meeting_id, AttendeeId=a.attendee_id
    )
    assert await a.wait_closed(T) == 4403
    assert a.audio_statuses == [411]


async def test_signaling_only_delete_meeting_sends_410_then_4410(room: Room, chime: Any) -> None:
    a = await joined_client(room, "send-a")
    await asyncio.to_thread(chime.delete_meeting, MeetingId=room.meeting_id)
    assert await a.wait_closed(T) == 4410
    assert a.audio_statuses == [410]
