"""The server process: restart persistence, quotas, throttling, credentials, the AWS CLI."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.helpers.server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, running_server


def test_sigterm_then_restart_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        chime = server.client()
        meeting = chime.create_meeting(
            ClientRequestToken="restart-token",
            MediaRegion="us-west-2",
            ExternalMeetingId="persist",
            Tags=[{"Key": "k", "Value": "v"}],
        )["Meeting"]
        meeting_id = meeting["MeetingId"]
        attendees = chime.batch_create_attendee(
            MeetingId=meeting_id,
            Attendees=[{"ExternalUserId": f"p{i}"} for i in range(3)],
        )["Attendees"]
        code = server.stop(signal.SIGTERM)
        assert code == 0, server.log()
        assert "stopped" in server.log()
        server.start()
        chime = server.client()
        assert chime.get_meeting(MeetingId=meeting_id)["Meeting"] == meeting
        for attendee in attendees:
            got = chime.get_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
            assert got["Attendee"] == attendee
        assert chime.list_tags_for_resource(ResourceARN=meeting["MeetingArn"])["Tags"] == [
            {"Key": "k", "Value": "v"}
        ]
        again = chime.create_meeting(
            ClientRequestToken="restart-token", MediaRegion="us-west-2", ExternalMeetingId="persist"
        )["Meeting"]
        assert again == meeting


def test_default_rate_limit_throttles(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        chime = server.client()
        codes = []
        for _ in range(40):
            try:
                chime.get_meeting(MeetingId="00000000-0000-4000-8000-000000000000")
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
        # Burst 20 passes at once; 40 calls in well under a second are throttled after it.
        assert codes[:20] == ["NotFoundException"] * 20
        assert "ThrottlingException" in codes[20:]
        with pytest.raises(chime.exceptions.ThrottlingException) as info:
            for _ in range(30):
                chime.get_meeting(MeetingId="00000000-0000-4000-8000-000000000000")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_active_meeting_quota(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", ["--max-active-meetings", "2"]) as server:
        chime = server.client()
        first = chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="q1")["Meeting"]
        chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="q2")
        with pytest.raises(chime.exceptions.LimitExceededException):
            chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="q3")
        chime.delete_meeting(MeetingId=first["MeetingId"])
        chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="q3")


def test_max_attendees_per_meeting_raises_the_cap_for_load_tests(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", ["--max-attendees-per-meeting", "260"]) as server:
        chime = server.client()
        meeting_id = chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="big")[
            "Meeting"
        ]["MeetingId"]
        for first, count in ((0, 100), (100, 100), (200, 60)):
            created = chime.batch_create_attendee(
                MeetingId=meeting_id,
                Attendees=[{"ExternalUserId": f"bot-{first + i:03d}"} for i in range(count)],
            )
            assert len(created["Attendees"]) == count and not created["Errors"]
        with pytest.raises(chime.exceptions.LimitExceededException):
            chime.create_attendee(MeetingId=meeting_id, ExternalUserId="one-too-many")


def test_credentials_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"CARILLON_ACCESS_KEY_ID": "", "CARILLON_SECRET_ACCESS_KEY": ""}
    with running_server(data_dir, env=env) as server:
        stored = json.loads((data_dir / "credentials.json").read_text())
        mode = stat.S_IMODE(os.stat(data_dir / "credentials.json").st_mode)
        assert mode == 0o600
        assert stored["AccessKeyId"] in server.log()
        chime = server.client(
            aws_access_key_id=stored["AccessKeyId"],
            aws_secret_access_key=stored["SecretAccessKey"],
        )
        chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="gen")
        server.stop()
        first_log = server.log()
        server.start()
        assert server.log().count(stored["AccessKeyId"]) == first_log.count(stored["AccessKeyId"])


def test_aws_cli_smoke(tmp_path: Path) -> None:
    # The AWS CLI (v1, from PyPI) is a test dependency installed beside this interpreter.
    aws = str(Path(sys.executable).with_name("aws"))
    with running_server(tmp_path / "data") as server:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_CHIME_SDK_MEETINGS": server.endpoint,
        }
        out = subprocess.run(
            [aws, "chime-sdk-meetings", "create-meeting", "--client-request-token", "tok-cli",
             "--media-region", "us-east-1", "--external-meeting-id", "cli"],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        meeting: dict[str, Any] = json.loads(out.stdout)["Meeting"]
        assert meeting["ExternalMeetingId"] == "cli"
        missing = subprocess.run(
            [aws, "chime-sdk-meetings", "get-meeting", "--meeting-id",
             "00000000-0000-4000-8000-000000000000"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert missing.returncode == 255
        assert "NotFoundException" in missing.stderr


def test_invalid_flags_are_refused(tmp_path: Path) -> None:
    for flags in (
        ["--audio-bitrate", "500"],
        ["--max-speakers", "0"],
        ["--http-port", "70000"],
        ["--max-attendees-per-meeting", "0"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "mediaserver", "serve", "--data-dir", str(tmp_path), *flags],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode != 0
        assert flags[0] in proc.stderr, proc.stderr
