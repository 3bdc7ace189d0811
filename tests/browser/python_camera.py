"""A Python simulcast camera that browser cases start in a meeting over RPC (run.mjs).

The camera is the bench's :class:`~bench.simulcast.SimulcastPublisher` (libvpx VP8 at
160x120 ``low`` and 320x240 ``hi``, each layer numbering its pictures on its own, like
libwebrtc) joined with the project's signaling client. It runs on an asyncio
loop in a thread of its own, because the test's main thread is busy relaying the runner's
output. A case turns layers off and on (``set_layer``) to make the server move a browser
subscriber between layers whenever it likes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from bench.simulcast import SimulcastPublisher
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from tests.helpers.server import TIMEOUT_FACTOR

__all__ = ["PythonCamera"]

T = TypeVar("T")
TIMEOUT = 20.0 * TIMEOUT_FACTOR


class PythonCamera:
    """A simulcast camera attendee in ``meeting`` (a GetMeeting/CreateMeeting response)."""

    def __init__(self, meeting: dict[str, Any], attendee: dict[str, Any]) -> None:
        self.attendee_id: str = attendee["Attendee"]["AttendeeId"]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = SignalingClient(meeting, attendee)
        self._camera = SimulcastPublisher(DtlsCertificate.generate())
        self.stream_ids: list[int] = []

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(TIMEOUT * 2)

    def start(self) -> None:
        """Join and publish both layers (returns once the camera sends)."""

        async def start() -> list[int]:
            await self._client.connect(TIMEOUT)
            await self._client.join(TIMEOUT)
            _, stream_ids = await self._camera.publish(self._client)
            return stream_ids

        self.stream_ids = self._run(start())

    def set_layer(self, rid: str, active: bool) -> dict[str, int]:
        """Turn a layer off or on; returns the frames each layer has sent so far."""

        async def toggle() -> dict[str, int]:
            low = self._camera.layers[0]
            for layer in self._camera.layers:
                if layer.rid == rid:
                    layer.active = active
                    layer.keyframe_requested = True  # A layer coming back starts decodable.
                    if active and layer is not low:
                        # It comes back numbering its pictures a little behind the lowest
                        # layer's (as random starts sometimes do): a switch up then takes
                        # the numbers back by ten pictures, which Chromium's VP8 reference
                        # finder takes for pictures it has already seen.
                        layer.picture_id = (low.picture_id - 1000) & 0x7FFF
                        layer.tl0_pic_idx = (low.tl0_pic_idx - 10) & 0xFF
                    break
            else:
                raise ValueError(f"no layer {rid!r}")
            return {layer.rid: layer.frames for layer in self._camera.layers}

        return self._run(toggle())

    def close(self) -> None:
        async def close() -> None:
            self._camera.close()
            await self._client.close()

        try:
            self._run(close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(TIMEOUT)
