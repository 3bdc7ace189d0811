"""``python -m bench <scenario>`` (also ``carillon bench <scenario>``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import audio_room, churn, control_plane, join, mixer, sfu, uplink_feedback, video_meeting

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="carillon bench", description="Carillon benchmarks")
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    cp = scenarios.add_parser(
        "control-plane", help="CreateAttendee latency and throughput over loopback"
    )
    control_plane.add_arguments(cp)
    jn = scenarios.add_parser("join", help="join time and the cost of idle attendees")
    join.add_arguments(jn)
    mx = scenarios.add_parser("mixer", help="mix-minus CPU per tick beside a naive mixer")
    mixer.add_arguments(mx)
    ar = scenarios.add_parser("audio-room", help="the largest meeting users can hear well")
    audio_room.add_arguments(ar)
    ch = scenarios.add_parser("churn", help="attendees joining and leaving continuously")
    churn.add_churn_arguments(ch)
    df = scenarios.add_parser("data-flood", help="data-message delivery and throttling")
    churn.add_flood_arguments(df)
    vm = scenarios.add_parser("video-meeting", help="frame rate and freezes of subscribers")
    video_meeting.add_arguments(vm)
    sp = scenarios.add_parser("sfu", help="SFU forwarding rate and latency beside a bare loop")
    sfu.add_arguments(sp)
    uf = scenarios.add_parser(
        "uplink-feedback", help="per-packet cost of transport-cc feedback to publishers"
    )
    uplink_feedback.add_arguments(uf)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.scenario == "control-plane":
        control_plane.run(args)
    elif args.scenario == "join":
        join.run(args)
    elif args.scenario == "mixer":
        mixer.run(args)
    elif args.scenario == "audio-room":
        audio_room.run(args)
    elif args.scenario == "churn":
        churn.run_churn(args)
    elif args.scenario == "data-flood":
        churn.run_flood(args)
    elif args.scenario == "video-meeting":
        video_meeting.run(args)
    elif args.scenario == "sfu":
        sfu.run(args)
    elif args.scenario == "uplink-feedback":
        uplink_feedback.run(args)


if __name__ == "__main__":
    main()
