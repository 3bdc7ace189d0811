"""Tests for signaling.states: the tables are total and consistent."""

from __future__ import annotations

from signaling.messages import FrameType
from signaling.session import _HANDLERS
from signaling.states import (
    RECEIVE_DEFAULT,
    RECEIVE_RULES,
    SEND_ALLOWED,
    SEND_OTHERWISE,
    TRANSITIONS,
    VIOLATION_POLICY,
    Disposition,
    SendDisposition,
    SessionState,
    receive_rule,
    send_disposition,
)


def test_every_state_has_an_entry_in_every_table() -> None:
    for table in (RECEIVE_RULES, RECEIVE_DEFAULT, VIOLATION_POLICY, SEND_ALLOWED, SEND_OTHERWISE):
        assert set(table) == set(SessionState)
    assert set(TRANSITIONS) == set(SessionState)


def test_every_state_and_frame_type_has_a_rule() -> None:
    for state in SessionState:
        for frame_type in FrameType:
            assert isinstance(receive_rule(state, frame_type).disposition, Disposition)
            assert isinstance(send_disposition(state, frame_type), SendDisposition)


def test_every_handled_frame_type_has_a_handler() -> None:
    for rules in RECEIVE_RULES.values():
        for frame_type, rule in rules.items():
            if rule.disposition is Disposition.HANDLE:
                assert frame_type in _HANDLERS, frame_type


def test_rule_transitions_are_legal() -> None:
    for state, rules in RECEIVE_RULES.items():
        for rule in rules.values():
            if rule.next_state is not None:
                assert rule.next_state in TRANSITIONS[state]


def test_closed_is_final_and_reachable_from_every_other_state() -> None:
    assert TRANSITIONS[SessionState.CLOSED] == frozenset()
    for state in SessionState:
        if state is not SessionState.CLOSED:
            assert SessionState.CLOSED in TRANSITIONS[state]


def test_only_join_leaves_awaiting_join_and_ping_is_answered_before_it() -> None:
    rules = RECEIVE_RULES[SessionState.AWAITING_JOIN]
    assert rules[FrameType.JOIN].next_state is SessionState.JOINED
    assert receive_rule(SessionState.AWAITING_JOIN, FrameType.PING_PONG).disposition is (
        Disposition.HANDLE
    )
    assert receive_rule(SessionState.AWAITING_JOIN, FrameType.SUBSCRIBE).disposition is (
        Disposition.REJECT
    )


def test_a_second_join_is_rejected() -> None:
    assert receive_rule(SessionState.JOINED, FrameType.JOIN).disposition is Disposition.REJECT


def test_server_frames_cannot_be_sent_before_join_and_are_dropped_after_leave() -> None:
    assert send_disposition(SessionState.AWAITING_JOIN, FrameType.INDEX) is SendDisposition.ERROR
    assert send_disposition(SessionState.JOINED, FrameType.INDEX) is SendDisposition.SEND
    assert send_disposition(SessionState.LEFT, FrameType.INDEX) is SendDisposition.DROP
    assert send_disposition(SessionState.CLOSED, FrameType.PING_PONG) is SendDisposition.DROP
