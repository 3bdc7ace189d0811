"""Drive a meeting through a running Carillon container's ports (``scripts/test-container.sh``).

Not a pytest module (no ``test_`` prefix): the container test script runs it, twice:

``join``
    With ``--demo-page``, GET / and GET /app.js must serve the demo page. Then
    CreateMeeting and CreateAttendee with boto3 against ``--endpoint``; then the attendee
    joins as ``amazon-chime-sdk-js`` does (chime-signaling-protocol.md §1.1, §3): a
    WebSocket to ``MediaPlacement.SignalingUrl`` with the subprotocols
    ``["_aws_wt_session", JoinToken]``, JOIN, the first INDEX, SUBSCRIBE carrying the offer
    of a :class:`bench.litepeer.LitePeer`, SUBSCRIBE_ACK's answer, ICE and DTLS over UDP to
    the answer's candidate, and downlink audio packets must arrive. Then LEAVE, and the
    GetMeeting and GetAttendee answers are written to ``--state``.
``verify``
    After the container was replaced (same data volume): GetMeeting and GetAttendee must
    answer exactly what ``--state`` holds, ListAttendees must list the attendee, and the
    same attendee joins again and receives audio.

Run from the repository root: ``python -m tests.container.drive_meeting join --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench.litepeer import LitePeer
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import (
    audio_send_stream,
    client_details,
    receive_stream_ids_for,
    signaling_subprotocols,
    signaling_url,
)
from signaling.client_session import ClientSignalingSession
from signaling.events import (
    ErrorStatusReceived,
    Event,
    IndexReceived,
    LeaveAckReceived,
    SubscribeAckReceived,
)
from signaling.messages import JoinFlags, StreamServiceType

STEP_TIMEOUT = 15.0
"""The JS client's budget for each join step (socket open, JOIN → media)."""
E = TypeVar("E", bound=Event)

AUDIO_PACKETS = 50
"""Downlink packets to wait for: one second of the server's 20 ms audio clock."""


def log(message: str) -> None:
    print(f"[drive_meeting] {message}", flush=True)


def chime_client(args: argparse.Namespace) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "chime-sdk-meetings",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id=args.access_key_id,
        aws_secret_access_key=args.secret_access_key,
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
    )


class SignalingConnection:
    """One attendee's signaling socket: the sans-I/O client session over ``websockets``."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.session = ClientSignalingSession(wall_clock=time.time)
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.closed = False

    @classmethod
    async def open(
        cls, meeting: Mapping[str, Any], attendee: Mapping[str, Any]
    ) -> SignalingConnection:
        url = signaling_url(meeting["MediaPlacement"]["SignalingUrl"])
        protocols = signaling_subprotocols(attendee["JoinToken"])
        websocket = await connect(
            url,
            subprotocols=[Subprotocol(p) for p in protocols],
            open_timeout=STEP_TIMEOUT,
            ping_interval=None,
            close_timeout=2.0,
            proxy=None,
        )
        if websocket.subprotocol != protocols[0]:
            raise AssertionError(f"the server chose subprotocol {websocket.subprotocol!r}")
        return cls(websocket)

    async def _read(self) -> None:
        try:
            async for message in self.websocket:
                self.session.receive_frame(message)
                self.events.extend(self.session.events_received())
                await self.flush()  # PONGs to the server's PINGs
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._changed.set()

    async def flush(self) -> None:
        for frame in self.session.frames_to_send():
            await self.websocket.send(frame)

    async def wait_event(self, kind: type[E], what: str) -> E:
        """The first received event of ``kind``; fails on a socket close or an error status."""
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                for event in self.events:
                    if isinstance(event, ErrorStatusReceived):
                        raise AssertionError(f"error status while waiting for {what}: {event}")
                    if isinstance(event, kind):
                        self.events.remove(event)
                        return event
                if self.closed:
                    code = self.websocket.close_code
                    raise AssertionError(f"signaling closed ({code}) while waiting for {what}")
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        await self.websocket.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def join_and_receive_audio(meeting: Mapping[str, Any], attendee: Mapping[str, Any]) -> None:
    """The JS client's join sequence with a LitePeer for media; asserts downlink audio."""
    placement = meeting["MediaPlacement"]
    local_host = urlsplit(placement["SignalingUrl"]).hostname or "127.0.0.1"
    peer = LitePeer(certificate=DtlsCertificate.generate())
    await peer.start(local_host)
    started = time.monotonic()
    signaling = await SignalingConnection.open(meeting, attendee)
    try:
        signaling.session.send_join(
            audio_session_id=secrets.randbits(32) or 1,
            client_details=client_details(app_name="carillon-container-test"),
            protocol_version=2,
            flags=JoinFlags.HAS_STREAM_UPDATE,
        )
        await signaling.flush()
        await signaling.wait_event(IndexReceived, "the first INDEX")
        log(f"joined: INDEX after {time.monotonic() - started:.2f}s")

        offer = peer.offer()
        signaling.session.send_subscribe(
            sdp_offer=offer,
            duplex=StreamServiceType.RX,
            send_streams=[audio_send_stream(attendee["AttendeeId"])],
            receive_stream_ids=receive_stream_ids_for(offer),
            audio_host=placement["AudioHostUrl"],
            audio_checkin=False,
            audio_muted=False,
        )
        await signaling.flush()
        ack = await signaling.wait_event(SubscribeAckReceived, "SUBSCRIBE_ACK")
        if not ack.sdp_answer:
            raise AssertionError("SUBSCRIBE_ACK carries no sdp_answer")
        if f" {placement['AudioHostUrl'].rsplit(':', 1)[1]} typ host" not in ack.sdp_answer:
            raise AssertionError(f"the answer's candidate is not AudioHostUrl:\n{ack.sdp_answer}")

        await peer.connect(ack.sdp_answer, timeout=STEP_TIMEOUT)
        log(f"ICE and DTLS connected after {time.monotonic() - started:.2f}s")
        await wait_until(
            lambda: peer.audio_packets >= AUDIO_PACKETS, 10.0, f"{AUDIO_PACKETS} audio packets"
        )
        first = peer.timings.first_audio
        log(
            f"received {peer.audio_packets} audio packets ({peer.audio_bytes} bytes), the first "
            f"{(first or started) - started:.2f}s after the socket opened"
        )

        signaling.session.send_leave()
        await signaling.flush()
        await signaling.wait_event(LeaveAckReceived, "LEAVE_ACK")
        log("left the meeting (LEAVE_ACK)")
    finally:
        peer.close()
        await signaling.close()


def describe(chime: Any, meeting_id: str, attendee_id: str) -> dict[str, Any]:
    meeting = chime.get_meeting(MeetingId=meeting_id)["Meeting"]
    attendee = chime.get_attendee(MeetingId=meeting_id, AttendeeId=attendee_id)["Attendee"]
    return {"Meeting": meeting, "Attendee": attendee}


def check_demo_page(endpoint: str) -> None:
    """The demo page and its bundle are served from the image (built by its web stage)."""
    for path, kind in (("/", "text/html"), ("/app.js", "text/javascript")):
        with urllib.request.urlopen(endpoint + path, timeout=10) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
        if response.status != 200 or not content_type.startswith(kind) or not body:
            raise AssertionError(f"GET {path}: {response.status} {content_type} {len(body)} B")
        log(f"GET {path}: {response.status} {content_type}, {len(body)} bytes")


def run_join(args: argparse.Namespace) -> None:
    if args.demo_page:
        check_demo_page(args.endpoint)
    chime = chime_client(args)
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()),
        MediaRegion="us-east-1",
        ExternalMeetingId="container-test",
    )["Meeting"]
    attendee = chime.create_attendee(MeetingId=meeting["MeetingId"], ExternalUserId="bot-1")[
        "Attendee"
    ]
    log(f"meeting {meeting['MeetingId']}, attendee {attendee['AttendeeId']}")
    log(f"SignalingUrl {meeting['MediaPlacement']['SignalingUrl']}")
    asyncio.run(join_and_receive_audio(meeting, attendee))
    state = describe(chime, meeting["MeetingId"], attendee["AttendeeId"])
    if state["Meeting"] != meeting:
        raise AssertionError(f"GetMeeting differs from CreateMeeting: {state['Meeting']}")
    args.state.write_text(json.dumps(state, indent=2, sort_keys=True))
    log(f"wrote {args.state}")


def run_verify(args: argparse.Namespace) -> None:
    chime = chime_client(args)
    before = json.loads(args.state.read_text())
    meeting_id = before["Meeting"]["MeetingId"]
    attendee_id = before["Attendee"]["AttendeeId"]
    after = describe(chime, meeting_id, attendee_id)
    for key in ("Meeting", "Attendee"):
        if after[key] != before[key]:
            raise AssertionError(
                f"Get{key} changed across the restart:\n{before[key]}\n{after[key]}"
            )
    listed = chime.list_attendees(MeetingId=meeting_id)["Attendees"]
    if [a["AttendeeId"] for a in listed] != [attendee_id]:
        raise AssertionError(f"ListAttendees: {listed}")
    log("GetMeeting, GetAttendee and ListAttendees unchanged after the restart")
    asyncio.run(join_and_receive_audio(after["Meeting"], after["Attendee"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("phase", choices=["join", "verify"])
    parser.add_argument("--endpoint", required=True, help="http://host:port of the API")
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--secret-access-key", required=True)
    parser.add_argument("--state", type=Path, required=True, help="JSON file between phases")
    parser.add_argument(
        "--demo-page", action="store_true", help="join: also check GET / and GET /app.js"
    )
    args = parser.parse_args(argv)
    if args.phase == "join":
        run_join(args)
    else:
        run_verify(args)
    log(f"{args.phase}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
