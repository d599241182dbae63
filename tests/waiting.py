"""Bounded waits for tests: wait for the event itself, never count what happened inside a time window.

`wait_until` returns as soon as the event has happened and fails only when it has not happened within a
generous bound. `never_within` is for a negative check that has no later event to wait on: it polls for the
forbidden change for the whole bound and fails the moment it shows (a correct system never fails it, however
slow the machine)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _until(condition: Callable[[], T], timeout: float, what: str, invariant: Callable[[], object] | None,
           now: Callable[[], float]) -> Iterator[T | None]:
    """Yields None between polls and the result once `condition` holds; fails after `timeout` seconds."""
    deadline = now() + timeout
    while True:
        if invariant is not None:
            invariant()
        result = condition()
        if result:
            yield result
            return
        if now() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        yield None


def _never(forbidden: Callable[[], object], seconds: float, what: str, now: Callable[[], float]) -> Iterator[None]:
    """Yields between polls for `seconds`; fails as soon as `forbidden` returns something truthy."""
    deadline = now() + seconds
    while True:
        seen = forbidden()
        assert not seen, f"{what}: {seen!r}"
        if now() > deadline:
            return
        yield None


def wait_until(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05,
               invariant: Callable[[], object] | None = None) -> T:
    """Poll `condition` until it returns something truthy (returned); fail after `timeout` seconds.

    `invariant`, if given, is called before every poll (it asserts what must hold while waiting)."""
    for result in _until(condition, timeout, what, invariant, time.monotonic):
        if result:
            return result
        time.sleep(interval)
    raise AssertionError("unreachable: _until returns a result or raises")


def never_within(forbidden: Callable[[], object], seconds: float, what: str, *, interval: float = 0.1) -> None:
    """Poll `forbidden` for `seconds`; fail as soon as it returns something truthy."""
    for _ in _never(forbidden, seconds, what, time.monotonic):
        time.sleep(interval)


async def async_wait_until(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.005,
                           invariant: Callable[[], object] | None = None) -> T:
    """`wait_until` inside a running event loop: polls without blocking the loop."""
    for result in _until(condition, timeout, what, invariant, asyncio.get_running_loop().time):
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError("unreachable: _until returns a result or raises")


async def async_never_within(forbidden: Callable[[], object], seconds: float, what: str, *,
                             interval: float = 0.005) -> None:
    """`never_within` inside a running event loop."""
    for _ in _never(forbidden, seconds, what, asyncio.get_running_loop().time):
        await asyncio.sleep(interval)
