#!/usr/bin/env python3
"""Capture real Chromium SVC camera streams as RTP test vectors (tests/vectors/rtp/svc).

Usage (from the repository root, with the venv's Python; ``sh web/build.sh`` installed
playwright-core in web/node_modules)::

    .venv/bin/python scripts/capture-svc-vectors.py [--codec vp9|av1] [--mode L3T3]
        [--seconds 3] [--out tests/vectors/rtp/svc]

It starts the real server on loopback with the uplink dump on (``CARILLON_DUMP_UPLINK_RTP``,
mediaserver/rtp/dump.py), creates a meeting with boto3, joins it with the Python signaling
client, and has headless Chromium (scripts/capture-svc-page.mjs: a plain RTCPeerConnection,
fake 640x360 camera, one encoding with ``scalabilityMode`` in only the chosen codec) make the
offer that the client sends in SUBSCRIBE as a camera. Chromium connects to the server and
sends; the server writes the camera's packets, after SRTP, to the dump. The script keeps
the packets from the first key frame on for ``--seconds`` of RTP time, ending at a picture
boundary, and writes ``chromium_<codec>_<mode>.rtp`` (format: mediaserver/rtp/dump.py) and
prints what it found. Nothing is downloaded; only processes this script starts are stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mediaserver.rtp.dump import DUMP_ENV, dump_record, read_dump
from mediaserver.rtp.packet import peek_extension_offset, peek_header
from mediaserver.sfu.view import PacketViewParser
from signaling.client import SignalingClient
from signaling.messages import MediaType, StreamDescriptor, StreamServiceType
from tests.helpers.server import running_server

ROOT = Path(__file__).resolve().parent.parent
DD_URI = "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"


async def _capture(server_client: object, codec: str, mode: str, seconds: float) -> str:
    chime = server_client
    meeting = chime.create_meeting(  # type: ignore[attr-defined]
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="svc"
    )
    attendee = chime.create_attendee(  # type: ignore[attr-defined]
        MeetingId=meeting["Meeting"]["MeetingId"], ExternalUserId="chromium"
    )
    client = SignalingClient(meeting, attendee)
    await client.connect(20)
    await client.join(20)
    page = await asyncio.create_subprocess_exec(
        "node",
        str(ROOT / "scripts" / "capture-svc-page.mjs"),
        codec,
        mode,
        str(seconds + 4),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert page.stdin is not None and page.stdout is not None
    try:
        line = (await asyncio.wait_for(page.stdout.readline(), 60)).decode()
        if not line.startswith("OFFER "):
            raise RuntimeError(f"the page said {line!r}")
        offer = json.loads(line[6:])
        ack = await client.subscribe(
            offer,
            video_send_streams=[
                StreamDescriptor(
                    stream_id=0,
                    group_id=0,
                    track_label="camera",
                    media_type=MediaType.VIDEO,
                    max_bitrate_kbps=1200,
                    framerate=30,
                    attendee_id=client.attendee_id,
                )
            ],
            duplex=StreamServiceType.DUPLEX,
        )
        page.stdin.write(f"ANSWER {json.dumps(_start_high(ack.sdp_answer))}\n".encode())
        await page.stdin.drain()
        stats = (await asyncio.wait_for(page.stdout.readline(), seconds + 60)).decode()
        await page.wait()
        answer: str = ack.sdp_answer
        print(stats.strip())
        return answer
    finally:
        if page.returncode is None:
            page.kill()
        await client.close()


def _start_high(answer: str) -> str:
    """The answer with Chromium's bitrate floor raised on the video codec (its
    ``x-google-min-bitrate``/``x-google-start-bitrate`` fmtp parameters, kbps): the server
    sends no uplink transport-cc feedback, so Chromium's estimate would stay at its start
    value and its encoder would drop the top spatial layer for lack of bandwidth."""
    lines = answer.split("\r\n")
    video = False
    for i, line in enumerate(lines):
        if line.startswith("m="):
            video = line.startswith("m=video")
        elif video and line.startswith("a=rtpmap:") and "rtx/" not in line:
            pt = line[9:].split()[0]
            extra = "x-google-min-bitrate=1500;x-google-start-bitrate=2000"
            fmtp = next((j for j, x in enumerate(lines) if x.startswith(f"a=fmtp:{pt} ")), None)
            if fmtp is None:
                lines.insert(i + 1, f"a=fmtp:{pt} {extra}")
            else:
                lines[fmtp] += ";" + extra
            video = False
    return "\r\n".join(lines)


def _dd_id(answer: str) -> int | None:
    for line in answer.splitlines():
        if line.startswith("a=extmap:") and DD_URI in line:
            return int(line[9:].split()[0].split("/")[0])
    return None


def _trim(packets: list[bytes], codec: str, dd_id: int | None, seconds: float) -> list[bytes]:
    """From the first key frame on, ``seconds`` of RTP time, whole pictures only."""
    parser = PacketViewParser(
        "av1" if codec == "av1" else "vp9",
        dependency_descriptor_id=dd_id if codec == "av1" else None,
    )
    kept: list[bytes] = []
    first_ts: int | None = None
    for packet in packets:
        view = parser.parse(packet)
        if first_ts is None:
            if not (view.keyframe and view.spatial_id == 0):
                continue
            first_ts = view.timestamp
        if (view.timestamp - first_ts) & 0xFFFFFFFF >= seconds * 90000:
            break
        kept.append(packet)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", choices=("vp9", "av1"), default="vp9")
    parser.add_argument("--mode", default="L3T3")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=ROOT / "tests/vectors/rtp/svc")
    parser.add_argument("--raw", action="store_true", help="keep every packet (no trimming)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        dump_dir = Path(work) / "dump"
        with running_server(Path(work) / "data", env={DUMP_ENV: str(dump_dir)}) as server:
            answer = asyncio.run(_capture(server.client(), args.codec, args.mode, args.seconds))
        dd_id = _dd_id(answer)
        video = []
        for path in sorted(dump_dir.glob("uplink-*.rtp")):
            packets = list(read_dump(path.read_bytes()))
            video.append((len(packets), path, packets))
        if not video:
            print("no camera packets were dumped", file=sys.stderr)
            return 1
        _, path, packets = max(video)
        if args.codec == "av1" and dd_id is None:  # (checked again below, per packet)
            print("the answer kept no dependency descriptor extension", file=sys.stderr)
            return 1
        kept = packets if args.raw else _trim(packets, args.codec, dd_id, args.seconds)
        dd = dd_id or 0
        if (
            args.codec == "av1"
            and not args.raw
            and any(peek_extension_offset(p, dd) is None for p in kept)
        ):
            print("an AV1 packet has no dependency descriptor", file=sys.stderr)
            return 1
        out = args.out / f"chromium_{args.codec}_{args.mode.lower()}.rtp"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"".join(dump_record(p) for p in kept))
        pt = peek_header(kept[0])[0] if kept else None
        print(f"{out}: {len(kept)} packets, payload type {pt}, dd id {dd_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
