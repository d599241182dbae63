"""Line coverage from JaCoCo or Cobertura XML, told apart by the root element (`<report>` or `<coverage>`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from xml.etree.ElementTree import Element

from delivery.reports import RawReport, ReportError, as_number, parse_xml


@dataclass(frozen=True)
class Coverage:
    """The report-wide coverage of one report, in percent; branch coverage when the report measured it."""

    format: Literal["jacoco", "cobertura"]
    line_percent: float
    branch_percent: float | None


def parse_coverage(report: RawReport) -> Coverage:
    """Read JaCoCo (report-level LINE/BRANCH counters) or Cobertura (`line-rate`, `branch-rate`) XML."""
    root = parse_xml(report)
    if root.tag == "report":
        return _jacoco(root, report.location)
    if root.tag == "coverage":
        return _cobertura(root, report.location)
    raise ReportError(
        f"{report.location} is neither JaCoCo XML (root <report>) nor Cobertura XML (root <coverage>): "
        f"its root element is <{root.tag}>"
    )


def _jacoco(root: Element, location: str) -> Coverage:
    counters = {counter.get("type"): counter for counter in root.findall("counter")}
    if "LINE" not in counters:
        raise ReportError(
            f"{location}: the JaCoCo report has no report-level LINE counter: "
            "build it with debug line information (javac -g, Maven's default)"
        )
    branch = counters.get("BRANCH")
    return Coverage(
        format="jacoco",
        line_percent=_counter_percent(counters["LINE"], location),
        branch_percent=None if branch is None else _counter_percent(branch, location),
    )


def _counter_percent(counter: Element, location: str) -> float:
    kind = counter.get("type")
    missed = as_number(counter.get("missed"), f"the {kind} counter's 'missed'", location)
    covered = as_number(counter.get("covered"), f"the {kind} counter's 'covered'", location)
    if missed < 0 or covered < 0 or missed + covered == 0:
        raise ReportError(f"{location}: the {kind} counter counts nothing (missed={missed:g}, covered={covered:g})")
    return covered / (missed + covered) * 100


def _cobertura(root: Element, location: str) -> Coverage:
    line_rate = _rate(root, "line-rate", location)
    measured_branches = root.get("branch-rate") is not None and root.get("branches-valid") != "0"
    return Coverage(
        format="cobertura",
        line_percent=line_rate * 100,
        branch_percent=_rate(root, "branch-rate", location) * 100 if measured_branches else None,
    )


def _rate(root: Element, attribute: str, location: str) -> float:
    rate = as_number(root.get(attribute), f"the Cobertura attribute '{attribute}'", location)
    if not 0 <= rate <= 1:
        raise ReportError(f"{location}: the Cobertura attribute '{attribute}' must be between 0 and 1, got {rate:g}")
    return rate
