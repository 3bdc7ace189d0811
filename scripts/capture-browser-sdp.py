#!/usr/bin/env python3
"""Capture real Chromium SDP offers and check that Chromium accepts our answers.

Usage (from the repository root, with the venv's Python)::

    .venv/bin/python scripts/capture-browser-sdp.py [--write] [--chromium /usr/bin/chromium]

With ``--write`` it also stores ``tests/vectors/sdp/aiortc_offer.sdp``, an offer made by the
installed aiortc (the stack of our Python client).

The script serves ``capture-browser-sdp.html`` on 127.0.0.1 and starts headless Chromium on
it (fake camera and microphone). The page runs a list of scenarios. For each one it builds an
``RTCPeerConnection({bundlePolicy: 'max-bundle'})`` shaped like the Chime SDK's, creates an
offer, applies it, waits for ICE gathering to complete and POSTs the SDP to ``/offer``. The
script answers with :func:`mediaserver.transport.sdp.build_answer`. The page applies the
answer with ``setRemoteDescription`` on the same connection and POSTs what the browser made
of it (transceiver directions, negotiated send codecs, simulcast encodings, remote stream
ids) to ``/result``. The script prints a JSON report and, with ``--write``, stores the
offers as ``tests/vectors/sdp/chrome_*.sdp``. It exits 0 only if Chromium accepted every
answer.

Nothing is downloaded: it uses the Debian ``chromium`` package (``apt-get install
chromium``). Only the Chromium process this script starts is stopped, by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mediaserver.transport.sdp import (  # noqa: E402
    AnswerParams,
    VideoSendAssignment,
    build_answer,
    parse_offer,
    video_slots,
)

VECTOR_DIR = ROOT / "tests" / "vectors" / "sdp"

PAGE = (Path(__file__).resolve().parent / "capture-browser-sdp.html").read_text()


def answer_for(sdp: str, options: dict[str, Any]) -> str:
    """Build the answer the page applies, with fixed test parameters."""
    from mediaserver.transport.sdp import VideoCodec

    offer = parse_offer(sdp)
    send_codec = VideoCodec[options.get("send_codec", "VP8")]
    assignments = {
        slot.mid: VideoSendAssignment(
            ssrc=1000 + 2 * slot.index, codec=send_codec, rtx_ssrc=1001 + 2 * slot.index
        )
        for slot in video_slots(offer)
        if slot.is_downlink
    }
    kwargs: dict[str, Any] = {}
    if "camera_codecs" in options:
        kwargs["camera_codecs"] = tuple(VideoCodec[name] for name in options["camera_codecs"])
    params = AnswerParams(
        ice_ufrag="crln",
        ice_pwd="carillonTestPassword0123456",
        fingerprint="sha-256 " + ":".join(f"{i:02X}" for i in range(32)),
        host="127.0.0.1",
        port=16000,
        audio_ssrc=424242,
        cname="carillon",
        video_send=assignments,
        mirror_simulcast=bool(options.get("mirror_simulcast", False)),
        **kwargs,
    )
    return build_answer(offer, params)


async def aiortc_offer() -> str:
    """An offer from our Python client stack: aiortc, max-bundle, audio + inactive + recvonly."""
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.rtcconfiguration import RTCBundlePolicy

    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("video", direction="inactive")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--write", action="store_true", help="store the offers as vectors")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()

    offers: dict[str, str] = {}
    answers: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    done = threading.Event()
    final: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: Any) -> None:
            pass

        def _reply(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply(PAGE.encode(), "text/html; charset=utf-8")

        def do_POST(self) -> None:
            data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply: dict[str, Any] = {}
            if self.path == "/offer":
                offers[data["name"]] = data["sdp"]
                try:
                    answers[data["name"]] = reply["answer"] = answer_for(
                        data["sdp"], data["options"]
                    )
                except Exception as exc:
                    reply["error"] = f"{type(exc).__name__}: {exc}"
            elif self.path == "/result":
                results.append(data)
            elif self.path == "/done":
                final.update(data)
                done.set()
            self._reply(json.dumps(reply).encode(), "application/json")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [
                args.chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={profile}",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            finished = done.wait(args.timeout)
        finally:
            browser.terminate()
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait()
    server.shutdown()
    version = subprocess.run(
        [args.chromium, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    report = {"chromium": version, "finished": finished, **final, "results": results}
    print(json.dumps(report, indent=2))
    if args.write:
        import aiortc

        VECTOR_DIR.mkdir(parents=True, exist_ok=True)
        (VECTOR_DIR / "aiortc_offer.sdp").write_bytes(asyncio.run(aiortc_offer()).encode())
        print(f"aiortc {aiortc.__version__}: wrote aiortc_offer.sdp", file=sys.stderr)
        for name, sdp in offers.items():
            if name.startswith("chrome_"):
                (VECTOR_DIR / f"{name}.sdp").write_bytes(sdp.encode())
    ok = finished and all(
        r.get("accepted") and r.get("renegotiationAccepted", True) for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
