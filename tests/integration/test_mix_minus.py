"""The mix-minus mixer through the real server: each attendee hears the others, never itself.

Three bots send distinct tones (bench.media.bot_frequency); each bot's decoded downlink is
analysed with an FFT (issue "Audio: the mix-minus Opus mixer", tests with synthetic tones).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bench.bot import Bot
from bench.media import tone_level_db
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess
from tests.integration.test_join import Room

pytestmark = pytest.mark.timeout(120)

T = 15.0 * TIMEOUT_FACTOR
TONES = (500.0, 800.0, 1250.0)
"""One tone per bot (the browser tests use the same three)."""
HEARD_DB = -40.0
"""A tone at or above this level (dB of a full-scale sine) is audible in the mix; the bots'
tones arrive near -14 dB."""
REMOVED_DB = 30.0
"""An attendee's own tone must be at least this far below the weakest tone it hears. What is
left at its frequency is Opus coding noise of the others' tones (about 50 dB down at
32 kbit/s); without mix-minus it would be as loud as the others."""


async def _levels(bot: Bot, seconds: float, frequencies: list[float]) -> list[float]:
    assert bot.peer is not None
    since = time.monotonic()
    await asyncio.sleep(seconds)
    pcm = bot.peer.recorder.pcm(since=since)
    assert len(pcm) > 48000 * seconds * 0.5, "audio was recorded"
    return [tone_level_db(pcm, f) for f in frequencies]


@pytest.fixture
async def room(chime: Any, server: ServerProcess, request: pytest.FixtureRequest) -> Any:
    r = Room(chime, server, request.node.name[:60])
    yield r
    await asyncio.gather(*(b.close() for b in r.bots), return_exceptions=True)


async def test_three_attendees_hear_the_other_two_and_never_themselves(room: Room) -> None:
    bots = await asyncio.gather(*(room.bot(f"tone-{i}", audio=TONES[i]) for i in range(3)))
    tones = list(TONES)
    await asyncio.sleep(1.0)  # the speaker selection settles and the jitter buffers fill
    for index, bot in enumerate(bots):
        levels = await _levels(bot, 2.0, tones)
        others = [level for other, level in enumerate(levels) if other != index]
        assert min(others) > HEARD_DB, f"{bot.name} misses a tone: {levels}"
        assert levels[index] < min(others) - REMOVED_DB, f"{bot.name} hears itself: {levels}"


async def test_a_muted_attendee_leaves_everyone_s_mix(room: Room) -> None:
    bots = await asyncio.gather(*(room.bot(f"mute-{i}", audio=TONES[i]) for i in range(3)))
    tones = list(TONES)
    await asyncio.sleep(1.0)
    assert (await _levels(bots[1], 1.0, tones))[0] > HEARD_DB
    await bots[0].set_muted(True)
    await asyncio.sleep(0.5)
    for index, bot in enumerate(bots[1:], start=1):
        levels = await _levels(bot, 1.0, tones)
        heard = [lv for i, lv in enumerate(levels) if i not in (0, index)]
        assert levels[0] < min(heard) - REMOVED_DB, f"{bot.name} still hears the muted: {levels}"
    await bots[0].set_muted(False)
    await asyncio.sleep(0.5)
    assert (await _levels(bots[2], 1.0, tones))[0] > HEARD_DB


async def test_audio_metadata_reports_the_speakers(room: Room) -> None:
    bots = await asyncio.gather(*(room.bot(f"meta-{i}") for i in range(2)))
    speaker = bots[0]
    stream_id = bots[1].signaling.roster[speaker.attendee_id].audio_stream_id

    def loud(bot: Bot) -> bool:
        state = bot.signaling.audio_metadata.get(stream_id)
        return state is not None and state.volume is not None and state.volume <= 42

    await bots[1].wait_for(loud, T)
    own = bots[0].signaling.roster[bots[0].attendee_id].audio_stream_id
    await bots[0].wait_for(
        lambda b: (
            (s := b.signaling.audio_metadata.get(own)) is not None and s.signal_strength is not None
        ),
        T,
    )
