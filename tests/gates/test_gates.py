"""Each quality gate on the shipped sample reports, with the shipped policies' thresholds."""

import json
import shutil
import sys

import httpx
import pytest
import respx

from delivery.gates import (
    GateResult,
    blocking,
    check_code_quality,
    check_integration_tests,
    check_performance,
    check_security_scan,
    check_unit_tests,
)
from delivery.policy.loader import load_policy
from tests.conftest import REPO

PRODUCTION = load_policy(REPO / "policies" / "tripgen.yaml")
DEMO = load_policy(REPO / "policies" / "demo.yaml")
GATES = PRODUCTION.quality_gates
SERVICES = [service.name for service in PRODUCTION.services]


def images(tag: str) -> dict[str, str]:
    return {name: f"{PRODUCTION.registry}/{name}:{tag}" for name in SERVICES}


def required_gates(policy, tag: str, root=REPO) -> list[GateResult]:
    gates = policy.quality_gates
    return [
        check_unit_tests(gates.unit_tests, tag, root),
        check_integration_tests(gates.integration_tests, tag, root),
        check_security_scan(gates.security_scan, tag, images(tag), root, use_trivy=False),
        check_performance(gates.performance, tag, root),
    ]


def copy_release(tmp_path, tag: str = "v1.2.0"):
    """A reports root holding a copy of one sample release and the baseline, to break files in."""
    for folder in (tag, "baseline"):
        shutil.copytree(REPO / "reports" / folder, tmp_path / "reports" / folder)
    return tmp_path


# --- the demo's releases ---------------------------------------------------------------


@pytest.mark.parametrize("policy", [PRODUCTION, DEMO], ids=["production", "demo"])
@pytest.mark.parametrize("tag", ["v1.2.0", "v1.3.0-faulty"])
def test_the_demo_releases_pass_every_required_gate(policy, tag):
    results = required_gates(policy, tag)
    assert [r.verdict for r in results] == ["passed"] * 4, [r.summary for r in results]
    assert blocking(results) == []


def test_a_passing_summary_names_the_number_and_the_threshold():
    unit, integration, security, performance = required_gates(PRODUCTION, "v1.2.0")
    assert unit.summary == "unit tests: line coverage 85% meets the required 80%"
    assert integration.summary == "integration tests: 13 of 13 passed (100%), 100% required"
    assert security.summary.startswith("security scan: 0 CRITICAL, 2 HIGH in 4 of 4 images; allowed: at most 0 CRITICAL")
    assert "p95 duration 228.4 ms (+3.8%)" in performance.summary and "within ±10% of the baseline" in performance.summary


# --- each required gate failing --------------------------------------------------------


def test_low_coverage_stops_the_release():
    results = required_gates(PRODUCTION, "v1.1.0-lowcov")
    unit = results[0]
    assert (unit.verdict, unit.on_failure, unit.measured) == ("failed", "stop", "line coverage 72%")
    assert unit.summary == "unit tests: line coverage 72% is below the required 80%"
    assert blocking(results) == [unit]


def test_failed_integration_tests_stop_the_release_and_are_named():
    results = required_gates(PRODUCTION, "v1.1.0-failing-it")
    integration = results[1]
    assert integration.verdict == "failed" and integration.on_failure == "stop"
    assert integration.summary == "integration tests: 2 of 13 failed (84.62% passed), 100% required"
    assert [(row["test"], row["outcome"]) for row in integration.rows] == [
        ("com.tripgen.trip.TripApiIT.updatesItinerary", "failure"),
        ("com.tripgen.location.LocationApiIT.cachesLookupsInRedis", "error"),
    ]
    assert blocking(results) == [integration]


def test_a_critical_vulnerability_sends_the_release_to_security_review():
    results = required_gates(PRODUCTION, "v1.1.0-critical")
    security = results[2]
    assert security.verdict == "failed" and security.on_failure == "security-review"
    assert security.summary == "security scan: trip-service has 1 CRITICAL (CVE-2024-38821), more than the allowed 0"
    trip = next(row for row in security.rows if row["service"] == "trip-service")
    assert (trip["CRITICAL"], trip["verdict"]) == (1, "failed")
    assert str(trip["findings"]).startswith("CVE-2024-38821 org.springframework.security:spring-security-web 6.3.3 -> ")
    assert blocking(results) == [security]


def test_a_slow_release_goes_to_performance_review():
    results = required_gates(PRODUCTION, "v1.1.0-slow")
    performance = results[3]
    assert performance.verdict == "failed" and performance.on_failure == "performance-review"
    assert performance.summary == (
        "performance: p95 duration 286 ms (+30.0% against the baseline 220 ms) is beyond the allowed ±10%"
    )
    assert [row["verdict"] for row in performance.rows] == ["regression", "within", "within"]
    assert blocking(results) == [performance]


# --- thresholds come from the policy ----------------------------------------------------


def test_the_coverage_threshold_is_the_policys():
    stricter = GATES.unit_tests.model_copy(update={"min_coverage_percent": 90})
    result = check_unit_tests(stricter, "v1.2.0", REPO)
    assert result.verdict == "failed" and result.summary.endswith("is below the required 90%")


def test_high_findings_gate_only_when_the_policy_sets_max_high():
    strict = GATES.security_scan.model_copy(update={"max_high": 0})
    result = check_security_scan(strict, "v1.2.0", images("v1.2.0"), REPO, use_trivy=False)
    assert result.verdict == "failed"
    assert "user-service has 1 HIGH (CVE-2024-22262), more than the allowed 0" in result.summary
    assert "trip-service has 1 HIGH (CVE-2023-44487)" in result.summary


def test_a_wider_performance_band_lets_the_slow_release_pass():
    wide = GATES.performance.model_copy(update={"max_deviation_percent": 35})
    assert check_performance(wide, "v1.1.0-slow", REPO).verdict == "passed"


def test_a_recommended_gate_that_fails_only_warns():
    recommended = GATES.unit_tests.model_copy(update={"required": False, "on_failure": "warn"})
    result = check_unit_tests(recommended, "v1.1.0-lowcov", REPO)
    assert result.verdict == "warning" and blocking([result]) == []


# --- the performance band ---------------------------------------------------------------


def write_k6(root, tag: str, p95: float, error_rate: float, rate: float) -> None:
    path = root / "reports" / tag / "k6-summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = {"http_req_duration": {"p(95)": p95}, "http_req_failed": {"value": error_rate}, "http_reqs": {"rate": rate}}
    path.write_text(json.dumps({"metrics": metrics}))


def test_exactly_at_the_band_edge_still_passes(tmp_path):
    root = copy_release(tmp_path)
    write_k6(root, "v2.0.0", p95=242.0, error_rate=0.0022, rate=135.0)  # +10%, +10%, -10%
    assert check_performance(GATES.performance, "v2.0.0", root).verdict == "passed"


def test_fewer_requests_per_second_beyond_the_band_is_a_regression(tmp_path):
    root = copy_release(tmp_path)
    write_k6(root, "v2.0.0", p95=220.0, error_rate=0.002, rate=120.0)
    result = check_performance(GATES.performance, "v2.0.0", root)
    assert result.verdict == "failed"
    assert "throughput 120 req/s (-20.0% against the baseline 150 req/s)" in result.summary


def test_an_improvement_beyond_the_band_passes_with_a_note_to_update_the_baseline(tmp_path):
    root = copy_release(tmp_path)
    write_k6(root, "v2.0.0", p95=150.0, error_rate=0.002, rate=150.0)
    result = check_performance(GATES.performance, "v2.0.0", root)
    assert result.verdict == "passed"
    assert "p95 duration (-31.8%) improved beyond the band: consider updating the baseline" in result.summary
    assert result.rows[0]["verdict"] == "improved beyond the band"


def test_errors_above_a_zero_baseline_are_a_regression(tmp_path):
    root = copy_release(tmp_path)
    write_k6(root, "baseline", p95=220.0, error_rate=0, rate=150.0)
    write_k6(root, "v2.0.0", p95=220.0, error_rate=0.0001, rate=150.0)
    result = check_performance(GATES.performance, "v2.0.0", root)
    assert result.verdict == "failed" and "error rate 0.01% (above a zero baseline" in result.summary


# --- no report, no verdict: fail safe ---------------------------------------------------


def test_missing_reports_give_error_verdicts_that_stop_the_release():
    results = required_gates(PRODUCTION, "v9.9.9")
    assert [r.verdict for r in results] == ["error"] * 4
    assert blocking(results) == results
    assert results[0].summary == (
        f"unit tests: no verdict, no report at {REPO / 'reports/v9.9.9/coverage.xml'}: "
        "the CI job must publish it there, or the report path in the policy is wrong"
    )


def test_a_missing_baseline_is_an_error_naming_it(tmp_path):
    root = copy_release(tmp_path)
    (root / "reports" / "baseline" / "k6-summary.json").unlink()
    result = check_performance(GATES.performance, "v1.2.0", root)
    assert result.verdict == "error" and "reports/baseline/k6-summary.json" in result.summary


@pytest.mark.parametrize(
    ("file", "check", "expected"),
    [
        ("coverage.xml", lambda root: check_unit_tests(GATES.unit_tests, "v1.2.0", root), "is not well-formed XML"),
        ("integration-tests.xml", lambda root: check_integration_tests(GATES.integration_tests, "v1.2.0", root), "is not well-formed XML"),
        ("k6-summary.json", lambda root: check_performance(GATES.performance, "v1.2.0", root), "is not valid JSON"),
        (
            "trivy-trip-service.json",
            lambda root: check_security_scan(GATES.security_scan, "v1.2.0", images("v1.2.0"), root, use_trivy=False),
            "is not valid JSON",
        ),
    ],
)
def test_a_malformed_report_is_an_error_naming_the_file(tmp_path, file, check, expected):
    root = copy_release(tmp_path)
    path = root / "reports" / "v1.2.0" / file
    path.write_text(path.read_text()[:120])
    result = check(root)
    assert result.verdict == "error" and result.required
    assert f"{path} {expected}" in result.summary
    assert blocking([result]) == [result]


def test_an_integration_report_without_executed_tests_has_no_verdict(tmp_path):
    root = copy_release(tmp_path)
    (root / "reports" / "v1.2.0" / "integration-tests.xml").write_text('<testsuites tests="0"/>')
    result = check_integration_tests(GATES.integration_tests, "v1.2.0", root)
    assert result.verdict == "error" and "records no executed test case" in result.summary


def test_one_unreadable_trivy_report_among_passing_ones_is_still_an_error(tmp_path):
    root = copy_release(tmp_path)
    (root / "reports" / "v1.2.0" / "trivy-ai-service.json").unlink()
    result = check_security_scan(GATES.security_scan, "v1.2.0", images("v1.2.0"), root, use_trivy=False)
    assert result.verdict == "error" and "ai-service: no report at" in result.summary
    assert [row["verdict"] for row in result.rows] == ["passed", "passed", "error", "passed"]


def test_no_image_to_scan_is_an_error():
    assert check_security_scan(GATES.security_scan, "v1.2.0", {}, REPO).verdict == "error"


@respx.mock
def test_a_report_url_template_is_fetched():
    remote = GATES.unit_tests.model_copy(update={"report": "https://ci.tripgen.test/{tag}/coverage.xml"})
    respx.get("https://ci.tripgen.test/v1.2.0/coverage.xml").respond(
        200, content=(REPO / "reports" / "v1.2.0" / "coverage.xml").read_bytes()
    )
    with httpx.Client() as client:
        assert check_unit_tests(remote, "v1.2.0", "/unused", http_client=client).verdict == "passed"


# --- Trivy installed: the gate runs it ---------------------------------------------------


def put_fake_trivy_on_path(tmp_path, monkeypatch, critical_in: str) -> None:
    """A `trivy` that logs its arguments and reports a CRITICAL only for images containing `critical_in`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "trivy"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(tmp_path / 'calls.jsonl')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"severity = 'CRITICAL' if {critical_in!r} in sys.argv[-1] else 'HIGH'\n"
        "vulns = [{'VulnerabilityID': 'CVE-2099-0001', 'PkgName': 'libz', 'InstalledVersion': '1', 'Severity': severity}]\n"
        "print(json.dumps({'SchemaVersion': 2, 'ArtifactName': sys.argv[-1], 'Results': [{'Target': 'x', 'Vulnerabilities': vulns}]}))\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_an_installed_trivy_scans_each_image_instead_of_reading_reports(tmp_path, monkeypatch):
    put_fake_trivy_on_path(tmp_path, monkeypatch, critical_in="location-service")
    refs = {name: f"{PRODUCTION.registry}/{name}@sha256:{'ab' * 32}" for name in SERVICES}
    result = check_security_scan(GATES.security_scan, "v1.2.0", refs, tmp_path / "no-reports")
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls == [["image", "--format", "json", "--quiet", "--severity", "HIGH,CRITICAL", ref] for ref in refs.values()]
    assert result.verdict == "failed"
    assert result.summary == "security scan: location-service has 1 CRITICAL (CVE-2099-0001), more than the allowed 0"


def test_use_trivy_false_reads_the_reports_even_when_trivy_is_installed(tmp_path, monkeypatch):
    put_fake_trivy_on_path(tmp_path, monkeypatch, critical_in="user-service")
    result = check_security_scan(GATES.security_scan, "v1.2.0", images("v1.2.0"), REPO, use_trivy=False)
    assert result.verdict == "passed" and not (tmp_path / "calls.jsonl").exists()


# --- code quality (SonarQube, recommended) ---------------------------------------------

TOKEN = "squ_f00dfeed-do-not-print"
SONAR = GATES.code_quality.sonarqube_url


def sonar_answers(status: dict, rating: str = "1.0") -> None:
    respx.get(f"{SONAR}/api/qualitygates/project_status", params={"projectKey": "tripgen"}).respond(
        200, json={"projectStatus": status}
    )
    respx.get(f"{SONAR}/api/measures/component", params={"component": "tripgen", "metricKeys": "sqale_rating"}).respond(
        200, json={"component": {"key": "tripgen", "measures": [{"metric": "sqale_rating", "value": rating}]}}
    )


@pytest.fixture(autouse=True)
def sonar_token(monkeypatch):
    monkeypatch.setenv("SONAR_TOKEN", TOKEN)


def assert_token_hidden(result: GateResult) -> None:
    assert TOKEN not in result.model_dump_json()


@respx.mock
def test_sonarqube_ok_with_grade_a_passes():
    sonar_answers({"status": "OK", "conditions": []})
    result = check_code_quality(GATES.code_quality, "v1.2.0")
    assert (result.verdict, result.required, result.on_failure) == ("passed", False, "warn")
    assert result.summary == (
        "code quality: quality gate OK, maintainability grade A, meeting "
        "SonarQube quality gate OK and maintainability grade A or better"
    )
    assert respx.calls.last.request.headers["Authorization"].startswith("Basic ")
    assert_token_hidden(result)


@respx.mock
def test_a_red_sonarqube_gate_only_warns():
    sonar_answers(
        {
            "status": "ERROR",
            "conditions": [
                {"status": "ERROR", "metricKey": "new_coverage", "comparator": "LT", "errorThreshold": "80", "actualValue": "64.3"},
                {"status": "OK", "metricKey": "new_bugs", "comparator": "GT", "errorThreshold": "0", "actualValue": "0"},
            ],
        },
        rating="2.0",
    )
    result = check_code_quality(GATES.code_quality, "v1.2.0")
    assert result.verdict == "warning" and blocking([result]) == []
    assert "quality gate ERROR on new_coverage 64.3 (LT 80)" in result.summary
    assert "maintainability grade B is below the required A" in result.summary
    assert result.summary.endswith("a warning only, v1.2.0 goes on")
    assert [row["check"] for row in result.rows] == ["new_coverage", "new_bugs", "maintainability grade"]
    assert_token_hidden(result)


@respx.mock
@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.Response(401), "(HTTP 401): set SONAR_TOKEN"),
        (httpx.Response(500), "with HTTP 500"),
        (httpx.ReadTimeout("slow"), "did not answer /api/qualitygates/project_status in time"),
        (httpx.ConnectError("refused"), "is unreachable (ConnectError)"),
    ],
)
def test_sonarqube_unreachable_or_refusing_is_an_error_not_a_pass(failure, expected):
    respx.get(f"{SONAR}/api/qualitygates/project_status").mock(side_effect=[failure])
    result = check_code_quality(GATES.code_quality, "v1.2.0")
    assert result.verdict == "error" and expected in result.summary
    assert blocking([result]) == []
    assert_token_hidden(result)


@respx.mock
def test_a_project_without_a_quality_gate_has_no_verdict():
    sonar_answers({"status": "NONE"})
    result = check_code_quality(GATES.code_quality, "v1.2.0")
    assert result.verdict == "error" and "(NONE)" in result.summary


@respx.mock
def test_a_required_code_quality_gate_blocks():
    sonar_answers({"status": "ERROR", "conditions": []})
    required = GATES.code_quality.model_copy(update={"required": True, "on_failure": "stop"})
    result = check_code_quality(required, "v1.2.0")
    assert result.verdict == "failed" and blocking([result]) == [result]
