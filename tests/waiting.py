"""Bounded waits for tests: wait for the event itself, never count what happened inside a time window.

`wait_until` returns as soon as the event has happened and fails only when it has not happened within a
generous bound. `never_within` is for a negative check that has no later event to wait on: it polls for the
forbidden change for the whole bound and fails the moment it shows (a correct system never fails it, however
slow the machine)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05,
               invariant: Callable[[], object] | None = None) -> T:
    """Poll `condition` until it returns something truthy (returned); fail after `timeout` seconds.

    `invariant`, if given, is called before every poll (it asserts what must hold while waiting)."""
    deadline = time.monotonic() + timeout
    while True:
        if invariant is not None:
            invariant()
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def never_within(forbidden: Callable[[], object], seconds: float, what: str, *, interval: float = 0.1) -> None:
    """Poll `forbidden` for `seconds`; fail as soon as it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        seen = forbidden()
        assert not seen, f"{what}: {seen!r}"
        if time.monotonic() > deadline:
            return
        time.sleep(interval)


async def async_wait_until(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.005,
                           invariant: Callable[[], object] | None = None) -> T:
    """`wait_until` inside a running event loop: polls without blocking the loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if invariant is not None:
            invariant()
        result = condition()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def async_never_within(forbidden: Callable[[], object], seconds: float, what: str, *,
                             interval: float = 0.005) -> None:
    """`never_within` inside a running event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        seen = forbidden()
        assert not seen, f"{what}: {seen!r}"
        if loop.time() > deadline:
            return
        await asyncio.sleep(interval)
