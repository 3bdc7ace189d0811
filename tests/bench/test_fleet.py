"""Bot worker processes (bench/fleet.py) and the progress bar (bench/progress.py)."""

from __future__ import annotations

import argparse
import io
import os

import pytest

from bench.fleet import Fleet, WorkerError, WorkerState, schedule
from bench.options import process_count
from bench.progress import Progress


async def _remember(state: WorkerState, value: int) -> tuple[int, int, int]:
    state.data.setdefault("values", []).append(value)
    state.count_join()
    return state.index, os.getpid(), sum(state.data["values"])


async def _fail(state: WorkerState) -> None:
    raise ValueError(f"worker {state.index} refuses")


async def test_commands_run_in_each_worker_process_and_keep_state() -> None:
    with Fleet(2, sorted(os.sched_getaffinity(0))) as fleet:
        first = await fleet.call(_remember, [{"value": 1}, {"value": 10}])
        second = await fleet.call(_remember, {"value": 5})
        only = await fleet.call(_remember, {"value": 100}, only=[1])
        assert [r[0] for r in first] == [0, 1]
        pids = {r[1] for r in first}
        assert len(pids) == 2 and os.getpid() not in pids, "two separate processes"
        assert [r[2] for r in second] == [6, 15], "state survives between commands"
        assert only == [(1, first[1][1], 115)]
        assert fleet.joined_count == 5, "the shared counter sums every worker's joins"
        with pytest.raises(WorkerError, match="ValueError: worker 0 refuses"):
            await fleet.call(_fail)
        assert (await fleet.call(_remember, {"value": 0}))[0][2] == 6, "workers survive errors"


def test_joins_are_scheduled_at_the_overall_rate() -> None:
    t0 = 100.0
    assert [schedule(t0, 4.0, k) for k in range(5)] == [100.0, 100.25, 100.5, 100.75, 101.0]
    assert schedule(t0, 0.0, 7) == t0, "rate 0 is a burst"


def test_process_count_defaults_to_one_per_200_bots() -> None:
    auto = argparse.Namespace(processes=0)
    assert process_count(auto, 10) == 1
    assert process_count(auto, 200) == 1
    assert process_count(auto, 750) == 4
    assert process_count(argparse.Namespace(processes=3), 10) == 3
    with pytest.raises(SystemExit, match="--processes"):
        process_count(argparse.Namespace(processes=-1), 10)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal() -> None:
    stream = _Tty()
    progress = Progress("joining", 10, stream=stream)
    progress.update(5)
    progress.finish(10)
    text = stream.getvalue()
    assert text.startswith("\rjoining [############............] 5/10")
    assert "[########################] 10/10" in text and text.endswith("\n")
    assert text.count("\n") == 1


def test_progress_prints_plain_lines_at_most_every_few_seconds_elsewhere() -> None:
    stream = io.StringIO()
    progress = Progress("storm", 0, stream=stream, unit="joins")
    for done in range(50):
        progress.update(done)
    progress.finish(50)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("storm: 0 joins") and lines[-1].startswith("storm: 50 joins")
    assert len(lines) == 2, "one line at the start, one at the end (no spam in logs)"
