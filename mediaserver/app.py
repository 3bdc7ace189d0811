"""The composition root and the ``carillon`` command.

``carillon serve`` builds the clock, the store, the registry, the control-plane API, the
signaling gateway, the media server (UDP transport, mixers, video router), the event bus
and the metrics, then runs them on one uvloop event loop. This is the only module that
wires parts together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import signal
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
import uvloop

from mediaserver.clock import Clock, SystemClock
from mediaserver.config import ServerConfig, add_arguments, config_from_args
from mediaserver.control.api import ControlApi
from mediaserver.control.client_events import ClientEventsSink
from mediaserver.control.credentials import load_credentials
from mediaserver.control.operations import Operations
from mediaserver.demo import demo_routes
from mediaserver.events import EventBus
from mediaserver.gateway import SignalingGateway
from mediaserver.media import MediaServer
from mediaserver.metrics import Metrics
from mediaserver.registry import Limits, MeetingRegistry, SqliteStore, derive_account_id

__all__ = ["Server", "main"]

logger = logging.getLogger("mediaserver")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
"""The demo page (built into web/dist by web/build.sh)."""


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("meeting_id", "attendee_id", "connection"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(config: ServerConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.log_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    # uvicorn logs every connection at INFO; Carillon logs its own per-connection lines.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: :class:`Server` owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Server:
    """One Carillon process: control plane, signaling, media, events and metrics."""

    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.credentials = load_credentials(config.data_dir)
        self.store = SqliteStore(config.data_dir / "carillon.sqlite3")
        self.registry = MeetingRegistry(
            self.store,
            now=self.clock.wall(),
            limits=Limits(
                max_active_meetings=config.max_active_meetings,
                max_attendees_per_meeting=config.max_attendees_per_meeting,
                max_replicas_per_primary=config.max_replicas_per_primary,
            ),
            account_id=derive_account_id(self.credentials.access_key_id),
        )
        self.operations = Operations(self.registry, config)
        self.media = MediaServer(config, self.clock)
        # Meeting events (mediaserver.events): registry listener and gateway observer.
        self.events = EventBus.from_config(config, self.clock)
        self.registry.add_listener(self.events.on_registry_event)
        self.gateway = SignalingGateway(
            self.registry,
            self.clock,
            self.media,
            observer=self.events,
            drop_after=config.drop_after,
            server_side_adaption=config.server_side_adaption,
        )
        self.media.on_audio_levels = self.gateway.audio_levels
        self.media.on_video_paused = self.gateway.video_paused
        self.metrics = Metrics(
            registry=self.registry, gateway=self.gateway, media=self.media, events=self.events
        )
        self.media.on_tick_duration = self.metrics.mixer_tick_seconds.observe
        self.client_events = ClientEventsSink()
        self.api = ControlApi(
            self.operations,
            clock=self.clock,
            secrets={self.credentials.access_key_id: self.credentials.secret_access_key},
            rate=config.api_rate,
            burst=config.api_burst,
            websocket_handler=self.gateway,
            extra_routes={
                ("GET", "/metrics"): self.metrics.handle,
                **self.client_events.routes(),
                **demo_routes(self.registry, self.operations, self.clock, WEB_DIR),
            },
        )
        self._stopping = asyncio.Event()
        self._timer_wakeup = asyncio.Event()

    def announce_credentials(self) -> None:
        if self.credentials.generated:
            print(
                "Generated the API credentials (kept in "
                f"{self.config.data_dir / 'credentials.json'}):\n"
                f"  AWS_ACCESS_KEY_ID={self.credentials.access_key_id}\n"
                f"  AWS_SECRET_ACCESS_KEY={self.credentials.secret_access_key}",
                flush=True,
            )

    async def _lifecycle_timer(self) -> None:
        """Pull the registry's timer (style guide §2): sleep until its deadline, run it."""
        while not self._stopping.is_set():
            deadline = self.registry.get_timer()
            delay = 60.0 if deadline is None else max(0.0, deadline - self.clock.wall())
            self._timer_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wakeup.wait(), timeout=min(delay, 60.0))
            self.registry.handle_timer(self.clock.wall())

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        uv_config = uvicorn.Config(
            self.metrics.middleware(self.api),
            host=self.config.host,
            port=self.config.http_port,
            http="httptools",
            ws="websockets-sansio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
            ws_max_size=256 * 1024,
            # Signaling frames are small protobufs: compressing each one costs more CPU
            # than it saves bandwidth (measured with py-spy during join storms).
            ws_per_message_deflate=False,
            ssl_certfile=self.config.tls_cert or None,
            ssl_keyfile=self.config.tls_key or None,
        )
        http = _UvicornServer(uv_config)
        try:
            sock = uv_config.bind_socket()
        except SystemExit:
            raise SystemExit(
                f"could not listen on {self.config.host}:{self.config.http_port}"
            ) from None
        try:
            await self.media.start()
        except OSError as exc:
            raise SystemExit(
                f"could not listen on udp {self.config.host}:{self.config.udp_port}: {exc}"
            ) from None
        self.gateway.start()
        self.announce_credentials()
        # The socket listens from here on; requests wait in its backlog until uvicorn runs.
        http_task = asyncio.create_task(http.serve(sockets=[sock]), name="http")
        timer_task = asyncio.create_task(self._lifecycle_timer(), name="lifecycle")
        if self.config.advertised_host in ("0.0.0.0", "::", ""):
            logger.warning(
                "--public-host is not set and --host is a wildcard address: clients will be "
                "told to reach %s; set --public-host (CARILLON_PUBLIC_HOST)",
                self.config.advertised_host,
            )
        gc.freeze()  # start-up objects need no more collection passes
        self.api.ready = True
        logger.info(
            "carillon serving %s://%s:%d (media udp %d)",
            "https" if self.config.tls else "http",
            self.config.host,
            self.config.http_port,
            self.config.udp_port,
        )
        stop_wait = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({stop_wait, http_task}, return_when=asyncio.FIRST_COMPLETED)
        logger.info("shutting down")
        self.api.ready = False
        await self.gateway.stop()
        http.should_exit = True
        await http_task
        timer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer_task
        self.media.stop()
        await self.events.stop(timeout=5.0)
        stop_wait.cancel()
        self.store.close()
        logger.info("stopped")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carillon", description="Carillon: a self-hosted Chime SDK meetings server"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    add_arguments(serve)
    commands.add_parser(
        "bench", help="run a benchmark (see `carillon bench --help`)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "bench":
        from bench.__main__ import main as bench_main

        bench_main(args_list[1:])
        return
    args = _build_parser().parse_args(args_list)
    config = config_from_args(args)
    configure_logging(config)
    server = Server(config)
    uvloop.run(server.run())


if __name__ == "__main__":
    main()
