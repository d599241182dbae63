"""TRIPGEN_REPORTS as an Azure Blob container (Azurite): the gates read the same sample reports as from the
directory, a missing report is the same clear message, and no credential reaches a message."""

from datetime import datetime, timedelta, timezone

import pytest
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
from pydantic import SecretStr

from delivery.gates import check_security_scan
from delivery.migrations.gate import bundle_of, check_database_migrations
from delivery.reports.source import BlobSource, DirectorySource, report_source
from delivery.settings import Settings
from tests.azurite import KEY, start_azurite
from tests.conftest import REPO
from tests.gates.test_gates import GATES, PRODUCTION, images, required_gates

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)

MIGRATIONS = PRODUCTION.quality_gates.database_migrations
MISSING = "the CI job must publish it there, or the report path in the policy is wrong"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with start_azurite(tmp_path_factory.mktemp("azurite")) as connection:
        yield connection


@pytest.fixture(scope="module")
def container(azurite):
    """A container holding the repository's reports/ and migrations/ as the release workflow uploads them."""
    client = BlobServiceClient.from_connection_string(azurite).create_container("reports")
    for folder in ("reports", "migrations"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file():
                client.upload_blob(str(path.relative_to(REPO)), path.read_bytes())
    return client


@pytest.fixture(scope="module")
def source(azurite, container):
    return report_source(container.url, SecretStr(azurite))


TAGS = ["v1.2.0", "v1.3.0-faulty", "v1.1.0-lowcov", "v1.1.0-failing-it", "v1.1.0-critical", "v1.1.0-slow"]


@pytest.mark.parametrize("tag", TAGS)
def test_the_gates_judge_a_container_as_they_judge_the_directory(source, tag):
    from_blob = required_gates(PRODUCTION, tag, source)
    from_directory = required_gates(PRODUCTION, tag, REPO)
    assert [(r.verdict, r.measured, r.summary) for r in from_blob] == [(r.verdict, r.measured, r.summary) for r in from_directory]


def test_the_passing_release_passes_from_the_container_and_names_the_blob(source, container):
    results = required_gates(PRODUCTION, "v1.2.0", source)
    assert [r.verdict for r in results] == ["passed"] * 4, [r.summary for r in results]
    assert results[0].rows[0]["report"] == f"{container.url}/reports/v1.2.0/coverage.xml"


def test_a_report_missing_from_the_container_is_the_clear_message_naming_the_blob(source, container):
    result = required_gates(PRODUCTION, "v9.9.9", source)[0]
    assert result.verdict == "error"
    assert result.summary == f"unit tests: no verdict, no report at {container.url}/reports/v9.9.9/coverage.xml: {MISSING}"


def test_the_directory_case_is_unchanged():
    result = required_gates(PRODUCTION, "v9.9.9", REPO)[0]
    assert result.summary == f"unit tests: no verdict, no report at {REPO}/reports/v9.9.9/coverage.xml: {MISSING}"
    assert isinstance(report_source(REPO), DirectorySource)


def test_a_missing_container_says_so(azurite, container):
    absent = report_source(container.url.replace("/reports", "/no-such-container"), SecretStr(azurite))
    result = required_gates(PRODUCTION, "v1.2.0", absent)[0]
    assert result.verdict == "error" and "does not exist: create it and upload the reports" in result.summary


def test_a_wrong_key_is_refused_without_showing_any_key(container):
    wrong = SecretStr(f"AccountName=devstoreaccount1;AccountKey={KEY[:-4]}AAA=;")
    result = required_gates(PRODUCTION, "v1.2.0", report_source(container.url, wrong))[0]
    assert result.verdict == "error" and "HTTP 403" in result.summary, result.summary
    assert KEY[:20] not in result.summary


def test_a_sas_token_reads_the_container_and_never_shows_its_signature(container):
    sas = generate_container_sas("devstoreaccount1", "reports", account_key=KEY,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    for via_setting in (True, False):
        source = report_source(container.url, SecretStr(sas)) if via_setting else report_source(f"{container.url}?{sas}")
        results = required_gates(PRODUCTION, "v9.9.9", source)
        assert "sig=" not in results[0].summary and results[0].summary.startswith(f"unit tests: no verdict, no report at {container.url}/")
        assert [r.verdict for r in required_gates(PRODUCTION, "v1.2.0", source)] == ["passed"] * 4


def test_migrations_are_read_from_the_container_like_the_directory(source):
    from_blob, from_directory = bundle_of(MIGRATIONS, source, "v1.2.0"), bundle_of(MIGRATIONS, REPO, "v1.2.0")
    assert [(f.version, f.sql) for f in from_blob.files()] == [(f.version, f.sql) for f in from_directory.files()]
    assert from_blob.needs == from_directory.needs and from_blob.files()
    assert bundle_of(MIGRATIONS, source, "v9.9.9").empty


def test_a_tag_without_migrations_in_the_container_passes_naming_the_blob_folder(source, container):
    result = check_database_migrations(MIGRATIONS, "v9.9.9", source, lambda: None)
    assert result.verdict == "passed" and result.summary.endswith(f"ships none ({container.url}/migrations/v9.9.9)")


def test_the_source_lists_and_finds_blobs_like_files(source):
    directory = DirectorySource(REPO)
    assert source.list("reports/v1.2.0") == directory.list("reports/v1.2.0") != []
    assert source.exists("reports/v1.2.0/coverage.xml") and not source.exists("reports/v1.2.0/nothing.xml")
    assert source.local_path("reports/v1.2.0/coverage.xml").read_bytes() == (REPO / "reports/v1.2.0/coverage.xml").read_bytes()


def test_tripgen_reports_may_be_a_container_url(monkeypatch, container, azurite):
    monkeypatch.setenv("TRIPGEN_REPORTS", container.url)
    monkeypatch.setenv("TRIPGEN_REPORTS_BLOB_CONNECTION_STRING", azurite)
    settings = Settings()
    assert settings.reports == container.url and KEY not in repr(settings)
    source = report_source(settings.reports, settings.reports_blob_connection_string)
    assert isinstance(source, BlobSource)
    assert [r.verdict for r in required_gates(PRODUCTION, "v1.2.0", source)] == ["passed"] * 4


def test_a_secret_that_is_no_credential_is_refused_without_echoing_it(container):
    with pytest.raises(ValueError, match="neither a connection string") as refused:
        report_source(container.url, SecretStr("hunter2-not-a-credential"))
    assert "hunter2" not in str(refused.value)


def test_the_security_gate_reads_each_service_from_the_container(source):
    result = check_security_scan(GATES.security_scan, "v1.1.0-critical", images("v1.1.0-critical"), source, use_trivy=False)
    assert result.verdict == "failed" and "trip-service has 1 CRITICAL (CVE-2024-38821" in result.summary
