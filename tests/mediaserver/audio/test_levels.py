from __future__ import annotations

import pytest

from mediaserver.audio.levels import (
    SILENT_LEVEL,
    SpeakerChange,
    SpeakerSelector,
    signal_strength,
    volume_from_level,
)
from mediaserver.errors import InvalidArgument


@pytest.mark.parametrize(
    ("level", "volume"),
    [(0, 0), (14, 14), (14.4, 14), (20.6, 21), (42, 42), (127, 127), (-3, 0), (200, 127)],
)
def test_volume_is_round_minus_dbov(level: float, volume: int) -> None:
    assert volume_from_level(level) == volume


@pytest.mark.parametrize(
    ("loss", "silent_for", "strength"),
    [
        (0.0, 0.02, 2),
        (0.05, 0.02, 2),
        (0.06, 0.02, 1),
        (0.2, 0.5, 1),
        (0.21, 0.02, 0),
        (0.0, 2.0, 0),
        (0.0, None, 0),
    ],
)
def test_signal_strength(loss: float, silent_for: float | None, strength: int) -> None:
    assert signal_strength(loss, silent_for) == strength


def feed(sel: SpeakerSelector, levels: dict[int, int], ticks: int = 1) -> SpeakerChange:
    change = SpeakerChange((), (), ())
    for _ in range(ticks):
        for slot, level in levels.items():
            sel.report(slot, level)
        change = sel.select()
    return change


def make(n: int = 6, **kwargs: float) -> SpeakerSelector:
    sel = SpeakerSelector(**kwargs)  # type: ignore[arg-type]
    for slot in range(n):
        sel.reset_slot(slot)
        sel.set_eligible(slot, True)
    return sel


def test_free_slots_fill_at_once_loudest_first() -> None:
    sel = make(max_speakers=2)
    change = feed(sel, {0: 40, 1: 20, 2: 30, 3: 127})
    assert change.speakers == (1, 2)
    assert change.entered == (1, 2) and change.left == ()


def test_quiet_sources_are_not_speakers() -> None:
    sel = make()
    assert feed(sel, {0: 60, 1: 127}, ticks=10).speakers == ()


def test_challenger_must_win_by_margin_for_k_ticks() -> None:
    sel = make(max_speakers=2, switch_ticks=5, margin=6)
    feed(sel, {0: 30, 1: 30}, ticks=10)
    # Slot 2 is only 3 dB louder than the weakest: never switches.
    assert feed(sel, {0: 30, 1: 30, 2: 27}, ticks=20).speakers == (0, 1)
    # Slot 3 is 15 dB louder: switches after 5 ticks, not before.
    changes = [feed(sel, {0: 30, 1: 31, 3: 15}) for _ in range(6)]
    switched = [i for i, c in enumerate(changes) if c.entered]
    assert switched and switched[0] >= 4
    final = changes[-1].speakers
    assert 3 in final and 0 in final and 1 not in final


def test_flapping_challengers_do_not_switch() -> None:
    sel = make(max_speakers=1, switch_ticks=3)
    feed(sel, {0: 30}, ticks=5)
    for i in range(20):
        loud = 1 if i % 2 else 2
        change = feed(sel, {0: 30, loud: 10, 3 - loud: 127})
        assert change.speakers == (0,)


def test_silent_speaker_leaves_after_hold() -> None:
    sel = make(hold_ticks=5)
    feed(sel, {0: 20}, ticks=3)
    changes = [feed(sel, {0: 127}) for _ in range(10)]
    left_at = next(i for i, c in enumerate(changes) if c.left)
    assert 5 <= left_at <= 8  # release smoothing, then the hold time
    assert changes[-1].speakers == ()


def test_stale_source_counts_as_silent() -> None:
    sel = make(hold_ticks=2, stale_ticks=3)
    feed(sel, {0: 20}, ticks=3)
    changes = [sel.select() for _ in range(10)]
    assert any(c.left == (0,) for c in changes)


def test_ineligible_speaker_leaves_at_once() -> None:
    sel = make()
    feed(sel, {0: 20, 1: 20}, ticks=3)
    sel.set_eligible(0, False)
    change = feed(sel, {0: 20, 1: 20})
    assert change.left == (0,) and change.speakers == (1,)
    assert sel.drop(1) and not sel.drop(1)
    assert sel.speakers == ()


def test_capacity_grows() -> None:
    sel = SpeakerSelector(capacity=2)
    sel.reset_slot(100)
    sel.set_eligible(100, True)
    assert sel.capacity >= 101
    assert feed(sel, {100: 10}).speakers == (100,)


def test_audible_lists_eligible_sources_below_42() -> None:
    sel = make()
    feed(sel, {0: 20, 1: 41, 2: 50, 3: 10}, ticks=20)
    sel.set_eligible(3, False)
    slots, volumes = sel.audible()
    assert list(slots) == [0, 1] and list(volumes) == [20, 41]
    assert float(sel.smoothed[5]) == SILENT_LEVEL


@pytest.mark.parametrize(
    "kwargs", [{"max_speakers": 0}, {"switch_ticks": 0}, {"hold_ticks": 0}, {"stale_ticks": 0}]
)
def test_rejects_bad_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidArgument):
        SpeakerSelector(**kwargs)
