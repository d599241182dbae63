"""JUnit XML (Maven Surefire/Failsafe, Gradle, pytest): counts from its test cases, and which ones failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from xml.etree.ElementTree import Element

from delivery.reports import RawReport, ReportError, parse_xml


@dataclass(frozen=True)
class FailedTest:
    """A test case that ended in a `<failure>` (an assertion) or an `<error>` (an exception)."""

    name: str
    outcome: Literal["failure", "error"]
    message: str


@dataclass(frozen=True)
class JUnitResults:
    """Totals over every `<testcase>` of a report, and the failed ones by name."""

    tests: int
    failures: int
    errors: int
    skipped: int
    failed: tuple[FailedTest, ...]

    @property
    def executed(self) -> int:
        return self.tests - self.skipped

    @property
    def passed(self) -> int:
        return self.executed - self.failures - self.errors


def parse_junit(report: RawReport) -> JUnitResults:
    """Count the `<testcase>` elements under `<testsuites>` or a single `<testsuite>` (nested suites too)."""
    root = parse_xml(report)
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(
            f"{report.location} is not JUnit XML: its root element is <{root.tag}>, not <testsuites> or <testsuite>"
        )
    outcomes = [(case, _failure(case)) for case in root.iter("testcase")]
    failed = tuple(failure for _, failure in outcomes if failure is not None)
    skipped = sum(1 for case, failure in outcomes if failure is None and case.find("skipped") is not None)
    return JUnitResults(
        tests=len(outcomes),
        failures=sum(1 for test in failed if test.outcome == "failure"),
        errors=sum(1 for test in failed if test.outcome == "error"),
        skipped=skipped,
        failed=failed,
    )


def _failure(case: Element) -> FailedTest | None:
    for outcome in ("error", "failure"):
        element = case.find(outcome)
        if element is not None:
            name = ".".join(part for part in (case.get("classname"), case.get("name")) if part)
            return FailedTest(name=name or "(unnamed test case)", outcome=outcome, message=_message(element))
    return None


def _message(element: Element) -> str:
    """The `message` attribute, else the first line of the element's text (usually a stack trace)."""
    if element.get("message"):
        return element.get("message", "")
    lines = [line.strip() for line in (element.text or "").splitlines() if line.strip()]
    return lines[0] if lines else element.get("type", "")
