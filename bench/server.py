"""Start a Carillon server for a benchmark, pinned to one core, and sample its CPU and RSS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BenchServer", "ProcessSample", "RemoteServer", "sample_process"]

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """CPU seconds used so far and resident memory, read from /proc (NaN when unknown), and
    the seconds its main thread has spent runnable but waiting for a CPU (schedstat): on a
    shared machine, the time other processes took from it."""

    cpu_seconds: float
    rss_bytes: float
    at: float
    wait_seconds: float = float("nan")


def sample_process(pid: int) -> ProcessSample:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    with open(f"/proc/{pid}/statm") as f:
        rss_pages = int(f.read().split()[1])
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            wait = int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        wait = float("nan")
    return ProcessSample((utime + stime) / CLK_TCK, rss_pages * PAGE_SIZE, time.monotonic(), wait)


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class BenchServer:
    """A ``carillon serve`` child process on loopback, optionally pinned to CPU ``cpu``."""

    access_key_id: str = "AKIDCARILLONBENCH001"
    secret_access_key: str = "carillon-bench-secret-0123456789abcdef"
    cpu: int | None = 0
    extra_args: list[str] = field(default_factory=list)
    http_port: int = 0
    udp_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="carillon-bench-")
        self.http_port = _free_port(socket.SOCK_STREAM)
        self.udp_port = _free_port(socket.SOCK_DGRAM)
        env = {
            **os.environ,
            "CARILLON_ACCESS_KEY_ID": self.access_key_id,
            "CARILLON_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        cpu = self.cpu

        def pin() -> None:  # runs in the child before exec
            if cpu is not None and cpu < (os.cpu_count() or 1):
                os.sched_setaffinity(0, {cpu})

        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "mediaserver", "serve",
                "--host", "127.0.0.1",
                "--http-port", str(self.http_port),
                "--udp-port", str(self.udp_port),
                "--data-dir", str(Path(self._tmp.name) / "data"),
                "--log-level", "warning",
                *self.extra_args,
            ],
            env=env,
            preexec_fn=pin,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the benchmark server exited during start-up")
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise RuntimeError("the benchmark server did not become ready")

    def sample(self) -> ProcessSample:
        assert self.process is not None
        return sample_process(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> BenchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class RemoteServer:
    """A server that is already running (``--url``); CPU and RSS are read only when its
    process id is known (``--server-pid``) and it runs on this machine."""

    url: str
    access_key_id: str
    secret_access_key: str
    pid: int | None = None

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise SystemExit(f"--url must be an http:// URL of a Carillon server, not {self.url!r}")
        self.host: str = parsed.hostname
        self.http_port: int = parsed.port or 80

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def sample(self) -> ProcessSample:
        if self.pid is None:
            return ProcessSample(float("nan"), float("nan"), time.monotonic())
        return sample_process(self.pid)

    def __enter__(self) -> RemoteServer:
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=5) as r:
                if r.status == 200:
                    return self
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise SystemExit(f"no Carillon server answers at {self.endpoint}: {exc}") from None
        raise SystemExit(f"{self.endpoint}/health did not answer 200")

    def __exit__(self, *exc: object) -> None:
        pass
