"""How long production takes to be restored after each kind of failure, on a release stack of its own.

    python -m benchmarks.failures [--work DIR]

Starts `prefect server start` (SQLite), the sandbox, `tripgen-release deployments register` (zombie window
45 s) and a process worker in a temporary directory (benchmarks/stack.py; `--work` keeps it). Then, per
failure, releases user-service and location-service through Prefect's API (release/production, approved by
demo-lead and demo-ops), injects the failure and measures from it to production restored, with the audit
log's times, the sandbox's request log and the time of the kill. Prints one row per failure. Exits 1 when a
failure was not restored within its bound; a missed target only shows in the table.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import yaml

from benchmarks.stack import REPO, Stack, StackError, overlay, release_stack
from delivery.audit import AuditLog
from delivery.kube import Routing, connect
from delivery.prefect_rest import FINAL_STATES
from delivery.release.record import ReleaseRecord, record_name
from delivery.settings import Settings
from delivery.units import parse_duration

PAIR = ["user-service", "location-service"]
APPROVERS = ("demo-lead", "demo-ops")
ZOMBIE_AFTER_SECONDS = 45
HEARTBEAT_SECONDS = Settings.model_fields["heartbeat_seconds"].default
CRASH_TARGET_SECONDS = 120
FAST_POLICY = {  # policies/demo.yaml with the tests' shorter waits; a production watch long enough to fail, or die, in
    "environments": {"staging": {"watch": "2s"}, "production": {"watch": "30s"}},
    "watch": {"interval": "2s", "query_window": "10s"},
    "validation": {"health_retry_interval": "200ms", "rollout_timeout": "8s"},
    "blue_green": {"ready_timeout": "8s", "old_color_grace": "0s"},
    "approvals": {"poll_interval": "1s"},
}
STEP_BOUND = 240  # seconds for the release to reach the point of failure (gates, staging, approvals, switches)
RESTORE_BOUND = 120  # a failure the release flow handles itself
RECOVERY_BOUND = 300  # a crash: Crashed, the recovery automation, the recover run
POLL = 0.1

T = TypeVar("T")


class NotRestored(RuntimeError):
    """A bounded wait ran out, or production was not back where the release record says it was."""


@dataclass(frozen=True)
class Release:
    """A release run under way, and the name of its release record in the cluster."""

    tag: str
    run_id: str

    @property
    def record(self) -> str:
        return record_name(self.tag, self.run_id)


@dataclass(frozen=True)
class Outcome:
    seconds: float
    note: str


@dataclass(frozen=True)
class Failure:
    name: str
    tag: str
    target_seconds: float
    measured: str
    inject: Callable[[Stack, str], Outcome]


def until(condition: Callable[[], T], seconds: float, what: str) -> T:
    """Poll `condition` until it returns something truthy (returned); NotRestored after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise NotRestored(f"no {what} within {seconds:g} s")
        time.sleep(POLL)
    return found


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def audited(stack: Stack, event: str, **details: str) -> list[dict]:
    """The audit records of `event` whose details hold `details`, oldest first."""
    return [r for r in AuditLog(stack.audit_log).records()
            if r["event"] == event and all(r["details"].get(k) == v for k, v in details.items())]


def start_release(stack: Stack, tag: str) -> Release:
    """A run of release/production for the pair, past both approval pauses."""
    deployment = stack.api.deployment("release/production")
    parameters = {"tag": tag, "services": PAIR, "initiator": "benchmark", "reason": "benchmarks.failures", "force": True}
    run_id = stack.api.create_run(deployment["id"], parameters)["id"]
    answered = None
    for approver in APPROVERS:
        run, pause = stack.api.wait_for(run_id, STEP_BOUND, after_key=answered)
        if pause is None:
            raise NotRestored(f"{tag} did not pause for {approver}'s approval: {run['state']['type']} {run['state'].get('message') or ''}")
        code = stack.mailbox.code(f"{approver}@tripgen.local", run_id)  # the demo policy's approver_channels
        stack.api.resume(run_id, {"approver": approver, "code": code, "approve": True, "comment": "benchmark"})
        answered = pause.key
    return Release(tag, run_id)


def record(stack: Stack, release: Release) -> ReleaseRecord | None:
    return stack.records().get(release.record)


def both_switched(stack: Stack, release: Release) -> None:
    def switched() -> bool:
        found = record(stack, release)
        return found is not None and all(found.services[s].phase == "switched" for s in PAIR)

    until(switched, STEP_BOUND, f"switch of both services by {release.tag}")


def restored(stack: Stack, release: Release, seconds: float) -> ReleaseRecord:
    """The record finished `restored`, and each service's traffic back on the color it names."""
    finished = until(lambda: (found := record(stack, release)) is not None and not found.unfinished and found,
                     seconds, f"finished release record {release.record}")
    if finished.state != "restored":
        raise NotRestored(f"{release.record} ended {finished.state}: {finished.detail}")
    routing = Routing(connect(stack.kubeconfig))
    for entry in finished.services.values():
        if (color := routing.selected_color("production", entry.service)) != entry.previous_color:
            raise NotRestored(f"{entry.service} selects {color}, its rollback target is {entry.previous_color}")
    return finished


def last_rollback(stack: Stack, release: Release, **details: str) -> float:
    executed = audited(stack, "rollback_executed", record=release.record, **details)
    if not executed:
        raise NotRestored(f"no rollback_executed for {release.record} ({details or 'any'})")
    return max(at(r["time"]) for r in executed)


def run_ended(stack: Stack, run_id: str) -> None:
    until(lambda: stack.api.flow_run(run_id)["state"]["type"] in FINAL_STATES, RESTORE_BOUND, f"end of flow run {run_id}")


def failed_watch(stack: Stack, tag: str) -> Outcome:
    release = start_release(stack, tag)
    both_switched(stack, release)
    injected = time.time()
    stack.control("PATCH", "/faults", json={"versions": {f"user-service:{tag}": {"error_rate_percent": 60}}})
    restored(stack, release, RESTORE_BOUND)
    failed = at(until(lambda: audited(stack, "watch_failed", flow_run_id=release.run_id), RESTORE_BOUND, "watch_failed")[0]["time"])
    back = last_rollback(stack, release)
    run_ended(stack, release.run_id)
    return Outcome(back - failed, f"fault injected -> watch_failed {failed - injected:.1f} s, -> restored {back - injected:.1f} s")


def refused_switch(stack: Stack, tag: str) -> Outcome:
    refusal = {"method": "PATCH", "plural": "services", "name": "location-service"}
    stack.control("DELETE", "/requests")
    stack.control("PATCH", "/faults", json={"refusals": [refusal]})
    release = start_release(stack, tag)
    restored(stack, release, STEP_BOUND + RESTORE_BOUND)
    back = last_rollback(stack, release, service="user-service")
    logged = stack.control("GET", "/requests", params=refusal)["requests"]
    refused = [at(r["time"]) for r in logged if r["fault"] and at(r["time"]) <= back]
    if not refused:
        raise NotRestored("the sandbox logged no refused PATCH of location-service before the rollback")
    run_ended(stack, release.run_id)
    return Outcome(back - max(refused), f"{len(refused)} refused PATCH of services/location-service; user-service switched back")


def recovered(stack: Stack, release: Release, killed: float) -> Outcome:
    """After a kill: wait for the recover run's restore; the note says where the time went."""
    until(lambda: audited(stack, "deployment_recovered", flow_run=release.run_id), RECOVERY_BOUND, f"recovery of {release.run_id}")
    restored(stack, release, RESTORE_BOUND)
    back = last_rollback(stack, release, crashed_flow_run=release.run_id)
    state = stack.api.flow_run(release.run_id)["state"]
    crashed = at(state["timestamp"]) - killed
    recovering = at(audited(stack, "deployment_crashed", flow_run=release.run_id)[0]["time"]) - killed
    return Outcome(back - killed, f"run {state['type']} after {crashed:.1f} s, recover run acting after {recovering:.1f} s")


def crash(stack: Stack, tag: str) -> Outcome:
    release = start_release(stack, tag)
    both_switched(stack, release)
    return recovered(stack, release, stack.kill_flow_run(release.run_id))


def lost_node(stack: Stack, tag: str) -> Outcome:
    release = start_release(stack, tag)
    both_switched(stack, release)
    killed = stack.lose_node(release.run_id)
    stack.start_worker()
    return recovered(stack, release, killed)


def failures(watch_interval: float) -> list[Failure]:
    return [
        Failure("failed watch check", "v1.2.0", watch_interval + 2, "watch_failed -> last rollback_executed", failed_watch),
        Failure("switch refused", "v1.3.0", 2, "refused PATCH (sandbox request log) -> rollback_executed of user-service", refused_switch),
        Failure("crash (flow run killed)", "v1.4.0", CRASH_TARGET_SECONDS, "SIGKILL -> last rollback_executed of the recover run", crash),
        Failure("lost node (worker too)", "v1.5.0", CRASH_TARGET_SECONDS, "SIGKILL of both -> last rollback_executed of the recover run", lost_node),
    ]


def measure(stack: Stack, plan: list[Failure]) -> list[tuple[Failure, Outcome | None, str]]:
    """Each failure in turn, faults cleared between them; after one that was not restored the rest are not run."""
    rows: list[tuple[Failure, Outcome | None, str]] = []
    for failure in plan:
        if rows and rows[-1][1] is None:
            rows.append((failure, None, "not run"))
            continue
        print(f"{failure.name}: releasing {failure.tag} ...", file=sys.stderr, flush=True)
        try:
            rows.append((failure, failure.inject(stack, failure.tag), ""))
        except (NotRestored, StackError) as why:
            rows.append((failure, None, f"not restored: {why}"))
        finally:
            stack.control("DELETE", "/faults")
    return rows


def print_table(rows: list[tuple[Failure, Outcome | None, str]], watch_interval: float) -> None:
    print(f"restore after a failure: release of {' + '.join(PAIR)} (blue-green) through Prefect's API, process worker, "
          f"SQLite; watch check every {watch_interval:g}s, heartbeats every {HEARTBEAT_SECONDS}s, zombie window {ZOMBIE_AFTER_SECONDS}s")
    print(f"{'failure':<26} {'target':>8} {'seconds':>8}  met")
    for failure, outcome, problem in rows:
        target = f"<= {failure.target_seconds:g} s"
        if outcome is None:
            print(f"{failure.name:<26} {target:>8} {'-':>8}  {problem}")
        else:
            met = "yes" if outcome.seconds <= failure.target_seconds else "no"
            print(f"{failure.name:<26} {target:>8} {outcome.seconds:>8.2f}  {met}")
    print()
    for failure, outcome, _ in rows:
        print(f"{failure.name}: {failure.measured}" + (f"; {outcome.note}" if outcome else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="run the stack in this directory and keep it (logs, audit log)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated benchmark still stops its stack
    policy = overlay(yaml.safe_load((REPO / "policies" / "demo.yaml").read_text()), FAST_POLICY)
    watch_interval = parse_duration(policy["watch"]["interval"]).total_seconds()
    plan = failures(watch_interval)
    extra_tags = tuple(f.tag for f in plan if f.tag != "v1.2.0")  # passing CI reports, as v1.2.0 has
    with tempfile.TemporaryDirectory(prefix="failures-") as scratch:
        work = args.work or Path(scratch)
        with release_stack(work, policy, extra_tags, ZOMBIE_AFTER_SECONDS) as stack:
            for service in PAIR:  # the sandbox registry knows v1.2.0 to v1.4.0; push the others
                for tag in extra_tags:
                    stack.control("POST", "/images", json={"repository": service, "tag": tag})
            rows = measure(stack, plan)
    print_table(rows, watch_interval)
    return 1 if any(outcome is None for _, outcome, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
