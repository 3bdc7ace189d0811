"""The unmodified aws-sdk-js-v3 client (``@aws-sdk/client-chime-sdk-meetings``) against the
real server: SigV4 from the JS signer, JSON shapes, pagination, modeled errors.

The script is tests/sdkjs/control_plane.cjs; Node and the SDK come from ``make test``'s
web install (web/package.json). Without them the test fails under
``CARILLON_REQUIRE_BROWSER=1`` (as in ``make test``) and is skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, ServerProcess, running_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("control_plane.cjs")
SDK = ROOT / "web" / "node_modules" / "@aws-sdk" / "client-chime-sdk-meetings"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    missing = [
        what for what, ok in (("node", shutil.which("node")), (str(SDK), SDK.is_dir())) if not ok
    ]
    if missing:
        message = f"aws-sdk-js-v3 test needs {', '.join(missing)} (sh web/build.sh installs it)"
        if os.environ.get("CARILLON_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    data_dir = tmp_path_factory.mktemp("carillon-sdkjs") / "data"
    with running_server(data_dir, ["--api-rate", "1000", "--api-burst", "1000"]) as srv:
        yield srv


def run_script(server: ServerProcess) -> dict[str, Any]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }
    proc = subprocess.run(
        ["node", str(SCRIPT), server.endpoint],
        env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + server.log()[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_the_js_sdk_runs_a_meeting_lifecycle(server: ServerProcess) -> None:
    out = run_script(server)
    created = out["created"]
    assert created["status"] == 200  # meetings creates answer 200 (control-plane-api.md)
    assert created["attendees"] == ["alice", "bob"]
    assert created["signalingUrl"] == (
        f"ws://127.0.0.1:{server.http_port}/control/{created['meetingId']}"
    )
    assert created["joinTokenLength"] > 20
    assert out["carol"] == {"Audio": "SendReceive", "Video": "Receive", "Content": "None"}
    # The "aws:" prefix is reserved: a per-item error, not a failed batch.
    assert out["batch"]["attendees"] == ["dave"]
    assert [e[0] for e in out["batch"]["errors"]] == ["aws:reserved"]
    assert out["listed"] == ["alice", "bob", "carol", "dave"]
    assert out["tags"] == [{"Key": "team", "Value": "carillon"}]
    assert out["missing"]["name"] == "NotFoundException"
    assert out["missing"]["status"] == 404
    assert out["missing"]["fault"] == "client"
    assert out["deleted"] == 204
    assert out["afterDelete"] == "NotFoundException"
    assert out["badSignature"]["status"] == 403
    # AWS's common auth layer code, surfaced by the SDK as is (control-plane-api.md §4).
    assert out["badSignature"]["name"] == "InvalidSignatureException"
