"""Benchmark smoke runs: each scenario runs briefly end to end (never a timed assertion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _bench(tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--runs", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "\n| " in proc.stdout, "the summary table is printed"
    result: dict[str, object] = json.loads(out.read_text())
    return result


def test_control_plane_bench_smoke(tmp_path: Path) -> None:
    result = _bench(
        tmp_path, "control-plane", "--duration", "1", "--latency-requests", "50",
        "--concurrency", "2",
    )  # fmt: skip
    median = result["median"]
    assert isinstance(median, dict)
    assert median["errors"] == 0
    assert median["create_attendee_rps"] > 0


def test_join_bench_smoke(tmp_path: Path) -> None:
    result = _bench(
        tmp_path, "join", "--sequential", "2", "--burst", "3", "--idle", "4",
        "--duration", "1", "--join-rate", "4",
    )  # fmt: skip
    runs = result["runs"]
    assert isinstance(runs, list) and len(runs) == 1
    run: dict[str, dict[str, float]] = runs[0]
    assert run["one"]["count"] == 2
    assert run["burst"]["count"] == 3
    assert run["idle"]["attendees"] == 4
    assert run["idle"]["audio_packets_per_attendee_per_s"] > 25


def test_audio_room_bench_smoke(tmp_path: Path) -> None:
    plot = tmp_path / "audio-room.png"
    result = _bench(tmp_path, "audio-room", "--sizes", "7", "--duration", "2", "--plot", str(plot))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "a PNG plot was written"
    medians = result["median"]
    assert isinstance(medians, list) and len(medians) == 1
    size: dict[str, float] = medians[0]
    assert size["attendees"] == 7
    assert size["m2e_bursts"] > 0, "the probes heard the speakers' bursts"
    assert size["loss_pct_median"] < 50


def test_churn_and_data_flood_bench_smoke(tmp_path: Path) -> None:
    churn = _bench(tmp_path, "churn", "--concurrency", "3", "--duration", "2", "--stay", "0.3")
    median = churn["median"]
    assert isinstance(median, dict)
    assert median["joins"] > 0 and median["failures"] == 0
    flood = _bench(tmp_path, "data-flood", "--receivers", "3", "--duration", "3", "--rate", "150")
    median = flood["median"]
    assert isinstance(median, dict)
    assert median["delivered_per_receiver"] == median["sent"] - median["throttled_back_to_sender"]


def test_video_meeting_bench_smoke(tmp_path: Path) -> None:
    result = _bench(
        tmp_path, "video-meeting", "--publishers", "1", "--subscribers", "2", "--duration", "2"
    )
    median = result["median"]
    assert isinstance(median, dict)
    assert median["subscriptions"] == 2
    assert median["fps_min"] > 5, "every subscriber receives the camera's frames"
