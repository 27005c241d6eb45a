"""The gateway's decode budget: pixels in flight never exceed it; a waiter gets freed pixels."""

from __future__ import annotations

import threading
import time

import pytest

from service.gateway.decode_budget import DecodeBudget, DecodeBudgetExhaustedError


def test_a_reservation_over_what_is_free_waits_then_fails() -> None:
    budget = DecodeBudget(100)
    with (
        budget.reserve(60, wait_s=0),
        pytest.raises(DecodeBudgetExhaustedError),
        budget.reserve(60, wait_s=0.1),
    ):
        pass
    with budget.reserve(100, wait_s=0):
        assert budget.in_use == 100
    assert budget.in_use == 0


def test_a_waiter_gets_the_pixels_when_they_are_freed() -> None:
    budget = DecodeBudget(100)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with budget.reserve(80, wait_s=0):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    threading.Timer(0.2, release.set).start()
    start = time.monotonic()
    with budget.reserve(50, wait_s=5):
        assert budget.in_use == 50
    assert time.monotonic() - start >= 0.15
    holder.join()


def test_one_reservation_is_capped_at_the_capacity() -> None:
    budget = DecodeBudget(100)
    with budget.reserve(10_000, wait_s=0):
        assert budget.in_use == 100
