"""``bench.peer``: the offer has the browser's shape (chime-signaling-protocol.md §3.3).

These tests gather host candidates (UDP sockets bound, no traffic) but talk to nobody.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.media import FRAME_SAMPLES, SAMPLE_RATE, dominant_frequencies
from bench.peer import (
    ChimePeer,
    OfferShapeError,
    SourceTrack,
    check_offer_shape,
    spread_bundle_candidates,
)


async def test_offer_is_bundled_non_trickle_with_audio_then_inactive_camera() -> None:
    peer = ChimePeer(440.0, receive_videos=2)
    try:
        sdp = await peer.create_offer()
    finally:
        await peer.close()
    lines = sdp.splitlines()
    assert "a=group:BUNDLE 0 1 2 3" in lines
    assert [line.split()[0] for line in lines if line.startswith("m=")] == [
        "m=audio",
        "m=video",
        "m=video",
        "m=video",
    ]
    assert lines.count("a=sendrecv") == 1
    assert lines.count("a=inactive") == 1
    assert lines.count("a=recvonly") == 2
    assert "a=end-of-candidates" in lines
    assert any(line.startswith("a=msid:") for line in lines)
    assert "opus/48000/2" in sdp


def test_offer_shape_check_names_the_broken_rule() -> None:
    good = (
        "v=0\r\na=group:BUNDLE 0 1\r\n"
        "m=audio 9 x 111\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=setup:actpass\r\n"
        "a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n"
        "m=video 9 x 96\r\na=mid:1\r\na=inactive\r\na=rtcp-mux\r\na=setup:actpass\r\n"
    )
    check_offer_shape(good)
    with pytest.raises(OfferShapeError, match="BUNDLE"):
        check_offer_shape(good.replace("BUNDLE 0 1", "BUNDLE 0"))
    with pytest.raises(OfferShapeError, match="sendrecv"):
        check_offer_shape(good.replace("a=sendrecv", "a=sendonly"))
    with pytest.raises(OfferShapeError, match="candidate"):
        check_offer_shape(good.replace("a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n", ""))
    with pytest.raises(OfferShapeError, match="m-lines"):
        check_offer_shape(good, receive_videos=1)


async def test_source_track_produces_paced_20ms_mono_frames() -> None:
    track = SourceTrack(1000.0)
    received = [await track.recv() for _ in range(5)]
    track.stop()
    assert [f.pts for f in received] == [i * FRAME_SAMPLES for i in range(5)]
    frame = received[0]
    assert (frame.sample_rate, frame.samples, frame.format.name, frame.layout.name) == (
        SAMPLE_RATE,
        FRAME_SAMPLES,
        "s16",
        "mono",
    )
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in received])
    assert dominant_frequencies(pcm, count=1) == pytest.approx([1000.0], abs=2.0)


def test_bundle_candidates_are_copied_to_sections_without_any() -> None:
    answer = (
        "v=0\r\na=group:BUNDLE 0 1 2\r\n"
        "m=audio 5000 x 111\r\na=mid:0\r\na=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n"
        "a=end-of-candidates\r\n"
        "m=video 5000 x 96\r\na=mid:1\r\na=inactive\r\n"
        "m=video 0 x 96\r\na=mid:2\r\n"
    )
    out = spread_bundle_candidates(answer)
    sections = out.split("m=")[1:]
    assert "a=candidate:1 1 udp 1 10.0.0.1 5000 typ host" in sections[1]
    assert "a=end-of-candidates" in sections[1]
    assert "a=candidate" not in sections[2]  # rejected m-line
    assert spread_bundle_candidates(out) == out
    assert spread_bundle_candidates("v=0\r\n") == "v=0\r\n"
