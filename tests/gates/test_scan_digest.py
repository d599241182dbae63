"""The security gate holds each Trivy report to the digest being released, where the report names one."""

import json

import pytest

from delivery.gates import check_security_scan
from delivery.reports import RawReport
from delivery.reports.trivy import parse_trivy
from tests.gates.test_gates import GATES, PRODUCTION, SERVICES, copy_release, images
from tests.conftest import REPO

RELEASED = "sha256:" + "b" * 64
OTHER = "sha256:" + "a" * 64


def digests(digest: str = RELEASED) -> dict[str, str]:
    return dict.fromkeys(SERVICES, digest)


def name_digest(root, service: str, digest: str, *, in_artifact: bool) -> None:
    """Rewrite the service's v1.2.0 report as Trivy writes a scan of `digest`: by digest, or by tag with RepoDigests."""
    path = root / "reports" / "v1.2.0" / f"trivy-{service}.json"
    report = json.loads(path.read_text())
    repository = f"{PRODUCTION.registry}/{service}"
    if in_artifact:
        report["ArtifactName"] = f"{repository}@{digest}"
    report["Metadata"]["RepoDigests"] = [f"{repository}@{digest}"]
    path.write_text(json.dumps(report))


@pytest.mark.parametrize("in_artifact", [True, False], ids=["ArtifactName", "RepoDigests"])
def test_a_scan_of_the_released_digest_passes(tmp_path, in_artifact):
    root = copy_release(tmp_path)
    for service in SERVICES:
        name_digest(root, service, RELEASED, in_artifact=in_artifact)
    result = check_security_scan(GATES.security_scan, "v1.2.0", images("v1.2.0"), root, use_trivy=False, digests=digests())
    assert result.verdict == "passed", result.summary


@pytest.mark.parametrize("in_artifact", [True, False], ids=["ArtifactName", "RepoDigests"])
def test_a_scan_of_another_build_is_refused_naming_both_digests(tmp_path, in_artifact):
    root = copy_release(tmp_path)
    for service in SERVICES:
        name_digest(root, service, OTHER if service == "trip-service" else RELEASED, in_artifact=in_artifact)
    result = check_security_scan(GATES.security_scan, "v1.2.0", images("v1.2.0"), root, use_trivy=False, digests=digests())
    assert result.verdict == "error" and result.required
    assert result.summary == (f"security scan: no verdict, trip-service: trivy-trip-service.json scanned {OTHER}, "
                              f"the release is {RELEASED}: scan the image being released")
    assert [row["verdict"] for row in result.rows] == ["error" if s == "trip-service" else "passed" for s in SERVICES]


def test_reports_without_digest_fields_are_accepted():
    """The shipped samples name the image by tag and carry no RepoDigests: the format gives no digest to hold."""
    for service in SERVICES:
        assert parse_trivy(RawReport("x", (REPO / "reports" / "v1.2.0" / f"trivy-{service}.json").read_bytes())).digests == ()
    result = check_security_scan(GATES.security_scan, "v1.2.0", images("v1.2.0"), REPO, use_trivy=False, digests=digests())
    assert result.verdict == "passed", result.summary


def test_the_digests_come_from_artifact_name_and_repo_digests_only():
    report = {"SchemaVersion": 2, "ArtifactName": f"acr.io/trip-service@{RELEASED}",
              "Metadata": {"ImageID": OTHER, "RepoDigests": [f"acr.io/trip-service@{RELEASED}", f"mirror.io/trip@{OTHER}"]}}
    assert parse_trivy(RawReport("x", json.dumps(report).encode())).digests == (RELEASED, OTHER)
    report["Metadata"] = {"ImageID": OTHER, "RepoDigests": "not a list"}  # ImageID is the config's digest, not the manifest's
    assert parse_trivy(RawReport("x", json.dumps(report).encode())).digests == (RELEASED,)
