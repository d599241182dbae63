"""The audit log's Azure Blob copy (R-AUDIT): appends and `verify --against-blob` against Azurite; the container's
retention policy, which Azurite lacks (no ARM, no immutability or legal hold), against ARM's documented answers."""

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx
from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobServiceClient, ImmutabilityPolicy
from click.testing import CliRunner

from delivery.audit import AuditLog
from delivery.audit_blob import ARM, AuditMirrorError, BlobAuditMirror, ContainerRetention, _reason, mirror_from_settings
from delivery.cli import cli
from delivery.localdb import free_port
from delivery.policy.models import Policy
from delivery.settings import Settings
from tests.azurite import KEY, connection_string, start_azurite

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)

ACCOUNT_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/tripgen/providers/Microsoft.Storage/storageAccounts/tripgenaudit"
POLICY_URL = f"{ARM}{ACCOUNT_ID}/blobServices/default/containers/tripgen-audit/immutabilityPolicies/default"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    """Azurite's blob service on a free port; the connection string to it."""
    with start_azurite(tmp_path_factory.mktemp("azurite")) as connection:
        yield connection


@pytest.fixture
def settings(azurite, request, monkeypatch):
    """TRIPGEN_AUDIT_BLOB_* for a container of this test's own."""
    monkeypatch.setenv("TRIPGEN_AUDIT_BLOB_CONNECTION_STRING", azurite)
    monkeypatch.setenv("TRIPGEN_AUDIT_BLOB_CONTAINER", request.node.name.replace("_", "-")[:63].rstrip("-"))
    return Settings()


def blob_lines(mirror: BlobAuditMirror, name: str) -> list[dict]:
    content = mirror.service.get_blob_client(mirror.container, name).download_blob().readall()
    return [json.loads(line) for line in content.splitlines()]


def test_every_record_is_appended_to_the_blob_with_its_chain_head(settings, tmp_path):
    mirror = mirror_from_settings(settings)
    log = AuditLog(tmp_path / "audit.jsonl", mirror=mirror)
    first = log.append("deployment_initiated", "release-manager", "v1.4.0", hotfix=False)
    assert blob_lines(mirror, "audit.jsonl") == [first]
    second = log.append("approval_granted", "demo-lead", "v1.4.0", comment="ok")
    assert mirror.service.get_blob_client(mirror.container, "audit.jsonl").download_blob().readall() == log.path.read_bytes()
    assert blob_lines(mirror, "head.jsonl") == [{"seq": 1, "sha256": first["sha256"]}, {"seq": 2, "sha256": second["sha256"]}]


def test_a_failed_sync_keeps_the_local_record_and_the_next_append_catches_up(settings, tmp_path):
    mirror = mirror_from_settings(settings)
    log = AuditLog(tmp_path / "audit.jsonl", mirror=mirror)
    log.append("deployment_initiated", "release-manager", "v1.4.0")
    log.mirror = BlobAuditMirror(BlobServiceClient.from_connection_string(connection_string(free_port()), retry_total=0),
                                 mirror.container)  # nothing listens there
    with pytest.raises(AuditMirrorError, match=f"devstoreaccount1/{mirror.container}/audit.jsonl") as failed:
        log.append("approval_granted", "demo-lead", "v1.4.0")
    assert KEY not in str(failed.value)
    assert [r["seq"] for r in log.records()] == [1, 2]
    log.mirror = mirror
    log.append("traffic_switched", "release-manager", "v1.4.0")
    assert [r["seq"] for r in blob_lines(mirror, "audit.jsonl")] == [1, 2, 3]


def test_a_shared_access_signature_never_reaches_an_error():
    assert _reason(AzureError("Max retries exceeded with url: /audit.jsonl?comp=appendblock&sig=s3cr%2Bt&sv=2024\nmore")) \
        == "Max retries exceeded with url: /audit.jsonl?comp=appendblock&sig=***&sv=2024"


def test_verify_against_blob_names_a_changed_line_and_missing_records(settings, tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", mirror=mirror_from_settings(settings))
    for event in ("deployment_initiated", "approval_granted", "traffic_switched"):
        log.append(event, "release-manager", "v1.4.0", reason="monthly")
    original = log.path.read_bytes()
    run = CliRunner().invoke(cli, ["audit", "verify", str(log.path), "--against-blob"])
    assert run.exit_code == 0, run.output
    assert "identical to blob devstoreaccount1/" in run.output and "3 records, chain head seq 3" in run.output

    log.path.write_bytes(original.replace(b'"approval_granted"', b'"approval_grantee"'))
    run = CliRunner().invoke(cli, ["audit", "verify", str(log.path), "--against-blob"])
    assert run.exit_code == 1
    assert f"{log.path}:2: differs from the blob's copy (seq 2): the local line was changed" in run.output

    log.path.write_bytes(original.split(b"\n", 2)[0] + b"\n" + original.split(b"\n", 2)[1] + b"\n")  # a valid chain, cut
    run = CliRunner().invoke(cli, ["audit", "verify", str(log.path), "--against-blob"])
    assert run.exit_code == 1
    assert "hash chain intact" in run.output and f"{log.path}:3: missing: the blob holds 1 more record(s) from seq 3" in run.output


def test_verify_against_blob_without_a_connection_string_fails(tmp_path, monkeypatch):
    monkeypatch.delenv("TRIPGEN_AUDIT_BLOB_CONNECTION_STRING", raising=False)
    AuditLog(tmp_path / "audit.jsonl").append("deployment_initiated", "release-manager", "v1.4.0")
    run = CliRunner().invoke(cli, ["audit", "verify", str(tmp_path / "audit.jsonl"), "--against-blob"])
    assert run.exit_code == 1 and "needs TRIPGEN_AUDIT_BLOB_CONNECTION_STRING" in run.output


class Token:
    """A credential whose token the test can look for."""

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        assert scopes == (f"{ARM}/.default",)
        return AccessToken("arm-token", 4102444800)


def policy_body(days: int, state: str) -> dict:
    """ARM's documented ImmutabilityPolicy resource (Blob Containers - Create Or Update Immutability Policy)."""
    return {"id": POLICY_URL.removeprefix(ARM), "name": "default", "etag": '"8d59f830cb130e5"',
            "type": "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies",
            "properties": {"immutabilityPeriodSinceCreationInDays": days, "state": state, "allowProtectedAppendWrites": True}}


def retention() -> ContainerRetention:
    return ContainerRetention(ACCOUNT_ID, Policy().compliance.audit_retention.days, Token())


@respx.mock(assert_all_called=True)
def test_retention_policy_is_put_through_arm_with_protected_appends(respx_mock):
    respx_mock.get(POLICY_URL).respond(404, json={"error": {"code": "ContainerNotFound", "message": "none"}})
    put = respx_mock.put(POLICY_URL, params={"api-version": "2023-05-01"}).respond(200, json=policy_body(2557, "Unlocked"))
    retention().apply("tripgen-audit")
    sent = put.calls.last.request
    assert sent.headers["authorization"] == "Bearer arm-token"
    assert json.loads(sent.content) == {"properties": {"immutabilityPeriodSinceCreationInDays": 2557, "allowProtectedAppendWrites": True}}
    assert Policy().compliance.audit_retention == timedelta(days=2557)


@respx.mock(assert_all_called=True)
def test_a_locked_policy_long_enough_is_kept(respx_mock):
    respx_mock.get(POLICY_URL).respond(200, json=policy_body(3000, "Locked"))
    retention().apply("tripgen-audit")


@respx.mock
def test_a_refused_or_different_policy_fails_naming_the_container_without_the_token(respx_mock):
    respx_mock.get(POLICY_URL).respond(200, json=policy_body(30, "Locked"))
    respx_mock.put(POLICY_URL).respond(409, json={"error": {"code": "ContainerImmutabilityPolicyFailure",
                                                            "message": "Operation not allowed on immutability policy with current state."}})
    with pytest.raises(AuditMirrorError, match="container 'tripgen-audit': HTTP 409 ContainerImmutabilityPolicyFailure") as refused:
        retention().apply("tripgen-audit")
    assert "arm-token" not in str(refused.value)
    respx_mock.put(POLICY_URL).respond(200, json=policy_body(30, "Unlocked"))
    with pytest.raises(AuditMirrorError, match="other than 2557 days"):
        retention().apply("tripgen-audit")


def test_azurite_has_no_blob_immutability_policy(settings, tmp_path):
    """Why the retention tests use respx: Azurite answers the data plane's immutability call 501 Not Implemented."""
    mirror = mirror_from_settings(settings)
    AuditLog(tmp_path / "audit.jsonl", mirror=mirror).append("deployment_initiated", "release-manager", "v1.4.0")
    with pytest.raises(HttpResponseError) as refused:
        mirror.service.get_blob_client(mirror.container, "audit.jsonl").set_immutability_policy(
            ImmutabilityPolicy(expiry_time=datetime(2033, 1, 1, tzinfo=timezone.utc), policy_mode="Unlocked"))
    assert refused.value.status_code == 501


@respx.mock(assert_all_called=True)
def test_a_mirror_with_retention_sets_it_once_then_appends(settings, tmp_path, respx_mock):
    respx_mock.get(POLICY_URL.replace("tripgen-audit", settings.audit_blob_container)).respond(404)
    put = respx_mock.put(POLICY_URL.replace("tripgen-audit", settings.audit_blob_container)).respond(
        200, json=policy_body(2557, "Unlocked"))
    mirror = mirror_from_settings(settings)
    mirror.retention = retention()
    log = AuditLog(tmp_path / "audit.jsonl", mirror=mirror)
    log.append("deployment_initiated", "release-manager", "v1.4.0")
    log.append("approval_granted", "demo-lead", "v1.4.0")
    assert put.call_count == 1
    assert [r["seq"] for r in blob_lines(mirror, "audit.jsonl")] == [1, 2]
