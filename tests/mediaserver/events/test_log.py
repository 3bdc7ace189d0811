"""The events log: JSON lines, rotated by size, N files kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediaserver.events.log import EventLog


def test_lines_are_appended_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    log = EventLog(path, max_bytes=1000, keep=2)
    log.write(b'{"n":1}')
    log.close()
    log = EventLog(path, max_bytes=1000, keep=2)
    log.write(b'{"n":2}')
    log.write(b'{"n":3}')  # after close: ignored, not an error
    log.close()
    log.write(b'{"n":4}')
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n{"n":3}\n'


def test_rotation_keeps_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=20, keep=2)
    for n in range(6):
        log.write(b'{"n":%d,"pad":"x"}' % n)  # 18 bytes per line: one line per file
    log.close()
    assert path.read_bytes() == b'{"n":5,"pad":"x"}\n'
    assert (tmp_path / "events.jsonl.1").read_bytes() == b'{"n":4,"pad":"x"}\n'
    assert (tmp_path / "events.jsonl.2").read_bytes() == b'{"n":3,"pad":"x"}\n'
    assert not (tmp_path / "events.jsonl.3").exists()


def test_a_line_larger_than_the_limit_still_gets_written(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=4, keep=1)
    log.write(b"0123456789")
    log.write(b"abc")
    log.close()
    assert path.read_bytes() == b"abc\n"
    assert (tmp_path / "events.jsonl.1").read_bytes() == b"0123456789\n"


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        EventLog(tmp_path / "e", max_bytes=0, keep=1)
