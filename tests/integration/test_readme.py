"""The README's boto3 quick start works as written against a running server."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

from tests.helpers.server import ACCESS_KEY_ID, SECRET_ACCESS_KEY

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_boto3_quick_start_creates_a_meeting_and_an_attendee(
    server: Any, tmp_path: Path, capsys: Any
) -> None:
    match = re.search(r"## Quick start with boto3\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "the README has a boto3 quick start"
    code = (
        match.group(1)
        .replace("<AccessKeyId from carillon-data/credentials.json>", ACCESS_KEY_ID)
        .replace("<SecretAccessKey from carillon-data/credentials.json>", SECRET_ACCESS_KEY)
        .replace("http://127.0.0.1:8080", server.endpoint)
    )
    script = tmp_path / "quick_start.py"
    script.write_text(code)
    namespace = runpy.run_path(str(script))
    meeting, attendee = namespace["meeting"], namespace["attendee"]
    assert meeting["MediaPlacement"]["SignalingUrl"].endswith(meeting["MeetingId"])
    assert attendee["JoinToken"]
    printed = capsys.readouterr().out
    assert attendee["JoinToken"] in printed
