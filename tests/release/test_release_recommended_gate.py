"""A failing recommended gate (SonarQube, R-GATE) warns and the release goes on."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.release.driver import serve_in_thread
from tests.release.conftest import audit_events, digest_image, live, release_run

STATUS = {"projectStatus": {"status": "ERROR", "conditions": [
    {"status": "ERROR", "metricKey": "new_coverage", "comparator": "LT", "errorThreshold": "80", "actualValue": "61.0"}]}}
MEASURES = {"component": {"key": "tripgen", "measures": [{"metric": "sqale_rating", "value": "3.0"}]}}


@pytest.fixture
def sonarqube():
    """A local stand-in for SonarQube's web API: quality gate ERROR, maintainability grade C."""
    app = Starlette(routes=[
        Route("/api/qualitygates/project_status", lambda request: JSONResponse(STATUS)),
        Route("/api/measures/component", lambda request: JSONResponse(MEASURES)),
    ])
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
def policy_changes(sonarqube):
    code_quality = {"required": False, "on_failure": "warn", "min_grade": "A", "sonarqube_url": sonarqube, "project_key": "tripgen"}
    return {"quality_gates": {"code_quality": code_quality}}


def test_a_failing_recommended_gate_only_warns(prefect_api, sandbox, cluster, tmp_path):
    run = release_run("v1.2.0", services=["user-service"], initiator="demo-dev")
    prefect_api.approve(run, "demo-security", comment="ship it")
    assert run.join(90).is_completed()
    gate = [a for a in prefect_api.artifacts(prefect_api.flow_run(run)["id"]) if a["key"] == "gate-code-quality-v1-2-0"]
    assert gate and "code quality" in gate[0]["description"] and "ERROR" in gate[0]["description"]
    assert "gate_failed" not in audit_events(tmp_path)
    assert live(cluster, "user-service") == ("green", digest_image("user-service", "v1.2.0"))
