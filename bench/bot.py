"""``Bot``: one meeting attendee played by :class:`~signaling.client.SignalingClient` plus
:class:`~bench.peer.ChimePeer`, running the join sequence of ``amazon-chime-sdk-js``.

:meth:`Bot.join` runs ``chime-signaling-protocol.md`` section 3.1/3.2 in order: open the
socket (the first PING goes out at once), JOIN, wait for the first INDEX (reading a JOIN_ACK
that precedes it), create the offer with every candidate, SUBSCRIBE, wait for SUBSCRIBE_ACK,
apply the answer, wait for ICE and DTLS, then for the first downlink audio packet. The times
of each step are kept for the join-time benchmark (:meth:`Bot.join_timings`).

Integration tests and load tests use the same class, so both exercise the production path
(style guide, convention 20).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack, RTCIceServer

from bench.media import FrameSource
from bench.peer import ChimePeer
from signaling.client import DEFAULT_TIMEOUT, SignalingClient, SubscribeAck
from signaling.messages import TurnCredentials

__all__ = ["JOIN_STEPS", "Bot", "ice_servers_from"]

JOIN_STEPS = (
    "ws_open",
    "join_ack",
    "index",
    "subscribe_ack",
    "ice_connected",
    "dtls_connected",
    "first_audio_packet",
)
"""The steps :meth:`Bot.join_timings` reports, in the order they happen."""


def ice_servers_from(turn: TurnCredentials | None) -> list[RTCIceServer]:
    """The ICE servers the JS client builds from JOIN_ACK ``turn_credentials`` (section 3.2).

    With any URI the client forces relay-only ICE; without, it uses no ICE server at all.
    """
    if turn is None or not turn.uris:
        return []
    return [RTCIceServer(urls=list(turn.uris), username=turn.username, credential=turn.password)]


class Bot:
    """A meeting attendee: signaling client, peer connection and a synthetic voice.

    Args:
        meeting: CreateMeeting JSON (wrapped or bare).
        attendee: CreateAttendee JSON (wrapped or bare).
        audio: what the bot sends: a tone frequency in Hz, a :class:`FrameSource`, a WAV/PCM
            path, ``None`` for silence, or a track.
        receive_videos: ``recvonly`` video transceivers to add to the first offer (the JS
            client adds none on the first SUBSCRIBE; tests may want them).
        content_share: join as ``<attendee>#content`` (section 4.7).
        name: for logs; defaults to the external user id.
        client_options: passed on to :class:`SignalingClient`.

    Attributes:
        signaling: the signaling client (roster, data messages, statuses, close code).
        peer: the current peer connection (a new one after each :meth:`reconnect`).
    """

    def __init__(
        self,
        meeting: Mapping[str, Any],
        attendee: Mapping[str, Any],
        *,
        audio: FrameSource | float | str | Path | MediaStreamTrack | None = None,
        receive_videos: int = 0,
        content_share: bool = False,
        name: str | None = None,
        **client_options: Any,
    ) -> None:
        self.signaling = SignalingClient(
            meeting, attendee, content_share=content_share, **client_options
        )
        self.audio = audio
        self.receive_videos = receive_videos
        self.name = name or self.signaling.info.external_user_id or self.signaling.attendee_id
        self.peer: ChimePeer | None = None
        self.subscribe_ack: SubscribeAck | None = None
        self.started_at: float | None = None
        self.step = "new"
        """The join step in progress (for error messages)."""
        self.peer_timings: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"<Bot {self.name} {self.attendee_id}>"

    @property
    def attendee_id(self) -> str:
        return self.signaling.attendee_id

    async def join(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        wait_audio: bool = True,
        reconnecting: bool = False,
    ) -> dict[str, float]:
        """Run the whole join sequence; see the module docstring.

        Args:
            timeout: for opening the socket, and again for JOIN→media (the JS client's
                two 15 s budgets).
            wait_audio: also wait for the first downlink audio packet.
            reconnecting: this replaces an earlier connection (see :meth:`reconnect`).

        Returns:
            :meth:`join_timings`.

        Raises:
            SignalingClosedError: the server closed the socket (4403, 4410, …).
            TimeoutError: a step did not finish in time; the message names it.
            ConnectionError: ICE or DTLS failed.
        """
        self.started_at = time.monotonic()
        self.step = "connect"
        await self.signaling.connect(timeout, reconnecting=reconnecting)
        try:
            async with asyncio.timeout(timeout):
                await self._join_and_connect(timeout, wait_audio)
        except TimeoutError as exc:
            raise TimeoutError(f"{self.name}: join timed out at step {self.describe()}") from exc
        self.step = "joined"
        return self.join_timings()

    def describe(self) -> str:
        """The current join step and peer state, for error messages."""
        state = f"{self.step!r}"
        if self.peer is not None:
            state += (
                f" (ice={self.peer.pc.iceConnectionState}"
                f" connection={self.peer.pc.connectionState}"
                f" audio packets={self.peer.audio_packets_received})"
            )
        return state

    async def _join_and_connect(self, timeout: float, wait_audio: bool) -> None:
        self.step = "join"
        await self.signaling.join(timeout)
        join_ack = self.signaling.join_ack
        if self.peer is not None:
            await self.peer.close()
        self.peer = ChimePeer(
            self.audio,
            receive_videos=self.receive_videos,
            ice_servers=ice_servers_from(join_ack.turn_credentials if join_ack else None),
        )
        self.step = "offer"
        offer = await self.peer.create_offer()
        self.step = "subscribe"
        self.subscribe_ack = await self.signaling.subscribe(offer, timeout=timeout)
        self.step = "answer"
        await self.peer.set_answer(self.subscribe_ack.sdp_answer)
        self.step = "ice"
        await self.peer.wait_ice_connected(timeout)
        self.step = "dtls"
        await self.peer.wait_dtls_connected(timeout)
        if wait_audio:
            self.step = "first audio packet"
            await self.peer.wait_audio_packets(1, timeout)
        self.peer_timings = dict(self.peer.timings)

    def join_timings(self) -> dict[str, float]:
        """Seconds from the start of :meth:`join` to each step of :data:`JOIN_STEPS` reached."""
        if self.started_at is None:
            return {}
        marks = {**self.signaling.timings}
        if self.peer is not None:
            marks.update(self.peer.timings)
        return {step: marks[step] - self.started_at for step in JOIN_STEPS if step in marks}

    async def reconnect(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, float]:
        """Reconnect as the JS client does (section 6.3): close the peer connection and the
        socket, then a new socket, a JOIN with the same ``audio_session_id``, a new peer
        connection and a new SUBSCRIBE."""
        if self.peer is not None:
            await self.peer.close()
            self.peer = None
        await self.signaling.close()
        return await self.join(timeout, reconnecting=True)

    async def wait_for(self, predicate: Callable[[Bot], bool], timeout: float) -> None:
        """Wait until ``predicate(self)`` holds, checked on every signaling frame."""
        await self.signaling.wait_for(lambda _: predicate(self), timeout, f"{self.name}")

    async def send_data_message(self, topic: str, data: bytes | str, lifetime_ms: int = 0) -> None:
        await self.signaling.send_data_message(topic, data, lifetime_ms)

    async def set_muted(self, muted: bool) -> None:
        await self.signaling.set_muted(muted)

    async def leave(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """LEAVE, wait for LEAVE_ACK (or the close), close the socket, then the peer."""
        await self.signaling.leave(timeout)
        await self.close()

    async def close(self) -> None:
        """Close the socket (without LEAVE) and the peer connection. Idempotent."""
        await self.signaling.close()
        if self.peer is not None:
            await self.peer.close()
