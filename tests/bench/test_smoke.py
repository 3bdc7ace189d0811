"""Benchmark smoke runs: every scenario runs briefly end to end, a few bots for a few seconds,
and writes its table, JSON and plot (never a timed assertion)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.server import BenchServer

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"
CARILLON = Path(sys.executable).parent / "carillon"


def _bench(tmp_path: Path, *args: str, command: list[str] | None = None) -> dict[str, Any]:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [*(command or [sys.executable, "-m", "bench"]), *args, "--runs", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "\n| " in proc.stdout, "the summary table is printed"
    result: dict[str, Any] = json.loads(out.read_text())
    assert "command" in result
    return result


def _png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG, f"{path} is a PNG plot"


def test_control_plane_bench_smoke_through_the_carillon_command(tmp_path: Path) -> None:
    assert CARILLON.exists(), "the console entry point is installed"
    result = _bench(
        tmp_path, "control-plane", "--duration", "1", "--latency-requests", "50",
        "--concurrency", "2", command=[str(CARILLON), "bench"],
    )  # fmt: skip
    median = result["median"]
    assert median["errors"] == 0
    assert median["create_attendee_rps"] > 0


def test_join_storm_over_two_bot_processes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _bench(
        tmp_path, "join", "--sequential", "2", "--burst", "3", "--storm", "6",
        "--duration", "1", "--join-rate", "6", "--processes", "2", "--out", str(out),
    )  # fmt: skip
    assert result["processes"] == 2
    runs = result["runs"]
    assert len(runs) == 1
    run = runs[0]
    assert run["one"]["count"] == 2
    assert run["burst"]["count"] == 3 and run["burst"]["failures"] == 0
    assert run["storm"]["count"] == 6 and run["storm"]["join_rate"] == 6
    assert sorted(j["connected"] for j in run["storm_joins"]) == [1, 2, 3, 4, 5, 6]
    assert run["storm_series"], "server CPU/RSS were sampled against attendees"
    assert run["idle"]["attendees"] == 6
    assert run["idle"]["audio_packets_per_attendee_per_s"] > 25
    _png(out / "join.png")
    assert not (out / "join.json").exists(), "--json wins over --out for the JSON"


def test_audio_room_bench_smoke(tmp_path: Path) -> None:
    plot = tmp_path / "audio-room.png"
    result = _bench(
        tmp_path, "audio-room", "--sizes", "7", "--duration", "2", "--plot", str(plot),
        "--processes", "2",
    )  # fmt: skip
    _png(plot)
    medians = result["median"]
    assert len(medians) == 1
    size = medians[0]
    assert size["attendees"] == 7 and size["join_failures"] == 0
    assert size["m2e_bursts"] > 0, "the probes heard the speakers' bursts across processes"
    assert size["loss_pct_median"] < 50
    assert result["largest_sustained"] in (0, 7)


def test_churn_and_data_flood_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "out"
    churn = _bench(
        tmp_path, "churn", "--concurrency", "2,3", "--duration", "2", "--stay", "0.3",
        "--out", str(out),
    )  # fmt: skip
    assert [m["attendees"] for m in churn["median"]] == [2, 3]
    assert all(m["joins"] > 0 and m["failures"] == 0 for m in churn["median"])
    _png(out / "churn.png")
    flood = _bench(
        tmp_path, "data-flood", "--receivers", "3", "--duration", "3", "--rate", "150",
        "--processes", "2",
    )  # fmt: skip
    median = flood["median"]
    assert median["join_failures"] == 0
    assert median["delivered_per_receiver"] == median["sent"] - median["throttled_back_to_sender"]


def test_video_meeting_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _bench(
        tmp_path, "video-meeting", "--publishers", "1", "--subscribers", "2", "--duration", "2",
        "--out", str(out),
    )  # fmt: skip
    median = result["median"][0]
    assert median["subscriptions"] == 2
    assert median["fps_min"] > 5, "every subscriber receives the camera's frames"
    _png(out / "video-meeting.png")


def test_mixer_and_sfu_bench_smoke(tmp_path: Path) -> None:
    mixer = _bench(
        tmp_path, "mixer", "--ticks", "3", "--naive-ticks", "1", "--warmup", "1",
        "--sizes", "10",
    )  # fmt: skip
    assert "10" in mixer["results"]
    sfu = _bench(
        tmp_path, "sfu", "--duration", "0.4", "--warmup", "0.4", "--fanout", "1->16",
        "--server-path",
    )  # fmt: skip
    measured = sfu["median"]["1->16"]
    assert "sfu_out_per_core" in measured and "server_out_per_core" in measured
    # The send time is read back from the forwarded payload (not a speed check: a
    # misplaced stamp reads as hours or as a negative time). A phase this short may
    # count nothing on a busy machine (NaN); what it counts must be plausible.
    p99 = measured["server_p99_ms"]
    assert math.isnan(p99) or 0 < p99 < 60_000, measured


def test_uplink_feedback_bench_smoke(tmp_path: Path) -> None:
    result = _bench(tmp_path, "uplink-feedback", "--packets", "2000")
    median = result["median"]
    assert median["unprotect_ns"] > 0 and median["record_ns"] > 0 and median["feedback_ns"] > 0


def test_bench_drives_a_running_server_by_url(tmp_path: Path) -> None:
    with BenchServer(cpu=None) as server:
        assert server.process is not None
        result = _bench(
            tmp_path, "join", "--url", server.endpoint, "--access-key-id",
            server.access_key_id, "--secret-access-key", server.secret_access_key,
            "--server-pid", str(server.process.pid), "--sequential", "1", "--burst", "2",
            "--storm", "3", "--duration", "1", "--join-rate", "10",
        )  # fmt: skip
    run = result["runs"][0]
    assert run["storm"]["count"] == 3
    assert run["idle"]["rss_mb"] > 0, "the --server-pid process was sampled"
