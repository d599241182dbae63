"""Production, blue-green (R-BG, R-PAR): groups in order, at most N services at once, each recorded, switched, watched;
the backfill runs once the last batch switched, before its watch.

A failed check or any error raises; the release flow's restore path then puts every switched
service back (flows/release.py), so this runbook never has to undo anything itself.
"""

from __future__ import annotations

from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run

from delivery.migrations.bundle import Phase
from delivery.release.plan import batches
from delivery.release.runtime import runtime
from delivery.release.state import ProductionOutcome, ReleaseFailed, ReleasePlan
from delivery.release.watch import STOP_SIGNALS
from tasks.bluegreen import deploy_idle_color, switch_traffic, validate_idle_color, wait_color_available
from tasks.migrations import migrate
from tasks.records import audit
from tasks.release_record import ensure_lock_held, record_phase
from tasks.watching import watch_service


def release_blue_green(plan: ReleasePlan, record: str, initiator: str, outcome: ProductionOutcome) -> None:
    """Every group in order, batch by batch: deploy and validate the idle colors, switch, watch."""
    at_once = runtime().policy.deployment_order.max_concurrent
    every_batch = [batch for group in plan.groups for batch in batches(group, at_once)]
    for batch in every_batch:
        colors = prepare_idle_colors(batch, plan, record)
        for service in batch:
            switch = switch_traffic(service, colors[service], record)
            outcome.switches.append(switch)
            audit(event="traffic_switched", actor=initiator, release=plan.tag, details=switch.model_dump())
        if batch is every_batch[-1]:
            migrate(record, plan.tag, Phase.BACKFILL, initiator)  # every service serves the new version: backfill
        watch_batch(batch, colors, plan.tag, record, f"{flow_run.id}-batch-{'-'.join(batch)}", outcome)


def prepare_idle_colors(batch: list[str], plan: ReleasePlan, record: str) -> dict[str, str]:
    """Deploy, wait and validate the idle color of each service in the batch, in parallel."""
    chains: dict[str, list[PrefectFuture]] = {}
    for service in batch:
        color = deploy_idle_color.submit(service, plan.images[service].by_digest, record)
        ready = wait_color_available.submit(service, color)
        valid = validate_idle_color.submit(service, wait_for=[ready])
        chains[service] = [color, ready, valid]
    problems = [problem for service, chain in chains.items() if (problem := first_failure(service, chain))]
    if problems:
        raise ReleaseFailed("; ".join(problems))
    return {service: chain[0].result() for service, chain in chains.items()}


def first_failure(service: str, chain: list[PrefectFuture]) -> str | None:
    """The reason the first unfinished step of a service's chain gives, or None when all completed."""
    for future in chain:
        future.wait()
        if not future.state.is_completed():
            error = future.result(raise_on_failure=False)
            return f"{service}: {error}" if isinstance(error, BaseException) else f"{service}: {future.state.message}"
    return None


def watch_batch(batch: list[str], colors: dict[str, str], tag: str, record: str, stop: str, outcome: ProductionOutcome) -> None:
    """Watch the batch's services at once; the first failed watch (or a lost lock) stops the others and raises at once."""
    futures = [watch_service.submit("production", s, f"{s}-{colors[s]}", colors[s], tag, stop) for s in batch]
    try:
        for future in as_completed(futures):
            watch = future.result()
            outcome.watches[watch.service] = watch
            if watch.cancelled:
                continue  # stopped by the watch that failed, whose own result says why
            if not watch.passed:
                raise ReleaseFailed(f"{watch.service} watch failed: {watch.reason}")
            record_phase(record, watch.service, "watched")
        ensure_lock_held()  # watches stopped because the lock was lost end the release here
    finally:
        STOP_SIGNALS.get(stop).set()  # on any exit, no watch of this batch goes on
        STOP_SIGNALS.forget(stop)
