"""``python -m bench uplink-feedback``: the per-packet price of transport-cc feedback to
publishers, beside the uplink's SRTP unprotect measured in the same run.

The server notes every uplink packet that carries a transport-wide sequence number
(:meth:`~mediaserver.sfu.twcc_feedback.TransportFeedbackGenerator.receive_rtp`, called
from ``MediaServer._on_rtp``) and, every 60 ms from its tick, builds, serializes and
SRTCP-protects the feedback. This benchmark times, on the same 1200-byte VP8 packets
(an RFC 8285 block with abs-send-time, MID, RID and last the transport-wide number):

* **unprotect**: ``SrtpContext.unprotect_rtp``, the first step of every uplink packet
  (the baseline);
* **record**: ``receive_rtp`` per packet;
* **feedback**: ``feedback()`` + ``serialize()`` + ``protect_rtcp`` once per
  ``--per-feedback`` packets (60: 1,000 packets/s and a feedback every 60 ms), divided by
  that count.

Each run times the three loops back to back over ``--packets`` packets, with every
``--lose-every``-th number missing; the figures are medians over ``--runs`` runs, and the
ratio is (record + feedback) / unprotect per run.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from pathlib import Path
from typing import Any

from bench.stats import format_table, median
from mediaserver.rtp.packet import RtpPacket
from mediaserver.sfu.twcc_feedback import TransportFeedbackGenerator
from mediaserver.transport.srtp import SRTP_AEAD_AES_128_GCM, SrtpContext, SrtpKeys

__all__ = ["add_arguments", "run"]

ABS_SEND_TIME_ID, TWCC_ID, MID_ID, RID_ID = 2, 3, 4, 10
"""The ids of Chromium's offer; the transport-wide number is the last element, so the
lookup walks the whole block."""
PAYLOAD = bytes(1200 - 12 - 16)


def _packets(count: int, lose_every: int) -> list[bytes]:
    packets = []
    for k in range(count):
        if lose_every and k % lose_every == lose_every - 1:
            continue
        packets.append(
            RtpPacket(
                payload_type=96,
                sequence_number=k & 0xFFFF,
                timestamp=k * 3000,
                ssrc=0x1234,
                extensions={
                    ABS_SEND_TIME_ID: bytes(3),
                    MID_ID: b"1",
                    RID_ID: b"hi",
                    TWCC_ID: (k & 0xFFFF).to_bytes(2, "big"),
                },
                payload=b"\x90\x80" + PAYLOAD[:-2],
            ).serialize()
        )
    return packets


def _one_run(packets: list[bytes], per_feedback: int) -> dict[str, float]:
    profile = SRTP_AEAD_AES_128_GCM  # what the server prefers (and Chromium accepts)
    material = secrets.token_bytes(2 * (profile.key_length + profile.salt_length))
    keys = SrtpKeys.from_keying_material(profile, material)
    client = SrtpContext(keys, role="client")
    server = SrtpContext(keys, role="server")
    protected = [client.protect_rtp(p) for p in packets]
    n = len(packets)

    unprotect = server.unprotect_rtp
    started = time.perf_counter()
    for data in protected:
        unprotect(data)
    unprotect_s = time.perf_counter() - started

    generator = TransportFeedbackGenerator()
    receive_rtp = generator.receive_rtp
    started = time.perf_counter()
    for k, packet in enumerate(packets):
        receive_rtp(packet, TWCC_ID, k * 0.001)
    record_s = time.perf_counter() - started

    # The same arrivals again, a feedback every `per_feedback` packets; the record part
    # is timed above, so only the feedback calls are summed here.
    generator = TransportFeedbackGenerator()
    feedback_s = 0.0
    for k, packet in enumerate(packets):
        generator.receive_rtp(packet, TWCC_ID, k * 0.001)
        if k % per_feedback == per_feedback - 1:
            started = time.perf_counter()
            for feedback in generator.feedback(1, 0x1234):
                server.protect_rtcp(feedback.serialize())
            feedback_s += time.perf_counter() - started
    return {
        "unprotect_ns": unprotect_s / n * 1e9,
        "record_ns": record_s / n * 1e9,
        "feedback_ns": feedback_s / n * 1e9,
        "ratio": (record_s + feedback_s) / unprotect_s,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="independent runs (default 5)")
    parser.add_argument("--packets", type=int, default=50_000, help="packets per run")
    parser.add_argument("--per-feedback", type=int, default=60, help="packets per feedback")
    parser.add_argument("--lose-every", type=int, default=50, help="every n-th number missing")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")


def run(args: argparse.Namespace) -> dict[str, Any]:
    packets = _packets(args.packets, args.lose_every)
    runs = [_one_run(packets, args.per_feedback) for _ in range(args.runs)]
    result = {key: median([r[key] for r in runs]) for key in runs[0]}
    command = (
        f"python -m bench uplink-feedback --runs {args.runs} --packets {args.packets} "
        f"--per-feedback {args.per_feedback} --lose-every {args.lose_every}"
    )
    summary: dict[str, Any] = {"command": command, "median": result, "runs": runs}
    print(f"\n{command}  (median of {args.runs} runs)\n")
    print(format_table(
        ["unprotect ns/packet", "record ns/packet", "feedback ns/packet",
         "(record + feedback) / unprotect"],
        [[result["unprotect_ns"], result["record_ns"], result["feedback_ns"], result["ratio"]]],
    ))  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return summary
