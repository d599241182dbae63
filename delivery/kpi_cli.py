"""`tripgen-release kpi`: the release KPIs and DORA keys of a window, against the policy's thresholds and targets."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from delivery.audit import AuditLog, verify
from delivery.kpi import Bound, KpiReport, ReleaseRun, Row, Unit, measure, release_runs, tag_commit_times
from delivery.policy.loader import PolicyError, load_policy
from delivery.policy.models import Kpi
from delivery.units import parse_duration

SYMBOLS = {">=": "≥", "<=": "≤", "<": "<"}
VERDICTS = {True: "ok", False: "NO", None: "n/a"}


def _since(_ctx: click.Context, _param: click.Parameter, text: str) -> timedelta:
    try:
        window = parse_duration(text)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    if not window:
        raise click.BadParameter("the window must be longer than 0s")
    return window


def duration(seconds: float) -> str:
    """`12ms`, `4.2s`, `3m05s`, `20m`, `2h10m` or `3d04h`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    for big, small, size, unit in (("d", "h", 86400, 3600), ("h", "m", 3600, 60), ("m", "s", 60, 1)):
        if whole >= size:
            rest = whole % size // unit
            return f"{whole // size}{big}{rest:02d}{small}" if rest else f"{whole // size}{big}"
    return f"{whole}s"


def amount(value: float, unit: Unit) -> str:
    """A KPI value in its unit."""
    if unit == "seconds":
        return duration(value)
    number = f"{value:.2f}".rstrip("0").rstrip(".")
    return {"percent": f"{number}%", "per_day": f"{number}/day", "per_week": f"{number}/week"}[unit]


def _bound(bound: Bound, unit: Unit) -> str:
    return f"{bound.source} {SYMBOLS[bound.op]} {amount(bound.limit, unit)}"


def _run_line(run: ReleaseRun) -> str:
    switches = " ".join(duration(s) for s in run.switch_seconds) or "-"
    took = duration(run.seconds) if run.seconds is not None else "-"
    restore = duration(run.time_to_restore) if run.time_to_restore is not None else "-"
    canary = amount(run.canary_error_rate, "percent") if run.canary_error_rate is not None else "-"
    return f"{run.release:<16} {run.outcome:<12} {run.started:%Y-%m-%d %H:%M}  {took:>8}  {restore:>8}  {canary:>10}  {switches}"


def _cells(row: Row) -> list[tuple[str, str, str, str]]:
    """(KPI, value, bound, verdict) per bound of `row`; the name and value on the first only."""
    value = "-" if row.value is None else amount(row.value, row.unit)
    shown = f"{value} ({row.note})" if row.note else value
    pairs = [(_bound(bound, row.unit), VERDICTS[ok]) for bound, ok in zip(row.bounds, row.verdicts())] or [("", "")]
    return [(row.name, shown, *pairs[0])] + [("", "", *pair) for pair in pairs[1:]]


def render(report: KpiReport) -> str:
    """The release runs of the window, then one line per KPI bound: value, threshold or target, ok / NO / n/a."""
    lines = [f"window: {report.start:%Y-%m-%d %H:%M} → {report.end:%Y-%m-%d %H:%M} UTC", ""]
    lines.append(f"{'release':<16} {'outcome':<12} {'started (UTC)':<16}  {'duration':>8}  {'restore':>8}  {'canary 5xx':>10}  switches")
    lines += [_run_line(run) for run in report.runs] or ["(no release started in the window)"]
    cells = [("KPI", "value", "threshold / target", "ok")] + [cell for row in report.rows for cell in _cells(row)]
    widths = [max(len(cell[i]) for cell in cells) for i in range(3)]
    lines.append("")
    lines += [" ".join(text.ljust(width) for text, width in zip(cell, [*widths, 0])).rstrip() for cell in cells]
    return "\n".join(lines)


def kpi_text(audit_log: Path, policy: Kpi, start: datetime, end: datetime, commit_times: Mapping[str, datetime]) -> str:
    """What `tripgen-release kpi` prints: the audit log's hash chain check, then the KPIs of the runs started in [start, end]."""
    chain = verify(audit_log)
    checked = f"audit log {audit_log}: {chain.records} records, hash chain " + (
        "intact" if chain.intact else f"BROKEN at line {chain.broken_line}: {chain.problem}")
    return checked + "\n" + render(measure(AuditLog(audit_log).records(), policy, start, end, commit_times))


@click.command("kpi")
@click.option("--since", default="30d", show_default=True, callback=_since, help="The window: releases started this long ago or later.")
@click.option("--audit-log", envvar="TRIPGEN_AUDIT_LOG", default=".sandbox/audit/audit.jsonl", show_default=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The audit log (default: $TRIPGEN_AUDIT_LOG; else the demo's).")
@click.option("--policy", "policy_file", envvar="TRIPGEN_POLICY", default="policies/tripgen.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="The release policy: its kpi thresholds and targets.")
@click.option("--repo", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A git clone of the services: the tags' commit times give the lead time for changes.")
def kpi(since: timedelta, audit_log: Path, policy_file: str, repo: Path | None) -> None:
    """Deployment KPIs (R-KPI) and the DORA keys from the audit log, against the policy's thresholds and targets."""
    try:
        policy = load_policy(policy_file)
    except PolicyError as err:
        click.echo(err.report(), err=True)
        sys.exit(2)
    commit_times = {}
    if repo:
        try:
            commit_times = tag_commit_times(repo, {run.release for run in release_runs(AuditLog(audit_log).records())})
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--repo") from None
    end = datetime.now(timezone.utc)
    click.echo(kpi_text(audit_log, policy.kpi, end - since, end, commit_times))
