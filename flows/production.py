"""Production, blue-green (R-BG, R-PAR): groups in order, at most N services at once, watched, never half released."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from delivery.release.plan import batches
from delivery.release.runtime import runtime
from tasks.bluegreen import deploy_idle_color, switch_traffic, switch_traffic_back, validate_idle_color, wait_color_available
from tasks.notifications import alert, send_alert
from tasks.records import audit
from tasks.watching import watch_service


class ReleaseFailed(RuntimeError):
    """A production step failed; traffic has been (or is being) switched back."""


@dataclass
class ProductionOutcome:
    """What production saw: the switches made, the watches, and the failure if any."""

    switches: list[dict] = field(default_factory=list)
    watches: dict[str, dict] = field(default_factory=dict)
    switched_back: list[dict] = field(default_factory=list)
    failure: str | None = None


def release_blue_green(plan: dict, initiator: str) -> ProductionOutcome:
    """Every group in order; on any failure every switched service goes back, in reverse order."""
    outcome = ProductionOutcome()
    at_once = runtime().policy.deployment_order.max_concurrent
    try:
        for group in plan["groups"]:
            for batch in batches(group, at_once):
                colors = prepare_idle_colors(batch, plan)
                for service in batch:
                    outcome.switches.append(switch_and_record(service, colors[service], plan["tag"], initiator))
                watch_batch(batch, colors, plan["tag"], outcome)
    except ReleaseFailed as failure:
        outcome.failure = str(failure)
        switch_everything_back(outcome, plan["tag"], initiator)
    return outcome


def prepare_idle_colors(batch: list[str], plan: dict) -> dict[str, str]:
    """Deploy, wait and validate the idle color of each service in the batch, in parallel."""
    chains: dict[str, list[PrefectFuture]] = {}
    for service in batch:
        color = deploy_idle_color.submit(service, plan["images"][service]["by_digest"])
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


def switch_and_record(service: str, color: str, tag: str, initiator: str) -> dict:
    switch = switch_traffic(service, color)
    audit(event="traffic_switched", actor=initiator, release=tag, details=switch)
    return switch


def watch_batch(batch: list[str], colors: dict[str, str], tag: str, outcome: ProductionOutcome) -> None:
    """Watch the batch's services at once; the first failed watch fails the release."""
    futures = {s: watch_service.submit("production", s, f"{s}-{colors[s]}", colors[s], tag) for s in batch}
    for service, future in futures.items():
        outcome.watches[service] = future.result()
    failed = [w for w in outcome.watches.values() if not w["passed"]]
    if failed:
        raise ReleaseFailed("; ".join(f"{w['service']} watch failed: {w['reason']}" for w in failed))


def switch_everything_back(outcome: ProductionOutcome, tag: str, initiator: str) -> None:
    """Reverse order: the last switched goes back first, so production is never left half released."""
    log = get_run_logger()
    for switch in reversed(outcome.switches):
        back = switch_traffic_back(switch["service"], switch["from"])
        outcome.switched_back.append(back)
        details = {**back, "reason": outcome.failure}
        audit(event="rollback_executed", actor=initiator, release=tag, details=details)
        log.warning("rolled back %s to %s: %s", switch["service"], switch["from"], outcome.failure)
    if outcome.switched_back:
        numbers = {"reason": outcome.failure, "switched back": ", ".join(b["service"] for b in outcome.switched_back)}
        message = alert(tag, "critical", f"{tag} rolled back in production", numbers)
        send_alert(message, channels=list(runtime().policy.blue_green.notify), open_incident=True)
