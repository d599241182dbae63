"""Staging (R-ENV, R-VAL-1): every service in group order, validation, then the staging watch; any failure undoes them all."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect.futures import as_completed
from prefect.runtime import flow_run

from delivery.release.runtime import runtime
from delivery.release.lock_guard import LockLost
from delivery.release.state import CheckRow, ReleasePlan
from delivery.release.watch import STOP_SIGNALS
from tasks.release_record import ensure_lock_held
from tasks.staging import StagingFailed, roll_out_staging, undo_staging, validate_staging
from tasks.watching import watch_service


@dataclass
class StagingOutcome:
    """Staging's verdict: the failure (None when accepted) and the validation rows the approvers read."""

    failure: str | None = None
    rows: list[CheckRow] = field(default_factory=list)


def release_to_staging(plan: ReleasePlan) -> StagingOutcome:
    """Roll, validate and watch staging; on any failure undo every service this run rolled, and say why."""
    rolled: list[str] = []
    for group in plan.groups:
        for service in group:
            rolled.append(service)  # before the rollout: a half-done rollout is undone too
            step = roll_out_staging(service, plan.images[service].by_digest, return_state=True)
            if not step.is_completed():
                error = step.result(raise_on_failure=False)
                return undo(rolled[:-1] if isinstance(error, StagingFailed) else rolled, str(error))  # StagingFailed: undone already
    checks = validate_staging(plan.services, return_state=True)
    if not checks.is_completed():
        return undo(rolled, str(checks.result(raise_on_failure=False)))
    failure = watch_staging(plan)
    if failure and runtime().policy.environments["staging"].auto_rollback:
        return undo(rolled, failure)
    return StagingOutcome(None, checks.result())


def watch_staging(plan: ReleasePlan) -> str | None:
    """Every service's staging watch at once; the first failure stops the others and is returned at once."""
    stop = f"{flow_run.id}-staging"
    futures = [watch_service.submit("staging", s, s, ".*", plan.tag, stop) for s in plan.services]
    try:
        for future in as_completed(futures):
            watch = future.result()
            if not watch.passed and not watch.cancelled:  # a cancelled one was stopped by the one that failed
                return f"{watch.service} staging watch failed: {watch.reason}"
        try:
            ensure_lock_held()  # watches stopped because the lock was lost end the release here
        except LockLost as lost:
            return str(lost)
        return None
    finally:
        STOP_SIGNALS.get(stop).set()
        STOP_SIGNALS.forget(stop)


def undo(rolled: list[str], reason: str) -> StagingOutcome:
    """Undo the rolled services, last first (R-VAL-1)."""
    for service in reversed(rolled):
        undo_staging(service)
    return StagingOutcome(reason)
