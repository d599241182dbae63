"""The release lock's guard (issue 10, a lost lock): renews the lease, and says when it is gone (no Prefect server)."""

from __future__ import annotations

import threading

import pytest

from delivery.release.lock_guard import LockGuard, LockGuards, LockLost
from tests.waiting import wait_until


class Gone(Exception):
    pass


def guard(renew, lease_seconds: float = 60, on_lost=lambda reason: None) -> LockGuard:
    return LockGuard(renew, lambda error: isinstance(error, Gone), lease_seconds, 0.01, on_lost)


def test_a_lease_the_server_no_longer_has_is_lost_at_the_next_check_and_stops_the_watches():
    renewals, stopped = [], threading.Event()

    def renew():
        renewals.append(1)
        if len(renewals) >= 3:
            raise Gone("410 lease not found")

    held = guard(renew, on_lost=lambda reason: stopped.set()).start()
    try:
        wait_until(stopped.is_set, 10, "the guard to stop the watches")
        with pytest.raises(LockLost, match=r"release lock was lost \(the server no longer has its lease: 410"):
            held.ensure_held()
        assert len(renewals) == 3  # it stopped renewing a lease that is gone
    finally:
        held.stop()


def test_transient_errors_keep_the_lock_until_a_whole_lease_passes_without_a_renewal():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError("reset")

    held = guard(flaky).start()
    try:
        wait_until(lambda: len(calls) >= 4, 10, "renewals after the transient errors")
        held.ensure_held()  # two failed renewals well inside the lease: still held
    finally:
        held.stop()

    def down():
        raise ConnectionError("refused")

    lost = threading.Event()
    unreachable = guard(down, lease_seconds=0.05, on_lost=lambda reason: lost.set()).start()
    try:
        wait_until(lost.is_set, 10, "the lease to run out")
        with pytest.raises(LockLost, match=r"no renewal for 0.05s, the lease's length: refused"):
            unreachable.ensure_held()
    finally:
        unreachable.stop()


def test_guards_are_kept_per_flow_run():
    guards, lost = LockGuards(), guard(lambda: None)
    lost.lost_because = "revoked"
    guards.register("run-a", lost)
    guards.ensure_held("run-b")  # another run, or none registered: nothing to say
    with pytest.raises(LockLost):
        guards.ensure_held("run-a")
    guards.forget("run-a")
    guards.ensure_held("run-a")
