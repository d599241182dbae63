"""Reports that travel with the release (issue 17): a sandbox release reads its gates' reports from an Azure Blob
container (Azurite), and a scan of another build is refused before anything is deployed."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.storage.blob import BlobServiceClient

from delivery.sandbox.images import manifest_digest
from tests.azurite import start_azurite
from tests.release.conftest import audit_events, live, release_run, reports_root, staging_image
from tests.release.test_canary import approve_twice

SERVICE = "user-service"
OTHER_BUILD = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with start_azurite(tmp_path_factory.mktemp("azurite")) as connection:
        yield connection


def upload(azurite: str, tmp_path, monkeypatch, change=None) -> None:
    """The tests' reports (changed by `change(root)` first) in a container of their own, as the release workflow
    uploads them; TRIPGEN_REPORTS becomes the container's URL."""
    root = reports_root(tmp_path / "uploaded")
    if change:
        change(root)
    client = BlobServiceClient.from_connection_string(azurite).create_container(f"reports-{uuid.uuid4().hex[:12]}")
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.upload_blob(str(path.relative_to(root)), path.read_bytes())
    monkeypatch.setenv("TRIPGEN_REPORTS", client.url)
    monkeypatch.setenv("TRIPGEN_REPORTS_BLOB_CONNECTION_STRING", azurite)


def test_a_release_reads_its_reports_from_the_container_and_passes_its_gates(prefect_api, sandbox, cluster, azurite,
                                                                               tmp_path, monkeypatch):
    upload(azurite, tmp_path, monkeypatch)
    run = release_run("v1.2.0", services=[SERVICE], initiator="demo-dev")
    approve_twice(prefect_api, run)
    state = run.join(180)
    assert state.is_completed(), state.message
    assert live(cluster, SERVICE)[1].endswith(manifest_digest(SERVICE, "v1.2.0"))


def test_a_scan_of_another_build_is_refused_before_anything_is_deployed(prefect_api, sandbox, cluster, azurite,
                                                                         tmp_path, monkeypatch):
    def scanned_elsewhere(root):
        report = root / "reports" / "v1.3.0" / f"trivy-{SERVICE}.json"
        scan = json.loads(report.read_text())
        scan["ArtifactName"] = f"acrtrpgenprod.azurecr.io/{SERVICE}@{OTHER_BUILD}"
        report.write_text(json.dumps(scan))

    upload(azurite, tmp_path, monkeypatch, scanned_elsewhere)
    before = staging_image(cluster, SERVICE)
    state = release_run("v1.3.0", services=[SERVICE], initiator="demo-dev").join(120)
    assert state.is_failed() and "stopped by quality gates" in state.message, state.message
    assert OTHER_BUILD[:19] in state.message and manifest_digest(SERVICE, "v1.3.0")[:19] in state.message
    assert staging_image(cluster, SERVICE) == before and live(cluster, SERVICE)[0] == "blue"
    assert "traffic_switched" not in audit_events(tmp_path)
