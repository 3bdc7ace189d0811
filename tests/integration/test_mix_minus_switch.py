"""Speaker changes through the real server are click-free in what the clients decode.

The server runs with ``--max-speakers 1``, so one louder talker taking over is a speaker
change: the old speaker leaves the mix, the new one enters, and both speakers' streams
move between their personal mix-minus and the shared mix.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from mediacodecs.opus import OpusEncoder
from tests.helpers.lite_room import Cosine, LiteAttendee, carries_tone, join_lite
from tests.helpers.server import ServerProcess, running_server
from tests.integration.test_join import create_attendee

pytestmark = pytest.mark.timeout(120)

LOW, HIGH = 500.0, 800.0
QUIET, LOUD = 0.03, 0.3
"""Peak amplitudes: the quiet talker is still speaking (about -33 dBov) but 20 dB down."""
_SLOPE = 32767.0 * 2.0 * np.pi / 48000.0
CLEAN_STEP = _SLOPE * max(LOUD * LOW + QUIET * HIGH, QUIET * LOW + LOUD * HIGH)
"""The largest sample-to-sample step the two tones make while they glide from one level to
the other (amplitude x 2 pi f / fs each, linear in between): about 1,090."""
CLICK_THRESHOLD = 1.5 * CLEAN_STEP
"""A click is a step above this (about 1,640). Measured: about 1,080 at the change; a new
speaker faded in twice (a bug this caught) stepped by 2,450 where frames meet, and a cut
without any fade steps by up to the loud amplitude (9,800) before Opus's band limit."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("carillon") / "data"
    args = ["--api-rate", "10000", "--api-burst", "10000", "--max-speakers", "1"]
    with running_server(data_dir, args) as srv:
        yield srv


async def test_speaker_changes_are_click_free(server: ServerProcess) -> None:
    chime = server.client()
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="switch"
    )
    # The decoded wave lags the encoder's input by its lookahead: start the cosines that
    # far in so that they peak where the mixer's frames start (the worst case for a cut).
    lookahead = OpusEncoder(1, 32000).lookahead
    first = Cosine(LOW, LOUD, phase_samples=lookahead)
    second = Cosine(HIGH, QUIET, phase_samples=lookahead)
    joined: list[LiteAttendee] = []

    async def join(user: str, **options: Any) -> LiteAttendee:
        attendee = await asyncio.to_thread(create_attendee, chime, meeting, user)
        member = await join_lite(meeting["Meeting"], attendee["Attendee"], **options)
        joined.append(member)
        return member

    try:
        a = await join("first", sources=[first])
        b = await join("second", sources=[second])
        ear = await join("ear")
        await asyncio.sleep(1.5)
        start = time.monotonic()
        await asyncio.sleep(0.5)
        # The second talker gets loud and the first quiet, gliding (no click at the source).
        first.glide(QUIET, 0.2)
        second.glide(LOUD, 0.2)
        await asyncio.sleep(1.5)
        for member, hears in ((ear, (LOW, HIGH)), (a, (HIGH,)), (b, (LOW,))):
            frames = member.frames(start)
            # The change happened in this recording: a tone came or went.
            states = [tuple(carries_tone(f, h, -40.0) for h in hears) for f in frames]
            assert len(set(states)) > 1, f"no speaker change heard by {member.peer.ufrag}"
            pcm = np.concatenate(frames).astype(np.int32)
            steps = np.abs(np.diff(pcm))
            worst = int(steps.argmax())
            assert steps[worst] <= CLICK_THRESHOLD, (
                f"a click of {steps[worst]} at sample {worst} of {pcm.size}"
            )
    finally:
        await asyncio.gather(*(m.close() for m in joined), return_exceptions=True)
