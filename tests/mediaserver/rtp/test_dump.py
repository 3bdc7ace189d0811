"""The RTP dump format (mediaserver/rtp/dump.py): records round-trip, truncation is an error."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediaserver.errors import MalformedPacket
from mediaserver.rtp.dump import dump_record, read_dump


@given(st.lists(st.binary(max_size=1500), max_size=20))
def test_records_round_trip(packets: list[bytes]) -> None:
    assert list(read_dump(b"".join(dump_record(p) for p in packets))) == packets


@given(st.binary(max_size=200))
def test_any_bytes_read_or_raise_malformed(data: bytes) -> None:
    try:
        packets = list(read_dump(data))
    except MalformedPacket:
        return
    assert sum(2 + len(p) for p in packets) == len(data)


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x05abc", dump_record(b"ok") + b"\x00\x09"])
def test_a_truncated_record_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedPacket, match="truncated"):
        list(read_dump(data))


def test_a_packet_too_long_for_a_record_is_refused() -> None:
    with pytest.raises(MalformedPacket):
        dump_record(bytes(70000))
