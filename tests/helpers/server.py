"""Start the real ``carillon serve`` process on loopback for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ServerProcess", "free_port", "running_server"]

ACCESS_KEY_ID = "AKIDCARILLONTEST0001"
SECRET_ACCESS_KEY = "carillon-test-secret-access-key-0123456789"
TIMEOUT_FACTOR = float(os.environ.get("CARILLON_TESTS_TIMEOUT_FACTOR", "1"))


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running server and how to reach it."""

    data_dir: Path
    http_port: int
    udp_port: int
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    cafile: Path | None = None
    """The certificate to trust when the server was started with ``--tls-cert``."""

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.cafile is not None else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting the server's certificate (``None`` without TLS)."""
        if self.cafile is None:
            return None
        return ssl.create_default_context(cafile=str(self.cafile))

    def start(self) -> None:
        env = {
            **os.environ,
            "CARILLON_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "CARILLON_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            **self.env,
        }
        for key in [k for k, v in env.items() if v == ""]:
            del env[key]
        self.log_path = self.data_dir.parent / f"server-{self.http_port}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mediaserver",
                "serve",
                "--host",
                "127.0.0.1",
                "--http-port",
                str(self.http_port),
                "--udp-port",
                str(self.udp_port),
                "--data-dir",
                str(self.data_dir),
                *self.extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                url = self.endpoint + "/health"
                with urllib.request.urlopen(url, timeout=1, context=self.ssl_context()) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in time:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout * TIMEOUT_FACTOR)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def client(self, service: str = "chime-sdk-meetings", **kwargs: Any) -> Any:
        import boto3
        from botocore.config import Config

        config = kwargs.pop("config", Config(retries={"total_max_attempts": 1, "mode": "standard"}))
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            verify=kwargs.pop("verify", str(self.cafile) if self.cafile is not None else None),
            region_name=kwargs.pop("region_name", "us-east-1"),
            aws_access_key_id=kwargs.pop("aws_access_key_id", ACCESS_KEY_ID),
            aws_secret_access_key=kwargs.pop("aws_secret_access_key", SECRET_ACCESS_KEY),
            config=config,
            **kwargs,
        )


@contextmanager
def running_server(
    data_dir: Path,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    cafile: Path | None = None,
) -> Iterator[ServerProcess]:
    server = ServerProcess(
        data_dir=data_dir,
        http_port=free_port(),
        udp_port=free_port(socket.SOCK_DGRAM),
        extra_args=extra_args or [],
        env=env or {},
        cafile=cafile,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
