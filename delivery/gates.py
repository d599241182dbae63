"""The quality gates of R-GATE: each reads its report, holds it against the policy and returns a GateResult.

Verdicts: `passed`; `failed` (a required gate missed its threshold: the release stops); `warning` (a
recommended gate missed it: the release goes on); `error` (the report is missing or unreadable, so there
is no verdict: a required gate then stops the release like a failure — fail safe).

Performance "within ±N% of the baseline": p95 duration, error rate and requests/s are each compared with
the baseline as a change relative to the baseline value. A change for the worse (slower, more failed
requests, fewer requests/s) of more than N% fails; exactly N% still passes. A change for the better of
more than N% passes, with a note to update the baseline, which no longer describes the service. A zero
baseline has no band: any move for the worse from it is a regression.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict

from delivery.policy.models import (
    CodeQualityGate,
    Gate,
    IntegrationTestGate,
    OnFailure,
    PerformanceGate,
    SecurityScanGate,
    UnitTestGate,
)
from delivery.reports import ReportError, http_session, read_report
from delivery.reports.source import ReportSource
from delivery.reports.coverage import parse_coverage
from delivery.reports.junit import parse_junit
from delivery.reports.k6 import LoadTestSummary, parse_k6_summary
from delivery.reports.sonarqube import SONAR_TOKEN_ENV, SONARQUBE_TIMEOUT_SECONDS, SonarQube
from delivery.reports.trivy import SEVERITIES, TrivyScan, parse_trivy, run_trivy

UNIT_TESTS = "unit tests"
INTEGRATION_TESTS = "integration tests"
SECURITY_SCAN = "security scan"
PERFORMANCE = "performance"
CODE_QUALITY = "code quality"
TRIVY_TIMEOUT_SECONDS = 600.0

Verdict = Literal["passed", "failed", "warning", "error"]
Cell = str | int | float | None


class GateResult(BaseModel):
    """One gate's verdict, the measured number against the threshold, and detail rows for a table artifact."""

    model_config = ConfigDict(frozen=True)

    gate: str
    required: bool
    verdict: Verdict
    measured: str
    threshold: str
    on_failure: OnFailure
    summary: str
    rows: list[dict[str, Cell]]


def blocking(results: Iterable[GateResult]) -> list[GateResult]:
    """The required gates that stop the release: failed, or without a verdict (fail safe)."""
    return [result for result in results if result.required and result.verdict in ("failed", "error")]


# --- unit and integration tests -------------------------------------------------------


def check_unit_tests(
    gate: UnitTestGate, tag: str, reports_root: str | Path | ReportSource, *, http_client: httpx.Client | None = None
) -> GateResult:
    """Line coverage from JaCoCo or Cobertura XML must be at least `min_coverage_percent`."""
    required = _percent(gate.min_coverage_percent)
    threshold = f"line coverage >= {required}"
    try:
        report = read_report(gate.report, reports_root, http_client=http_client, tag=tag)
        coverage = parse_coverage(report)
    except ReportError as err:
        return no_verdict(UNIT_TESTS, gate, threshold, str(err))
    ok = coverage.line_percent >= gate.min_coverage_percent
    measured = f"line coverage {_percent(coverage.line_percent)}"
    return judged(
        UNIT_TESTS,
        gate,
        ok=ok,
        measured=measured,
        threshold=threshold,
        summary=f"{UNIT_TESTS}: {measured} {'meets' if ok else 'is below'} the required {required}",
        rows=[
            {
                "report": report.location,
                "format": coverage.format,
                "line coverage %": round(coverage.line_percent, 2),
                "branch coverage %": None if coverage.branch_percent is None else round(coverage.branch_percent, 2),
                "required line coverage %": gate.min_coverage_percent,
            }
        ],
    )


def check_integration_tests(
    gate: IntegrationTestGate, tag: str, reports_root: str | Path | ReportSource, *, http_client: httpx.Client | None = None
) -> GateResult:
    """The share of executed JUnit test cases that passed must be at least `min_pass_percent`."""
    required = _percent(gate.min_pass_percent)
    threshold = f"pass rate >= {required}"
    try:
        report = read_report(gate.report, reports_root, http_client=http_client, tag=tag)
        results = parse_junit(report)
    except ReportError as err:
        return no_verdict(INTEGRATION_TESTS, gate, threshold, str(err))
    if results.executed == 0:
        why = f"{report.location} records no executed test case: the integration tests did not run"
        return no_verdict(INTEGRATION_TESTS, gate, threshold, why)
    pass_percent = results.passed / results.executed * 100
    failed = results.failures + results.errors
    passed = _percent(pass_percent)
    skipped = f"{results.skipped} skipped" if results.skipped else ""
    measured = f"{results.passed} of {results.executed} passed ({passed})" + (f", {skipped}" if skipped else "")
    outcome = f"{failed} of {results.executed} failed ({passed} passed)" if failed else measured
    rows: list[dict[str, Cell]] = [
        {"test": test.name, "outcome": test.outcome, "message": test.message} for test in results.failed
    ] or [{"test": f"all {results.executed} executed test cases", "outcome": "passed", "message": skipped}]
    return judged(
        INTEGRATION_TESTS,
        gate,
        ok=pass_percent >= gate.min_pass_percent,
        measured=measured,
        threshold=threshold,
        summary=f"{INTEGRATION_TESTS}: {outcome}, {required} required",
        rows=rows,
    )


# --- security scan --------------------------------------------------------------------


def check_security_scan(
    gate: SecurityScanGate,
    tag: str,
    images: Mapping[str, str],
    reports_root: str | Path | ReportSource,
    *,
    http_client: httpx.Client | None = None,
    use_trivy: bool = True,
    trivy_timeout_seconds: float = TRIVY_TIMEOUT_SECONDS,
    digests: Mapping[str, str] | None = None,
) -> GateResult:
    """Each image (service -> image ref) may have at most `max_critical` CRITICAL and, when set, `max_high` HIGH.

    Runs `trivy image` when `use_trivy` and `trivy` is on PATH; otherwise reads each service's Trivy JSON report.
    A scan naming another digest than the release's (`digests`, service -> sha256:…) has no verdict.
    """
    threshold = f"at most {gate.max_critical} CRITICAL" + (
        f" and {gate.max_high} HIGH per image" if gate.max_high is not None else " per image (HIGH listed, not gating)"
    )
    if not images:
        return no_verdict(SECURITY_SCAN, gate, threshold, "no image to scan: the release plan lists no service")
    trivy = shutil.which("trivy") if use_trivy else None

    def scan(service: str, image: str) -> TrivyScan:
        if trivy:
            return run_trivy(trivy, image, trivy_timeout_seconds)
        return parse_trivy(read_report(gate.report, reports_root, http_client=http_client, tag=tag, service=service))

    scans: dict[str, TrivyScan] = {}
    problems: dict[str, str] = {}
    for service, image in images.items():
        try:
            found = scan(service, image)
            _same_build(found, (digests or {}).get(service), f"trivy image {image}" if trivy else _file(gate, tag, service))
            scans[service] = found
        except ReportError as err:
            problems[service] = str(err)
    violations = {service: _violations(gate, found) for service, found in scans.items()}
    rows = [
        _scan_row(service, image, scans.get(service), violations.get(service), problems.get(service))
        for service, image in images.items()
    ]
    critical = sum(scan.counts["CRITICAL"] for scan in scans.values())
    high = sum(scan.counts["HIGH"] for scan in scans.values())
    measured = f"{critical} CRITICAL, {high} HIGH in {len(scans)} of {len(images)} images"
    broken = "; ".join(f"{service} has {v}" for service, found in violations.items() for v in found)
    unread = "; ".join(f"{service}: {why}" for service, why in problems.items())
    if broken:
        summary = f"{SECURITY_SCAN}: {broken}" + (f"; no verdict for {unread}" if unread else "")
        return judged(
            SECURITY_SCAN, gate, ok=False, measured=measured, threshold=threshold, summary=summary, rows=rows
        )
    if problems:
        return no_verdict(SECURITY_SCAN, gate, threshold, unread, rows=rows, measured=measured)
    summary = f"{SECURITY_SCAN}: {measured}; allowed: {threshold}"
    return judged(SECURITY_SCAN, gate, ok=True, measured=measured, threshold=threshold, summary=summary, rows=rows)


def _same_build(scan: TrivyScan, digest: str | None, scanned: str) -> None:
    """ReportError unless the scan names `digest`, where it names any digest at all (a by-tag report names none)."""
    if digest and scan.digests and digest not in scan.digests:
        raise ReportError(f"{scanned} scanned {', '.join(scan.digests)}, the release is {digest}: scan the image being released")


def _file(gate: SecurityScanGate, tag: str, service: str) -> str:
    return gate.report.format(tag=tag, service=service).rstrip("/").rpartition("/")[2]


def _violations(gate: SecurityScanGate, scan: TrivyScan) -> list[str]:
    found = []
    for severity, allowed in (("CRITICAL", gate.max_critical), ("HIGH", gate.max_high)):
        count = scan.counts[severity]
        if allowed is not None and count > allowed:
            ids = ", ".join(finding.id for finding in scan.findings if finding.severity == severity)
            found.append(f"{count} {severity} ({ids}), more than the allowed {allowed}")
    return found


def _scan_row(
    service: str, image: str, scan: TrivyScan | None, violations: list[str] | None, problem: str | None
) -> dict[str, Cell]:
    if scan is None:
        counts: dict[str, Cell] = dict.fromkeys(SEVERITIES)
        return {"service": service, "image": image, **counts, "findings": problem, "verdict": "error"}
    findings = sorted(scan.findings, key=lambda finding: SEVERITIES.index(finding.severity))
    listed = "; ".join(
        f"{f.id} {f.package} {f.installed_version} -> {f.fixed_version or 'no fix yet'} ({f.severity})"
        for f in findings
    )
    return {
        "service": service,
        "image": image,
        **{severity: scan.counts[severity] for severity in SEVERITIES},
        "findings": listed,
        "verdict": "failed" if violations else "passed",
    }


# --- performance ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Comparison:
    """One k6 number against the baseline, and how far it may move for the worse (slower, more errors, less)."""

    metric: str
    unit: str
    baseline: float
    current: float
    higher_is_worse: bool

    def worse_by(self) -> float:
        """How much worse than the baseline, in the metric's unit; negative for an improvement."""
        change = self.current - self.baseline
        return change if self.higher_is_worse else -change

    def band(self, percent: float) -> float:
        """The allowed move either way: `percent` of the baseline (none around a zero baseline)."""
        return abs(self.baseline) * percent / 100

    def value(self, number: float) -> str:
        return f"{_number(number)}{self.unit}"

    def change(self) -> str:
        if self.baseline == 0:
            return "+0%" if self.current == 0 else "above a zero baseline"
        return f"{(self.current - self.baseline) / abs(self.baseline) * 100:+.1f}%"


def check_performance(
    gate: PerformanceGate, tag: str, reports_root: str | Path | ReportSource, *, http_client: httpx.Client | None = None
) -> GateResult:
    """k6 p95 duration, error rate and requests/s each within ±`max_deviation_percent` of the baseline summary."""
    band = gate.max_deviation_percent
    threshold = f"p95 duration, error rate and throughput within ±{_percent(band)} of the baseline"
    try:
        current = parse_k6_summary(read_report(gate.report, reports_root, http_client=http_client, tag=tag))
        baseline_report = read_report(gate.baseline, reports_root, http_client=http_client, tag=tag)
        baseline = parse_k6_summary(baseline_report)
    except ReportError as err:
        return no_verdict(PERFORMANCE, gate, threshold, str(err))
    comparisons = _comparisons(baseline, current)
    regressions = [c for c in comparisons if c.worse_by() > c.band(band)]
    improvements = [c for c in comparisons if -c.worse_by() > c.band(band)]
    measured = ", ".join(f"{c.metric} {c.value(c.current)} ({c.change()})" for c in comparisons)
    rows: list[dict[str, Cell]] = [
        {
            "metric": c.metric,
            "baseline": c.value(c.baseline),
            "current": c.value(c.current),
            "change": c.change(),
            "allowed": f"±{_percent(band)}",
            "verdict": (
                "regression" if c in regressions else "improved beyond the band" if c in improvements else "within"
            ),
        }
        for c in comparisons
    ]
    if regressions:
        summary = f"{PERFORMANCE}: " + "; ".join(
            f"{c.metric} {c.value(c.current)} ({c.change()} against the baseline {c.value(c.baseline)}) "
            f"is beyond the allowed ±{_percent(band)}"
            for c in regressions
        )
        return judged(PERFORMANCE, gate, ok=False, measured=measured, threshold=threshold, summary=summary, rows=rows)
    summary = f"{PERFORMANCE}: {measured}, within ±{_percent(band)} of the baseline"
    if improvements:
        better = ", ".join(f"{c.metric} ({c.change()})" for c in improvements)
        summary += f"; {better} improved beyond the band: consider updating the baseline {baseline_report.location}"
    return judged(PERFORMANCE, gate, ok=True, measured=measured, threshold=threshold, summary=summary, rows=rows)


def _comparisons(baseline: LoadTestSummary, current: LoadTestSummary) -> list[_Comparison]:
    return [
        _Comparison("p95 duration", " ms", baseline.p95_duration_ms, current.p95_duration_ms, higher_is_worse=True),
        _Comparison("error rate", "%", baseline.error_rate_percent, current.error_rate_percent, higher_is_worse=True),
        _Comparison(
            "throughput", " req/s", baseline.requests_per_second, current.requests_per_second, higher_is_worse=False
        ),
    ]


# --- code quality -----------------------------------------------------------------------


def check_code_quality(gate: CodeQualityGate, tag: str, http_client: httpx.Client | None = None) -> GateResult:
    """SonarQube's quality gate must be OK and the maintainability grade `min_grade` or better (recommended)."""
    threshold = f"SonarQube quality gate OK and maintainability grade {gate.min_grade} or better"
    with http_session(http_client, SONARQUBE_TIMEOUT_SECONDS) as http:
        sonar = SonarQube(gate.sonarqube_url, http, token=os.environ.get(SONAR_TOKEN_ENV))
        try:
            status = sonar.quality_gate(gate.project_key)
            grade = sonar.maintainability_grade(gate.project_key)
        except ReportError as err:
            return no_verdict(CODE_QUALITY, gate, threshold, str(err))
    if status.status == "NONE":
        why = f"SonarQube has no quality gate status for '{gate.project_key}' (NONE): assign a quality gate and analyse"
        return no_verdict(CODE_QUALITY, gate, threshold, why)
    problems = []
    if status.status != "OK":
        failing = ", ".join(
            f"{c.metric} {c.actual} ({c.comparator} {c.error_threshold})" for c in status.conditions if c.status != "OK"
        )
        problems.append(f"quality gate {status.status}" + (f" on {failing}" if failing else ""))
    if grade > gate.min_grade:
        problems.append(f"maintainability grade {grade} is below the required {gate.min_grade}")
    rows: list[dict[str, Cell]] = [
        {"check": c.metric, "status": c.status, "actual": c.actual, "fails when": f"{c.comparator} {c.error_threshold}"}
        for c in status.conditions
    ]
    rows.append(
        {
            "check": "maintainability grade",
            "status": "OK" if grade <= gate.min_grade else "ERROR",
            "actual": grade,
            "fails when": f"worse than {gate.min_grade}",
        }
    )
    measured = f"quality gate {status.status}, maintainability grade {grade}"
    if problems:
        consequence = "the release stops" if gate.required else f"a warning only, {tag} goes on"
        summary = f"{CODE_QUALITY}: {'; '.join(problems)}, where {threshold} is expected: {consequence}"
    else:
        summary = f"{CODE_QUALITY}: {measured}, meeting {threshold}"
    return judged(
        CODE_QUALITY, gate, ok=not problems, measured=measured, threshold=threshold, summary=summary, rows=rows
    )


# --- shared -----------------------------------------------------------------------------


def judged(
    name: str, gate: Gate, *, ok: bool, measured: str, threshold: str, summary: str, rows: list[dict[str, Cell]]
) -> GateResult:
    """A verdict: passed, or failed (required) / warning (recommended)."""
    verdict: Verdict = "passed" if ok else "failed" if gate.required else "warning"
    return GateResult(
        gate=name,
        required=gate.required,
        verdict=verdict,
        measured=measured,
        threshold=threshold,
        on_failure=gate.on_failure,
        summary=summary,
        rows=rows,
    )


def no_verdict(
    name: str,
    gate: Gate,
    threshold: str,
    why: str,
    *,
    rows: list[dict[str, Cell]] | None = None,
    measured: str = "unknown",
) -> GateResult:
    """No verdict (`error`): what the gate needs could not be read; a required gate then stops the release."""
    return GateResult(
        gate=name,
        required=gate.required,
        verdict="error",
        measured=measured,
        threshold=threshold,
        on_failure=gate.on_failure,
        summary=f"{name}: no verdict, {why}",
        rows=rows or [{"problem": why}],
    )


def _number(value: float, decimals: int = 3) -> str:
    """`value` with at most `decimals` decimals and no trailing zeros: 228.4, 0.021, 146."""
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


def _percent(value: float) -> str:
    """A percentage with at most two decimals: 85%, 76.43%."""
    return f"{_number(value, decimals=2)}%"
