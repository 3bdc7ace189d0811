"""The unmodified amazon-chime-sdk-js, in headless Chromium, against the real server.

Each test runs one case of ``tests/browser/run.mjs`` (Node + playwright-core, one Chromium
process per attendee) against a ``carillon serve`` process started by
:func:`tests.helpers.server.running_server`, and fails with the runner's output and the
server log. Cases that call the meetings API (DeleteAttendee, DeleteMeeting) ask this
wrapper over the runner's stdin/stdout, so the AWS credentials stay in Python (boto3).

Needs Node, ``/usr/bin/chromium`` and the built page (``sh scripts/install-browser-deps.sh``).
Without them the tests are skipped, or fail if ``CARILLON_REQUIRE_BROWSER=1``.
``CARILLON_BROWSER_BASE_URL=http://host:port`` runs them against a server already running
(with the test credentials of :mod:`tests.helpers.server`) instead of starting one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser.python_camera import PythonCamera
from tests.helpers.server import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    TIMEOUT_FACTOR,
    ServerProcess,
    running_server,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
RUNNER = Path(__file__).with_name("run.mjs")
CHROMIUM = os.environ.get("CARILLON_CHROMIUM", "/usr/bin/chromium")
TONES_HZ = (500, 800, 1250)
"""Must match TONES in run.mjs (attendees A, B, C)."""
CASE_TIMEOUT = 240.0


def _missing_dependencies() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not Path(CHROMIUM).is_file():
        missing.append(CHROMIUM)
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        missing.append("web/node_modules (npm ci)")
    if not (WEB / "dist" / "app.js").is_file():
        missing.append("web/dist/app.js (sh web/build.sh)")
    return missing


@pytest.fixture(scope="module", autouse=True)
def _browser_dependencies() -> None:
    missing = _missing_dependencies()
    if missing:
        message = (
            f"browser test dependencies missing: {', '.join(missing)}; "
            "run sh scripts/install-browser-deps.sh"
        )
        if os.environ.get("CARILLON_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def write_tone(path: Path, hz: int, seconds: int = 1, rate: int = 48000) -> None:
    """A mono 16-bit sine at -10.5 dBFS; a whole number of cycles, so it loops cleanly."""
    t = np.arange(seconds * rate) / rate
    samples = (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


@pytest.fixture(scope="module")
def tone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tones")
    for hz in TONES_HZ:
        write_tone(directory / f"tone-{hz}.wav", hz)
    return directory


@dataclass
class _ExternalServer:
    """A server started by someone else (CARILLON_BROWSER_BASE_URL)."""

    endpoint: str

    def log(self) -> str:
        return "(external server: see its own log)"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "chime-sdk-meetings",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )


Server = ServerProcess | _ExternalServer


def _check_demo_routes(server: Server) -> None:
    try:
        with urllib.request.urlopen(server.endpoint + "/", timeout=5) as response:
            if response.status == 200:
                return
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    pytest.fail(
        f"GET / answered {status}: the demo routes are not served. Wire "
        "mediaserver.demo.demo_routes into ControlApi(extra_routes=...) in mediaserver/app.py, "
        "and build the page (sh web/build.sh)."
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    external = os.environ.get("CARILLON_BROWSER_BASE_URL")
    if external:
        found: Server = _ExternalServer(external.rstrip("/"))
        _check_demo_routes(found)
        yield found
        return
    with running_server(tmp_path_factory.mktemp("browser-server") / "data") as started:
        _check_demo_routes(started)
        yield started


@dataclass
class CaseResult:
    name: str
    ok: bool
    error: str | None
    metrics: dict[str, Any]
    output: str
    returncode: int | None = None
    rpc_calls: list[str] = field(default_factory=list)


_CAMERAS: dict[str, PythonCamera] = {}
"""The Python cameras a running case started (closed when the case ends)."""


def _answer_rpc(server: Server, request: dict[str, Any]) -> dict[str, Any]:
    op, args = request["op"], request["args"]
    result: Any = None
    try:
        client = server.client()
        if op == "delete_attendee":
            client.delete_attendee(MeetingId=args["MeetingId"], AttendeeId=args["AttendeeId"])
        elif op == "delete_meeting":
            client.delete_meeting(MeetingId=args["MeetingId"])
        elif op == "python_camera_start":
            meeting = client.get_meeting(MeetingId=args["MeetingId"])
            attendee = client.create_attendee(
                MeetingId=args["MeetingId"], ExternalUserId="python-camera"
            )
            camera = PythonCamera(meeting, attendee)
            _CAMERAS[camera.attendee_id] = camera
            camera.start()
            result = {"attendeeId": camera.attendee_id, "streamIds": camera.stream_ids}
        elif op == "python_camera_layer":
            result = _CAMERAS[args["attendeeId"]].set_layer(args["rid"], bool(args["active"]))
        else:
            return {"id": request["id"], "ok": False, "error": f"unknown op {op}"}
    except Exception as error:
        return {"id": request["id"], "ok": False, "error": repr(error)}
    return {"id": request["id"], "ok": True, "result": result}


def run_case(server: Server, tone_dir: Path, name: str) -> CaseResult:
    """Run one case of run.mjs; answer its RPC requests; collect its output and result."""
    process = subprocess.Popen(
        ["node", str(RUNNER), "--base-url", server.endpoint, "--tone-dir", str(tone_dir), name],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CARILLON_BROWSER_RPC": "1"},
    )
    watchdog = threading.Timer(CASE_TIMEOUT * TIMEOUT_FACTOR, process.kill)
    watchdog.start()
    lines: list[str] = []
    result: dict[str, Any] | None = None
    rpc_calls: list[str] = []
    try:
        assert process.stdout is not None and process.stdin is not None
        for line in process.stdout:
            if line.startswith("@@rpc "):
                request = json.loads(line[len("@@rpc ") :])
                rpc_calls.append(request["op"])
                reply = _answer_rpc(server, request)
                lines.append(f"(rpc {request['op']} → {'ok' if reply['ok'] else reply['error']})\n")
                process.stdin.write(json.dumps(reply) + "\n")
                process.stdin.flush()
            elif line.startswith("@@result "):
                result = json.loads(line[len("@@result ") :])
            else:
                lines.append(line)
        process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        while _CAMERAS:
            _CAMERAS.popitem()[1].close()
    output = "".join(lines)
    if result is None:
        return CaseResult(
            name, False, "the runner gave no result", {}, output, process.returncode, rpc_calls
        )
    return CaseResult(
        name,
        bool(result["ok"]),
        result["error"],
        result["metrics"],
        output,
        process.returncode,
        rpc_calls,
    )


CASES = [
    pytest.param("join", id="a-join"),
    pytest.param("roster", id="b-roster"),
    pytest.param("mute", id="b-mute"),
    pytest.param("mixminus", id="c-mixminus"),
    pytest.param("volume", id="d-volume"),
    pytest.param("chat", id="e-chat"),
    pytest.param("video", id="f-video"),
    pytest.param("simulcast_switches", id="f-simulcast-switches"),
    pytest.param("content", id="g-content"),
    pytest.param("delete_attendee", id="h-delete-attendee"),
    pytest.param("delete_meeting", id="h-delete-meeting"),
    pytest.param("reconnect", id="i-reconnect"),
]


@pytest.mark.timeout(CASE_TIMEOUT + 60)
@pytest.mark.parametrize("case", CASES)
def test_browser_case(server: Server, tone_dir: Path, case: str) -> None:
    result = run_case(server, tone_dir, case)
    if not result.ok:
        pytest.fail(
            f"browser case {case} failed: {result.error}\n"
            f"--- runner output ---\n{result.output}\n"
            f"--- server log (tail) ---\n{server.log()[-6000:]}",
            pytrace=False,
        )


@pytest.mark.timeout(CASE_TIMEOUT + 60)
def test_simulcast_with_server_side_adaption(server: Server, tone_dir: Path) -> None:
    """VideoPriorityBasedPolicy with simulcast asks for server-side adaption in JOIN; the
    server grants it in JOIN_ACK, picks the layers and reports its downlink estimate in
    BITRATES; the subscribers keep decoding the remote simulcast camera without a
    reconnection (run.mjs ``simulcast_adaption`` asserts all of it in the pages)."""
    result = run_case(server, tone_dir, "simulcast_adaption")
    if not result.ok:
        pytest.fail(
            f"browser case simulcast_adaption failed: {result.error}\n"
            f"--- runner output ---\n{result.output}\n"
            f"--- server log (tail) ---\n{server.log()[-6000:]}",
            pytrace=False,
        )
    estimates = result.metrics["serverEstimatesKbpsAtB"]
    assert estimates and all(kbps > 0 for kbps in estimates), result.metrics
    # The SDK takes the server's estimate as its own downlink bandwidth (MonitorTask).
    assert result.metrics["availableIncomingBitrateAtB"] / 1000 in estimates, result.metrics
    uplink = {k: v for k, v in result.metrics.items() if k.endswith("AtA")}
    print(f"simulcast uplink at A: {json.dumps(uplink)}")


@pytest.mark.timeout(CASE_TIMEOUT + 60)
def test_join_time(server: Server, tone_dir: Path) -> None:
    """Join click → audioVideoDidStart over 10 joins (a measurement for BENCHMARKS.md;
    speed is recorded, never asserted)."""
    result = run_case(server, tone_dir, "jointime")
    if not result.ok:
        pytest.fail(f"jointime failed: {result.error}\n{result.output}", pytrace=False)
    print(f"browser join time: {json.dumps(result.metrics)}")
    assert len(result.metrics["joinMs"]) == 10 and result.metrics["p50"] > 0, result.metrics
