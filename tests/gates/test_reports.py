"""The report readers on the shipped sample reports and on hand-made broken ones."""

import base64
import json
import re
import sys
import traceback
from pathlib import Path

import httpx
import pytest
import respx

from delivery.reports import RawReport, ReportError, read_report
from delivery.reports.coverage import parse_coverage
from delivery.reports.junit import parse_junit
from delivery.reports.k6 import parse_k6_summary
from delivery.reports.sonarqube import SonarQube
from delivery.reports.trivy import parse_trivy, run_trivy
from tests.conftest import REPO

SAMPLES = REPO / "reports"
TOKEN = "squ_0123456789abcdef-not-for-logs"


def sample(relative: str) -> RawReport:
    path = SAMPLES / relative
    return RawReport(str(path), path.read_bytes())


def raw(text: str, location: str = "inline-report") -> RawReport:
    return RawReport(location, text.encode())


# --- coverage ---------------------------------------------------------------------------


def test_jacoco_line_coverage_comes_from_the_report_level_counter():
    coverage = parse_coverage(sample("v1.2.0/coverage.xml"))
    assert coverage.format == "jacoco"
    assert coverage.line_percent == pytest.approx(85.0)
    assert coverage.branch_percent == pytest.approx(349 / 414 * 100)


def test_jacoco_package_counters_do_not_count_as_the_total():
    report = raw(
        '<?xml version="1.0"?><!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd">'
        '<report name="x"><package name="a"><counter type="LINE" missed="0" covered="10"/></package>'
        '<counter type="LINE" missed="30" covered="70"/></report>'
    )
    coverage = parse_coverage(report)
    assert coverage.line_percent == pytest.approx(70.0)
    assert coverage.branch_percent is None


def test_cobertura_is_detected_by_its_root_element():
    coverage = parse_coverage(sample("v1.3.0-faulty/coverage.xml"))
    assert coverage.format == "cobertura"
    assert coverage.line_percent == pytest.approx(86.0)
    assert coverage.branch_percent == pytest.approx(74.0)


def test_cobertura_without_branch_measurement_has_no_branch_percent():
    coverage = parse_coverage(raw('<coverage line-rate="0.5" branch-rate="0" branches-valid="0" branches-covered="0"/>'))
    assert (coverage.line_percent, coverage.branch_percent) == (50.0, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<report><counter", "not well-formed XML"),
        ("<html><body/></html>", "neither JaCoCo XML (root <report>) nor Cobertura XML"),
        ('<report><counter type="BRANCH" missed="1" covered="1"/></report>', "no report-level LINE counter"),
        ('<coverage line-rate="1.7"/>', "'line-rate' must be between 0 and 1"),
        ('<coverage branch-rate="0.5"/>', "'line-rate' should be a number, got None"),
        (
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><report>&b;</report>',
            "declares XML entities",
        ),
    ],
)
def test_broken_coverage_reports_are_errors_naming_the_file(text, expected):
    with pytest.raises(ReportError) as caught:
        parse_coverage(raw(text, "build/coverage.xml"))
    assert "build/coverage.xml" in str(caught.value)
    assert expected in str(caught.value)


# --- JUnit ------------------------------------------------------------------------------


def test_junit_counts_failures_and_errors_and_names_the_failed_tests():
    results = parse_junit(sample("v1.1.0-failing-it/integration-tests.xml"))
    assert (results.tests, results.failures, results.errors, results.skipped) == (13, 1, 1, 0)
    assert (results.executed, results.passed) == (13, 11)
    assert [(t.name, t.outcome, t.message) for t in results.failed] == [
        ("com.tripgen.trip.TripApiIT.updatesItinerary", "failure", "expected: <200> but was: <409>"),
        ("com.tripgen.location.LocationApiIT.cachesLookupsInRedis", "error", "Unable to connect to Redis"),
    ]


def test_junit_single_testsuite_with_skipped_and_a_message_only_in_the_text():
    results = parse_junit(
        raw(
            '<testsuite name="s" tests="3"><testcase classname="A" name="ok"/>'
            '<testcase classname="A" name="later"><skipped/></testcase>'
            '<testcase classname="A" name="bad"><failure type="AssertionError">\n  boom at line 3\n  more</failure></testcase>'
            "</testsuite>"
        )
    )
    assert (results.tests, results.failures, results.skipped, results.executed, results.passed) == (3, 1, 1, 2, 1)
    assert results.failed[0].message == "boom at line 3"


def test_a_file_that_is_not_junit_is_an_error():
    with pytest.raises(ReportError, match=r"it\.xml is not JUnit XML: its root element is <report>"):
        parse_junit(raw("<report/>", "it.xml"))


# --- Trivy ------------------------------------------------------------------------------


def test_trivy_counts_every_severity_and_lists_critical_and_high():
    scan = parse_trivy(sample("v1.1.0-critical/trivy-trip-service.json"))
    assert scan.artifact == "acrtrpgenprod.azurecr.io/trip-service:v1.1.0-critical"
    assert dict(scan.counts) == {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 1, "LOW": 2, "UNKNOWN": 0}
    assert [(f.id, f.severity, f.fixed_version) for f in scan.findings] == [
        ("CVE-2023-44487", "HIGH", "4.1.100.Final"),
        ("CVE-2024-38821", "CRITICAL", "5.7.13, 5.8.15, 6.0.13, 6.1.11, 6.2.7, 6.3.4"),
    ]


@pytest.mark.parametrize(
    "document",
    [
        {"SchemaVersion": 2, "ArtifactName": "img"},
        {"SchemaVersion": 2, "ArtifactName": "img", "Results": None},
        {"SchemaVersion": 2, "ArtifactName": "img", "Results": [{"Target": "jar"}, {"Target": "os", "Vulnerabilities": None}]},
    ],
)
def test_trivy_results_or_vulnerabilities_may_be_null_or_absent(document):
    scan = parse_trivy(raw(json.dumps(document)))
    assert sum(scan.counts.values()) == 0 and scan.findings == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"Results": [', "is not valid JSON"),
        ('{"Results": []}', "not a Trivy JSON report (no SchemaVersion)"),
        ('{"SchemaVersion": 1, "Results": []}', "SchemaVersion 1"),
        ('{"SchemaVersion": 2, "Results": {"Target": "x"}}', "'Results' should be a list of objects"),
    ],
)
def test_broken_trivy_reports_are_errors_naming_the_file(text, expected):
    with pytest.raises(ReportError) as caught:
        parse_trivy(raw(text, "trivy-ai-service.json"))
    assert "trivy-ai-service.json" in str(caught.value) and expected in str(caught.value)


def fake_trivy(tmp_path: Path, body: str) -> str:
    """A `trivy` executable (a Python script) that records its arguments in args.json, then runs `body`."""
    script = tmp_path / "trivy"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys, time\n"
        f"open({str(tmp_path / 'args.json')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n{body}\n"
    )
    script.chmod(0o755)
    return str(script)


def recorded_calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "args.json").read_text().splitlines()]


TRIVY_OUTPUT = json.dumps(
    {
        "SchemaVersion": 2,
        "ArtifactName": "registry.local/ai-service@sha256:abc",
        "Results": [{"Target": "app.jar", "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "Severity": "HIGH"}]}],
    }
)


def test_run_trivy_passes_an_argument_list_and_reads_stdout(tmp_path):
    trivy = fake_trivy(tmp_path, f"print({TRIVY_OUTPUT!r})")
    scan = run_trivy(trivy, "registry.local/ai-service@sha256:abc", timeout_seconds=20)
    assert recorded_calls(tmp_path) == [
        ["image", "--format", "json", "--quiet", "--severity", "HIGH,CRITICAL", "registry.local/ai-service@sha256:abc"]
    ]
    assert scan.counts["HIGH"] == 1 and scan.findings[0].id == "CVE-1"


def test_a_failing_trivy_run_is_an_error_with_its_last_stderr_line(tmp_path):
    trivy = fake_trivy(tmp_path, "print('INFO starting', file=sys.stderr); print('FATAL image not found', file=sys.stderr); sys.exit(1)")
    with pytest.raises(ReportError, match="trivy exited with 1 scanning img:1: FATAL image not found"):
        run_trivy(trivy, "img:1", timeout_seconds=20)


def test_a_trivy_run_that_hangs_is_stopped_by_the_timeout(tmp_path):
    trivy = fake_trivy(tmp_path, "time.sleep(30)")
    with pytest.raises(ReportError, match=r"did not finish scanning img:1 within 0\.5s"):
        run_trivy(trivy, "img:1", timeout_seconds=0.5)


def test_an_image_that_looks_like_an_option_is_refused(tmp_path):
    trivy = fake_trivy(tmp_path, "")
    with pytest.raises(ReportError, match="not an image reference"):
        run_trivy(trivy, "--config=/etc/passwd", timeout_seconds=20)
    assert not (tmp_path / "args.json").exists()


# --- k6 ---------------------------------------------------------------------------------


def test_k6_summary_export_keeps_statistics_at_the_metric_top_level():
    summary = parse_k6_summary(sample("baseline/k6-summary.json"))
    assert (summary.p95_duration_ms, summary.error_rate, summary.requests_per_second) == (220.0, 0.002, 150.0)


def test_k6_handle_summary_data_keeps_them_under_values():
    summary = parse_k6_summary(sample("v1.3.0-faulty/k6-summary.json"))
    assert (summary.p95_duration_ms, summary.error_rate, summary.requests_per_second) == (224.1, 0.0019, 151.3)
    assert summary.error_rate_percent == pytest.approx(0.19)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"root_group": {}}, "is not a k6 summary (no 'metrics' object)"),
        ({"metrics": {"http_req_duration": {"p(95)": 1}, "http_req_failed": {"value": 0}}}, "has no 'http_reqs' metric"),
        (
            {"metrics": {"http_req_duration": {"values": {"avg": 1}}, "http_req_failed": {}, "http_reqs": {}}},
            "the 'http_req_duration' metric has no 'p(95)': keep p(95) in the test's summaryTrendStats",
        ),
        (
            {"metrics": {"http_req_duration": {"p(95)": "fast"}, "http_req_failed": {"value": 0}, "http_reqs": {"rate": 1}}},
            "http_req_duration p(95) should be a number, got 'fast'",
        ),
    ],
)
def test_incomplete_k6_summaries_are_errors_naming_the_file(document, expected):
    with pytest.raises(ReportError) as caught:
        parse_k6_summary(raw(json.dumps(document), "k6-summary.json"))
    assert str(caught.value).startswith("k6-summary.json") and expected in str(caught.value)


# --- reading by path or URL -------------------------------------------------------------


def test_a_path_template_resolves_against_the_reports_root():
    report = read_report("reports/{tag}/trivy-{service}.json", REPO, tag="v1.2.0", service="ai-service")
    assert report.location == str(SAMPLES / "v1.2.0" / "trivy-ai-service.json")


@respx.mock
def test_a_url_template_is_fetched_with_httpx():
    route = respx.get("https://ci.tripgen.test/reports/v1.2.0/coverage.xml").respond(200, content=b"<coverage/>")
    report = read_report("https://ci.tripgen.test/reports/{tag}/coverage.xml", "/unused", tag="v1.2.0")
    assert route.called and report.content == b"<coverage/>"


@respx.mock
@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(404), "answered HTTP 404: the CI job must publish it there"),
        (httpx.ConnectError("refused"), "is unreachable (ConnectError)"),
        (httpx.ReadTimeout("slow"), "did not arrive in time"),
    ],
)
def test_a_report_url_that_fails_is_an_error_naming_the_url(response, expected):
    respx.get("https://ci.tripgen.test/v1.2.0/k6.json").mock(side_effect=[response])
    with pytest.raises(ReportError) as caught:
        read_report("https://ci.tripgen.test/{tag}/k6.json", "/unused", tag="v1.2.0")
    assert "https://ci.tripgen.test/v1.2.0/k6.json" in str(caught.value) and expected in str(caught.value)


@pytest.mark.parametrize(
    ("template", "tag", "expected"),
    [
        ("reports/{tag}/coverage.xml", "../../etc", "tag '../../etc' cannot be part of a report path"),
        ("reports/{build}/coverage.xml", "v1.2.0", "report template 'reports/{build}/coverage.xml' cannot be filled"),
        ("reports/{tag}/nothing.xml", "v1.2.0", "no report at"),
    ],
)
def test_report_paths_that_cannot_be_read_are_errors(template, tag, expected):
    with pytest.raises(ReportError, match=re.escape(expected)):
        read_report(template, REPO, tag=tag)


# --- SonarQube --------------------------------------------------------------------------

SONAR = "https://sonar.tripgen.test"


def sonar(token: str | None = TOKEN) -> SonarQube:
    return SonarQube(SONAR, httpx.Client(timeout=1), token=token)


@respx.mock
def test_the_quality_gate_status_is_read_with_the_token_as_basic_login():
    route = respx.get(f"{SONAR}/api/qualitygates/project_status", params={"projectKey": "tripgen"}).respond(
        200, json={"projectStatus": {"status": "OK", "conditions": [], "ignoredConditions": False}}
    )
    assert sonar().quality_gate("tripgen").status == "OK"
    expected = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
    assert route.calls.last.request.headers["Authorization"] == expected


@respx.mock
def test_an_error_status_carries_its_conditions():
    respx.get(f"{SONAR}/api/qualitygates/project_status").respond(
        200,
        json={
            "projectStatus": {
                "status": "ERROR",
                "conditions": [
                    {"status": "ERROR", "metricKey": "new_coverage", "comparator": "LT", "errorThreshold": "80", "actualValue": "71.2"},
                    {"status": "OK", "metricKey": "new_bugs", "comparator": "GT", "errorThreshold": "0", "actualValue": "0"},
                ],
            }
        },
    )
    status = sonar().quality_gate("tripgen")
    assert status.status == "ERROR"
    assert [(c.metric, c.status, c.actual) for c in status.conditions] == [("new_coverage", "ERROR", "71.2"), ("new_bugs", "OK", "0")]


@respx.mock
@pytest.mark.parametrize(("rating", "grade"), [("1.0", "A"), ("2.0", "B"), ("5.0", "E")])
def test_the_maintainability_rating_maps_to_a_grade(rating, grade):
    respx.get(f"{SONAR}/api/measures/component", params={"component": "tripgen", "metricKeys": "sqale_rating"}).respond(
        200, json={"component": {"key": "tripgen", "measures": [{"metric": "sqale_rating", "value": rating}]}}
    )
    assert sonar().maintainability_grade("tripgen") == grade


@respx.mock
@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(401), "refused /api/qualitygates/project_status (HTTP 401): set SONAR_TOKEN"),
        (httpx.Response(500), "answered /api/qualitygates/project_status with HTTP 500"),
        (httpx.Response(404, json={"errors": [{"msg": "Project 'tripgen' not found"}]}), "HTTP 404: Project 'tripgen' not found"),
        (httpx.ConnectTimeout("timed out"), "did not answer /api/qualitygates/project_status in time"),
        (httpx.ConnectError("refused"), "is unreachable (ConnectError)"),
        (httpx.Response(200, text="<html>login</html>"), "with a body that is not JSON"),
    ],
)
def test_sonarqube_failures_are_errors_that_never_show_the_token(response, expected):
    respx.get(f"{SONAR}/api/qualitygates/project_status").mock(side_effect=[response])
    with pytest.raises(ReportError) as caught:
        sonar().quality_gate("tripgen")
    assert expected in str(caught.value)
    logged = "".join(traceback.format_exception(caught.value))
    assert TOKEN not in logged and TOKEN not in repr(caught.value)
    assert caught.value.__cause__ is None

