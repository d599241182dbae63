"""Release KPIs (R-KPI) and the four DORA keys, read from the audit log and held to the policy's `kpi` section."""

from __future__ import annotations

import math
import subprocess
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from statistics import fmean
from typing import Literal

from delivery.audit import run_of
from delivery.policy.models import Kpi

Outcome = Literal["released", "rolled back", "stopped", "running"]
Unit = Literal["percent", "seconds", "per_day", "per_week"]
IN_PRODUCTION = ("released", "rolled back")
ENDS = ("deployment_completed", "deployment_failed", "deployment_recovered")
DETECTIONS = ("watch_failed", "canary_aborted", "deployment_crashed")
CANARY_ENDS = ("canary_promoted", "canary_aborted")
DAY, WEEK = timedelta(days=1), timedelta(weeks=1)


@dataclass(frozen=True)
class CanaryCount:
    """A run's canary 5xx and requests, summed over its services' analysed intervals."""

    errors: int
    requests: int


@dataclass(frozen=True)
class ReleaseRun:
    """One release run as its audit records tell it; `detected` and `restored` only when it was rolled back."""

    flow_run_id: str | None
    release: str
    outcome: Outcome
    started: datetime
    ended: datetime | None
    seconds: float | None
    switch_seconds: tuple[float, ...]
    commit_time: datetime | None
    detected: datetime | None
    restored: datetime | None
    canary: CanaryCount | None  # None: no canary recorded its counts

    @property
    def time_to_restore(self) -> float | None:
        return (self.restored - self.detected).total_seconds() if self.detected and self.restored else None

    @property
    def canary_error_rate(self) -> float | None:
        return _percent(self.canary.errors, self.canary.requests) if self.canary else None


@dataclass(frozen=True)
class Bound:
    """What a KPI must be (`op` `limit`): a policy alert threshold or a target."""

    source: Literal["threshold", "target"]
    op: Literal[">=", "<=", "<"]
    limit: float

    def met(self, value: float) -> bool:
        return {">=": value >= self.limit, "<=": value <= self.limit, "<": value < self.limit}[self.op]


@dataclass(frozen=True)
class Row:
    """One KPI line: its value (None: nothing in the window to compute it from), unit, note and bounds."""

    name: str
    value: float | None
    unit: Unit
    note: str = ""
    bounds: tuple[Bound, ...] = ()

    def verdicts(self) -> list[bool | None]:
        """Per bound: met, missed, or None when there is no value."""
        return [None if self.value is None else bound.met(self.value) for bound in self.bounds]


@dataclass(frozen=True)
class KpiReport:
    """The release runs started in the window and the KPI rows computed from them."""

    start: datetime
    end: datetime
    runs: list[ReleaseRun]
    rows: list[Row]


def _time(record: dict) -> datetime:
    return datetime.fromisoformat(record["time"])


def _grouped(records: list[dict]) -> dict[tuple[str | None, str], list[dict]]:
    groups: dict[tuple[str | None, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[(run_of(record["event"], record["details"]), record["release"])].append(record)
    return groups


def _outcome(final: dict | None, rolled_back: bool) -> Outcome:
    if final is None:
        return "running"
    if final["event"] == "deployment_completed":
        return "released"
    return "rolled back" if rolled_back or final["details"].get("outcome") == "rolled back" else "stopped"


def _canary(records: list[dict]) -> CanaryCount | None:
    """Each service's last canary_promoted or canary_aborted that has counts (a manual promotion records two), summed."""
    last = {r["details"]["service"]: r["details"] for r in records if r["event"] in CANARY_ENDS and "requests" in r["details"]}
    if not last:
        return None
    return CanaryCount(sum(d["errors"] for d in last.values()), sum(d["requests"] for d in last.values()))


def _release_run(key: tuple[str | None, str], records: list[dict]) -> ReleaseRun:
    """Outcome from the run's last end event; failure detected at its first watch_failed, canary_aborted or crash
    (else when its restore began), restored at its last rollback_executed (never, if a service was left unrestored)."""
    started = next(r for r in records if r["event"] == "deployment_initiated")
    final = next((r for r in reversed(records) if r["event"] in ENDS), None)
    rollbacks = [r for r in records if r["event"] == "rollback_executed"]
    outcome = _outcome(final, bool(rollbacks))
    detected = restored = None
    if outcome == "rolled back" and rollbacks:
        first = next((r for r in records if r["event"] in DETECTIONS), None)
        detected = _time(first) if first else _time(rollbacks[0]) - timedelta(seconds=rollbacks[0]["details"]["seconds"])
        restored = None if any(r["event"] == "rollback_failed" for r in records) else _time(rollbacks[-1])
    commit = started["details"].get("commit_time")
    return ReleaseRun(
        flow_run_id=key[0],
        release=key[1],
        outcome=outcome,
        started=_time(started),
        ended=_time(final) if final else None,
        seconds=final["details"].get("seconds", (_time(final) - _time(started)).total_seconds()) if final else None,
        switch_seconds=tuple(r["details"]["seconds"] for r in records if r["event"] == "traffic_switched"),
        commit_time=datetime.fromisoformat(commit) if commit else None,
        detected=detected,
        restored=restored,
        canary=_canary(records),
    )


def release_runs(records: list[dict]) -> list[ReleaseRun]:
    """Every release run in the log (grouped by flow run and release), in the order they started."""
    groups = _grouped(records).items()
    return [_release_run(key, group) for key, group in groups if any(r["event"] == "deployment_initiated" for r in group)]


def manual_rollbacks(records: list[dict]) -> list[datetime]:
    """When each `tripgen-release rollback` run finished restoring (its last rollback_executed)."""
    groups = _grouped(records).values()
    return [
        _time([r for r in group if r["event"] == "rollback_executed"][-1])
        for group in groups
        if any(r["event"] == "rollback_requested" for r in group) and any(r["event"] == "rollback_executed" for r in group)
    ]


def tag_commit_times(repo: Path, tags: set[str]) -> dict[str, datetime]:
    """Each tag's commit time in the git repository `repo` (`git log -1 --format=%cI`); tags git does not know are left out."""
    if subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        raise ValueError(f"{repo} is not a git repository")
    found = {}
    for tag in sorted(tags):
        done = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%cI", tag, "--"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            found[tag] = datetime.fromisoformat(done.stdout.strip())
    return found


def _mean(values: list[float]) -> float | None:
    return fmean(values) if values else None


def _p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile."""
    return sorted(values)[math.ceil(0.95 * len(values)) - 1] if values else None


def _percent(part: int, whole: int) -> float | None:
    return 100 * part / whole if whole else None


def measure(records: list[dict], kpi: Kpi, start: datetime, end: datetime, commit_times: Mapping[str, datetime]) -> KpiReport:
    """The KPIs of the runs started in [start, end]: rates count releases that reached production (released or rolled
    back), durations released ones, the canary error rate every run's canaries; a tag's commit time: the run's, else `commit_times`."""
    runs = [r for r in release_runs(records) if start <= r.started <= end]
    production = [r for r in runs if r.outcome in IN_PRODUCTION]
    released = [r for r in production if r.outcome == "released"]
    failed = [r for r in production if r.outcome == "rolled back"]
    rollbacks = [r.restored or r.ended for r in failed] + [t for t in manual_rollbacks(records) if start <= t <= end]
    busiest = max(Counter(t.date() for t in rollbacks).values(), default=0)
    durations = [r.seconds for r in released]
    switches = [s for r in runs for s in r.switch_seconds]
    leads = [(r.ended - c).total_seconds() for r in released if (c := r.commit_time or commit_times.get(r.release))]
    restores = [t for r in failed if (t := r.time_to_restore) is not None]
    canaries = [r.canary for r in runs if r.canary]
    canary_errors, canary_requests = sum(c.errors for c in canaries), sum(c.requests for c in canaries)
    days, weeks, targets = (end - start) / DAY, (end - start) / WEEK, kpi.targets
    in_prod, n_released = f"of {len(production)} production releases", f"{len(released)} released"
    return KpiReport(start, end, runs, [
        Row("deployment_success_rate", _percent(len(released), len(production)), "percent", f"{len(released)} {in_prod}",
            (Bound("threshold", ">=", kpi.min_deployment_success_rate_percent), Bound("target", ">=", targets.success_rate_percent))),
        Row("rollback_frequency (mean)", len(rollbacks) / days, "per_day", f"{len(rollbacks)} in {days:g} days"),
        Row("rollback_frequency (busiest day)", busiest, "per_day", "most in one UTC day", (Bound("threshold", "<=", kpi.max_rollbacks_per_day),)),
        Row("deployment_duration (mean)", _mean(durations), "seconds", n_released,
            (Bound("target", "<=", targets.mean_deployment_time.total_seconds()),)),
        Row("deployment_duration (p95)", _p95(durations), "seconds", n_released),
        Row("deployment_duration (max)", max(durations, default=None), "seconds", n_released,
            (Bound("threshold", "<=", kpi.max_deployment_duration.total_seconds()),)),
        Row("canary_error_rate", _percent(canary_errors, canary_requests), "percent",
            f"{canary_errors} 5xx of {canary_requests} canary requests in {len(canaries)} canary releases" if canary_requests else
            "no canary requests counted" if canaries else "no canary release in the window",
            (Bound("threshold", "<=", kpi.max_canary_error_rate_percent),)),
        Row("blue_green_switch_time (mean)", _mean(switches), "seconds", f"{len(switches)} switches"),
        Row("blue_green_switch_time (max)", max(switches, default=None), "seconds", f"{len(switches)} switches",
            (Bound("threshold", "<=", kpi.max_blue_green_switch_time.total_seconds()),)),
        Row("deployment_frequency", len(released) / weeks, "per_week", f"{n_released} in {weeks:.2f} weeks",
            (Bound("target", ">=", targets.deployments_per_week),)),
        Row("lead_time_for_changes (mean)", _mean(leads), "seconds",
            f"{len(leads)} of {len(released)} released with a commit time" if leads else
            "unknown: no commit time; give --repo"),
        Row("change_failure_rate", _percent(len(failed), len(production)), "percent", f"{len(failed)} rolled back {in_prod}",
            (Bound("target", "<", targets.max_rollback_rate_percent),)),
        Row("time_to_restore (mean)", _mean(restores), "seconds", f"of {len(restores)}, failure detected → restored",
            (Bound("target", "<=", targets.mttr.total_seconds()),)),
    ])
