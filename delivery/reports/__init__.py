"""Readers of the reports the quality gates judge: coverage, JUnit, Trivy, k6 and SonarQube.

`read_report` fetches a report from a path or URL template, a path under the reports' source (a directory or a
blob container, delivery/reports/source.py); each format's module turns the bytes into numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_xml
import httpx
from defusedxml import DefusedXmlException

from delivery.reports.source import ReportSource, ReportSourceError, report_source

REPORT_FETCH_TIMEOUT_SECONDS = 30.0


class ReportError(Exception):
    """A report that is missing, unreadable or not in its format; the message names it and the fix."""


@dataclass(frozen=True)
class RawReport:
    """The bytes of one report and where they came from (a path or URL, used in messages)."""

    location: str
    content: bytes


def read_report(
    template: str, reports_root: str | Path | ReportSource, *, http_client: httpx.Client | None = None, **fields: str
) -> RawReport:
    """Fill `{tag}`/`{service}` into `template` and read that file (relative to `reports_root`, a directory or a
    ReportSource) or http(s) URL."""
    for name, value in fields.items():
        if not value or "/" in value or "\\" in value or value in {".", ".."}:
            raise ReportError(f"{name} '{value}' cannot be part of a report path: it must be one path segment")
    is_url = template.startswith(("http://", "https://"))
    try:
        location = template.format(**{k: quote(v, safe="") if is_url else v for k, v in fields.items()})
    except (KeyError, IndexError, ValueError) as err:
        raise ReportError(
            f"report template '{template}' cannot be filled ({type(err).__name__}: {err}): "
            f"use only the placeholders {', '.join('{' + f + '}' for f in fields)}"
        ) from None
    if is_url:
        return RawReport(location, _fetch(location, http_client))
    source = report_source(reports_root)
    where = source.location(location)
    try:
        return RawReport(where, source.read_bytes(location))
    except FileNotFoundError:
        raise ReportError(
            f"no report at {where}: the CI job must publish it there, or the report path in the policy is wrong"
        ) from None
    except ReportSourceError as err:
        raise ReportError(str(err)) from None
    except OSError as err:
        raise ReportError(f"cannot read the report {where}: {err.strerror}") from None


@contextmanager
def http_session(http_client: httpx.Client | None, timeout_seconds: float) -> Iterator[httpx.Client]:
    """`http_client` as is, or a new client with `timeout_seconds` that is closed afterwards."""
    if http_client is not None:
        yield http_client
        return
    with httpx.Client(timeout=timeout_seconds, follow_redirects=True) as fresh:
        yield fresh


def _fetch(url: str, http_client: httpx.Client | None) -> bytes:
    with http_session(http_client, REPORT_FETCH_TIMEOUT_SECONDS) as http:
        try:
            response = http.get(url)
        except httpx.TimeoutException:
            raise ReportError(f"the report {url} did not arrive in time: check that its server is up") from None
        except httpx.HTTPError as err:
            raise ReportError(f"the report {url} is unreachable ({type(err).__name__})") from None
    if response.status_code != 200:
        raise ReportError(
            f"the report {url} answered HTTP {response.status_code}: "
            "the CI job must publish it there, or the report URL in the policy is wrong"
        )
    return response.content


def parse_xml(report: RawReport) -> Element:
    """The root element of an XML report; entity declarations are refused and no DTD is fetched."""
    try:
        return safe_xml.fromstring(report.content)
    except ParseError as err:
        raise ReportError(f"{report.location} is not well-formed XML ({err}): regenerate the report") from None
    except DefusedXmlException as err:
        raise ReportError(
            f"{report.location} declares XML entities, which are refused as unsafe ({type(err).__name__})"
        ) from None


def parse_json(report: RawReport) -> object:
    """The decoded JSON document of a report."""
    try:
        return json.loads(report.content)
    except ValueError as err:
        raise ReportError(f"{report.location} is not valid JSON ({err}): regenerate the report") from None


def as_number(value: object, what: str, location: str) -> float:
    """`value` (a JSON number or a numeric XML attribute) as a finite float, or ReportError naming `what`."""
    if not isinstance(value, bool):
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
        else:
            if math.isfinite(number):
                return number
    raise ReportError(f"{location}: {what} should be a number, got {value!r}")
