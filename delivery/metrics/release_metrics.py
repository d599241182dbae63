"""The release metrics of docs/kpi-metrics.md as Pushgateway groups, computed again from the audit log at each push."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from delivery.kpi import ReleaseRun, release_runs

JOB = "tripgen-release"
CANARY_JOB = "tripgen-canary"
GATES_JOB = "tripgen-gates"
HISTORY = 20  # release runs kept in the history series (the dashboard's table)
STATUS = {"released": 0, "running": 1, "rolled back": 2, "stopped": 3}  # tripgen_deployment_status's values
CANARY_ENDS = ("canary_promoted", "canary_aborted")


@dataclass(frozen=True, eq=False)  # hashed by identity: a registry keys its collectors
class PushGroup:
    """One Pushgateway group: its job, its grouping key and the metric families a push replaces it with."""

    job: str
    key: tuple[tuple[str, str], ...]
    families: tuple[Metric, ...] = ()

    def collect(self) -> Iterable[Metric]:
        return self.families


def _label(outcome: str) -> str:
    return outcome.replace(" ", "_")


def _unix(moment: datetime) -> float:
    return moment.timestamp()


def _gauge(name: str, doc: str, labels: dict[str, str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _initiators(records: list[dict]) -> dict[str | None, str]:
    return {r["details"].get("flow_run_id"): r["actor"] for r in records if r["event"] == "deployment_initiated"}


def _release_families(runs: list[ReleaseRun], records: list[dict], environment: str) -> list[Metric]:
    env = {"environment": environment}
    counts = Counter(_label(run.outcome) for run in runs if run.outcome != "running")
    total = CounterMetricFamily("tripgen_release", "Finished release runs by outcome.", labels=["environment", "outcome"])
    for outcome in ("released", "rolled_back", "stopped"):  # every outcome, zero included: each series exists before it rises
        total.add_metric([environment, outcome], counts[outcome])
    families: list[Metric] = [total]
    finished = [run for run in runs if run.ended is not None]
    if finished:
        last = max(finished, key=lambda run: run.ended)
        families += [_gauge("tripgen_release_duration_seconds", "The last finished release run's duration.", env, last.seconds or 0.0),
                     _gauge("tripgen_release_finished_timestamp_seconds", "When the last release run ended.", env, _unix(last.ended))]
    if runs:
        latest = max(runs, key=lambda run: run.started)
        families.append(_gauge("tripgen_deployment_status", "The latest release run: 0 released, 1 in progress, 2 rolled back, 3 stopped.",
                               {**env, "release": latest.release}, STATUS[latest.outcome]))
    families += _history(finished[-HISTORY:], _initiators(records), environment)
    leads = [run for run in finished if run.outcome == "released" and run.commit_time]
    if leads:
        families.append(_gauge("tripgen_lead_time_seconds", "The last released run: from the tag's commit to the release's end.",
                               env, (leads[-1].ended - leads[-1].commit_time).total_seconds()))
    restores = [run.time_to_restore for run in finished if run.time_to_restore is not None]
    if restores:
        families.append(_gauge("tripgen_time_to_restore_seconds", "The last rolled-back run: from failure detected to restored.", env, restores[-1]))
    return families


def _history(runs: Sequence[ReleaseRun], initiators: dict[str | None, str], environment: str) -> list[Metric]:
    names = ["environment", "release", "outcome", "initiator", "run"]
    durations = GaugeMetricFamily("tripgen_release_history_duration_seconds", "A recent release run's duration.", labels=names)
    ends = GaugeMetricFamily("tripgen_release_history_finished_timestamp_seconds", "When a recent release run ended.", labels=names)
    for run in runs:
        labels = [environment, run.release, _label(run.outcome), initiators.get(run.flow_run_id, "unknown"), (run.flow_run_id or "")[:8]]
        durations.add_metric(labels, run.seconds or 0.0)
        ends.add_metric(labels, _unix(run.ended))
    return [durations, ends] if runs else []


def _service_families(records: list[dict], service: str, environment: str) -> list[Metric]:
    labels = {"service": service, "environment": environment}
    rollbacks = [r for r in records if r["event"] == "rollback_executed" and r["details"].get("service") == service
                 and r["details"].get("environment", "production") == environment]
    total = CounterMetricFamily("tripgen_rollback", "Services rolled back (rollback_executed audit events).", labels=list(labels))
    total.add_metric(list(labels.values()), len(rollbacks))
    families: list[Metric] = [total]
    switches = [r for r in records if r["event"] == "traffic_switched" and r["details"].get("service") == service]
    if switches:
        last = switches[-1]
        families += [_gauge("tripgen_blue_green_switch_seconds", "The service's last blue-green switch: start to all traffic on the new color.",
                            labels, float(last["details"]["seconds"])),
                     _gauge("tripgen_blue_green_switch_finished_timestamp_seconds", "When that switch ended.", labels,
                            _unix(datetime.fromisoformat(last["time"])))]
    return families


def release_groups(records: list[dict], services: Sequence[str], environment: str = "production") -> list[PushGroup]:
    """The release-wide group and one group per service, from every audit record so far."""
    runs = release_runs(records)
    groups = [PushGroup(JOB, (("environment", environment),), tuple(_release_families(runs, records, environment)))]
    for service in services:
        key = (("service", service), ("environment", environment))
        groups.append(PushGroup(JOB, key, tuple(_service_families(records, service, environment))))
    return groups


def canary_group(service: str, errors: float, requests: float, environment: str = "production") -> PushGroup | None:
    """A running canary's error ratio over its last interval; None when it served no request (unknown is not 0)."""
    key = (("service", service), ("environment", environment))
    if requests <= 0:
        return None
    ratio = _gauge("tripgen_canary_error_ratio", "The running canary's error ratio at its last analysis (0.005 = 0.5%).",
                   dict(key), errors / requests)
    return PushGroup(CANARY_JOB, key, (ratio,))


def ended_canary(record: dict, environment: str = "production") -> PushGroup | None:
    """The canary group an audit record ends (promoted or aborted), to delete; else None."""
    if record["event"] not in CANARY_ENDS:
        return None
    return PushGroup(CANARY_JOB, (("service", record["details"]["service"]), ("environment", environment)))


def gates_group(release: str, passed: dict[str, bool], environment: str = "production") -> PushGroup:
    """The quality gates of the release being checked: 1 passed, 0 failed or unreadable."""
    family = GaugeMetricFamily("tripgen_quality_gate_passed", "The last release's quality gates: 1 passed, 0 not.",
                               labels=["environment", "gate", "release"])
    for gate, ok in passed.items():
        family.add_metric([environment, gate, release], 1.0 if ok else 0.0)
    return PushGroup(GATES_JOB, (("environment", environment),), (family,))
