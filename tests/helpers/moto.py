"""``moto_server`` (moto in server mode) as a local SQS/SNS endpoint on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers.server import TIMEOUT_FACTOR, free_port

__all__ = ["MOTO_CREDENTIALS", "MotoServer", "running_moto"]

MOTO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Dummy credentials: moto accepts any."""


class MotoServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def _moto_command() -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script)]
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
    return [found]


@contextmanager
def running_moto(log_path: Path) -> Iterator[MotoServer]:
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*_moto_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **MOTO_CREDENTIALS},
        )
    server = MotoServer(process, port)
    try:
        deadline = time.monotonic() + 30 * TIMEOUT_FACTOR
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(server.endpoint + "/moto-api/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break  # it answers: ready
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server not ready in time") from None
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
