"""Trivy image scans: read a Trivy JSON report (SchemaVersion 2), or run `trivy image` and read its output."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from delivery.reports import RawReport, ReportError, parse_json

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
LISTED_SEVERITIES = ("HIGH", "CRITICAL")
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Vulnerability:
    """One finding: the CVE, the package it is in and the version that fixes it ("" when there is none)."""

    id: str
    package: str
    installed_version: str
    fixed_version: str
    severity: str
    title: str


@dataclass(frozen=True)
class TrivyScan:
    """Findings per severity of one image, and the CRITICAL and HIGH ones in full."""

    artifact: str
    counts: Mapping[str, int]
    findings: tuple[Vulnerability, ...]
    digests: tuple[str, ...] = ()  # the manifest digests the report names (ArtifactName, Metadata.RepoDigests)


def parse_trivy(report: RawReport) -> TrivyScan:
    """Count the vulnerabilities of every result; `Results` or `Vulnerabilities` may be null or absent."""
    data = parse_json(report)
    if not isinstance(data, dict) or "SchemaVersion" not in data:
        raise ReportError(f"{report.location} is not a Trivy JSON report (no SchemaVersion): scan with --format json")
    if data["SchemaVersion"] != SCHEMA_VERSION:
        raise ReportError(
            f"{report.location} has Trivy SchemaVersion {data['SchemaVersion']!r}; this reader knows {SCHEMA_VERSION}"
        )
    counts = dict.fromkeys(SEVERITIES, 0)
    findings = []
    for result in _list(data.get("Results"), "Results", report.location):
        for item in _list(result.get("Vulnerabilities"), "Vulnerabilities", report.location):
            severity = str(item.get("Severity", "UNKNOWN")).upper()
            severity = severity if severity in counts else "UNKNOWN"
            counts[severity] += 1
            if severity in LISTED_SEVERITIES:
                findings.append(_vulnerability(item, severity))
    return TrivyScan(artifact=str(data.get("ArtifactName", "")), counts=counts, findings=tuple(findings),
                     digests=_digests(data))


def run_trivy(trivy: str, image: str, timeout_seconds: float) -> TrivyScan:
    """Run `trivy image --format json --quiet --severity HIGH,CRITICAL IMAGE` (no shell) and read its output."""
    if image.startswith("-"):
        raise ReportError(f"'{image}' is not an image reference")
    command = [trivy, "image", "--format", "json", "--quiet", "--severity", ",".join(LISTED_SEVERITIES), image]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_seconds, check=False)
    except subprocess.TimeoutExpired:
        raise ReportError(
            f"trivy did not finish scanning {image} within {timeout_seconds:g}s: "
            "check its vulnerability DB and the registry access"
        ) from None
    except OSError as err:
        raise ReportError(f"cannot run {trivy}: {err.strerror}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else "no error output"
        raise ReportError(f"trivy exited with {done.returncode} scanning {image}: {reason}")
    return parse_trivy(RawReport(f"trivy image {image}", done.stdout))


def _digests(data: dict) -> tuple[str, ...]:
    """The `sha256:…` after the `@` of ArtifactName and of each Metadata.RepoDigests entry (none for a by-tag scan)."""
    metadata = data.get("Metadata") if isinstance(data.get("Metadata"), dict) else {}
    repo_digests = metadata.get("RepoDigests")
    refs = [data.get("ArtifactName"), *(repo_digests if isinstance(repo_digests, list) else [])]
    found = [ref.rpartition("@")[2] for ref in refs if isinstance(ref, str) and "@sha256:" in ref]
    return tuple(dict.fromkeys(found))


def _list(value: object, key: str, location: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ReportError(f"{location}: '{key}' should be a list of objects")
    return value


def _vulnerability(item: dict, severity: str) -> Vulnerability:
    return Vulnerability(
        id=str(item.get("VulnerabilityID", "")),
        package=str(item.get("PkgName", "")),
        installed_version=str(item.get("InstalledVersion", "")),
        fixed_version=str(item.get("FixedVersion") or ""),
        severity=severity,
        title=str(item.get("Title") or ""),
    )
