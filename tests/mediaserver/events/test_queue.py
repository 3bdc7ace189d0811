"""Bounded per-meeting ordered queues and the retry backoff (sans I/O)."""

from __future__ import annotations

import pytest

from mediaserver.events.queue import Backoff, DeliveryQueue


def test_items_come_out_in_order_per_key_and_keys_are_independent() -> None:
    queue: DeliveryQueue[str] = DeliveryQueue(10)
    for item in ("a1", "a2"):
        queue.push("a", item)
    queue.push("b", "b1")
    assert queue.keys_ready() == ["a", "b"]
    assert queue.start("a") == "a1"
    assert queue.keys_ready() == ["b"]  # "a" is busy until its head is done
    queue.push("a", "a3")
    assert queue.done("a") == "a2"
    assert queue.done("a") == "a3"
    assert queue.done("a") is None
    assert queue.keys_ready() == ["b"]
    assert len(queue) == 1


def test_a_full_queue_drops_the_oldest_item_and_counts_it() -> None:
    queue: DeliveryQueue[str] = DeliveryQueue(3)
    queue.push("a", "a1")
    queue.push("b", "b1")
    queue.push("a", "a2")
    assert queue.push("b", "b2") == "a1"
    assert queue.push("b", "b3") == "b1"
    assert queue.dropped == 2
    assert len(queue) == 3
    assert queue.start("a") == "a2"


def test_the_item_in_flight_is_never_dropped() -> None:
    queue: DeliveryQueue[str] = DeliveryQueue(2)
    queue.push("a", "a1")
    queue.start("a")
    queue.push("a", "a2")
    assert queue.push("a", "a3") == "a2"
    assert queue.done("a") == "a3"


def test_when_everything_is_in_flight_the_queue_grows_by_one() -> None:
    queue: DeliveryQueue[str] = DeliveryQueue(1)
    queue.push("a", "a1")
    queue.start("a")
    assert queue.push("b", "b1") is None
    assert len(queue) == 2 and queue.dropped == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DeliveryQueue[str](0)


def test_backoff_doubles_up_to_its_maximum() -> None:
    backoff = Backoff(base=0.5, max_delay=3.0, max_attempts=5)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
