"""The rollback flow (R-RB) on the sandbox: back to a version that ran, one approval, nothing through a shell."""

from __future__ import annotations

import pytest

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.release.conftest import audit_records, digest_image, live, push_image, release_run
from tests.release.driver import serve_in_thread, start_in_background

SLACK_SECRET = "T0TRIPGEN/B0SECRET/xoxSECRETwebhookTOKEN42"

ALL = ["user-service", "location-service", "trip-service", "ai-service"]
TWO_GROUPS = ["user-service", "trip-service"]  # one service of each of the first two deployment groups


def rollback_run(target, reason, initiator="demo-ops", **parameters):
    from flows.rollback import rollback

    return start_in_background(rollback, f"rollback-to-{target}", target_version=target, reason=reason, initiator=initiator, **parameters)


def hotfix(tag, services):
    state = release_run(tag, services=services, initiator="demo-ops", hotfix=True, security_patch=True).join(240)
    assert state.is_completed(), state.message


@pytest.fixture
def slack(monkeypatch):
    """A local stand-in for a Slack incoming webhook (secret path), recording what is posted."""
    received: list[dict] = []

    async def hook(request: Request) -> PlainTextResponse:
        received.append(await request.json())
        return PlainTextResponse("ok")

    with serve_in_thread(Starlette(routes=[Route(f"/services/{SLACK_SECRET}", hook, methods=["POST"])])) as url:
        monkeypatch.setenv("TRIPGEN_SLACK_WEBHOOK_URL", f"{url}/services/{SLACK_SECRET}")
        yield received


def test_rollback_switches_every_service_back_after_two_releases(prefect_api, sandbox, cluster, tmp_path, slack):
    hotfix("v1.2.0", TWO_GROUPS)
    hotfix("v1.3.0", TWO_GROUPS)
    assert {live(cluster, s)[1] for s in TWO_GROUPS} == {digest_image(s, "v1.3.0") for s in TWO_GROUPS}
    run = rollback_run("v1.2.0", "checkout errors after v1.3.0", initiator="demo-ops", services=TWO_GROUPS)
    first = prefect_api.approve(run, "demo-ops")  # the initiator may not approve: asked again
    prefect_api.approve(run, "demo-lead", comment="go", after_key=first)
    state = run.join(120)
    assert state.is_completed(), state.message
    for service in TWO_GROUPS:
        assert live(cluster, service)[1] == digest_image(service, "v1.2.0")
    executed = [r for r in audit_records(tmp_path) if r["event"] == "rollback_executed"]
    assert sorted(r["details"]["service"] for r in executed) == sorted(TWO_GROUPS)
    assert all(r["details"]["reason"] == "checkout errors after v1.3.0" and r["actor"] == "demo-ops" for r in executed)
    refused = [r for r in audit_records(tmp_path) if r["event"] == "approval_refused"]
    assert refused and "started this release" in refused[0]["details"]["reason"]
    posted = [m for m in slack if "rolled back to v1.2.0" in m["text"]]
    assert len(posted) == 1
    fields = str(posted[0]["blocks"])
    assert "checkout errors after v1.3.0" in fields and "demo-ops" in fields and "v1.2.0" in fields
    flow_run_id = prefect_api.flow_run(run)["id"]
    logs = prefect_api.http.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}).json()
    assert logs and not [line for line in logs if "SECRET" in line["message"] or "xox" in line["message"]]


@pytest.mark.parametrize(
    "target, reason, message",
    [
        ("v1.2.0; rm -rf /", "bad", "tag 'v1.2.0; rm -rf /' is not v<major>.<minor>.<patch>"),
        ("$(reboot)", "bad", "is not v<major>.<minor>.<patch>"),
        ("v1.2.0", "   ", "a rollback needs a reason"),
        ("v9.9.9", "never built", "ai-service:v9.9.9 is not in the registry"),
        ("v1.4.0", "built, never released", "v1.4.0 never ran in production"),
    ],
)
def test_bad_requests_are_refused_before_anything_changes(prefect_api, sandbox, cluster, tmp_path, target, reason, message):
    push_image(sandbox, "v1.4.0", ALL)
    before = {s: live(cluster, s) for s in ALL}
    state = rollback_run(target, reason).join(60)
    assert state.is_failed() and message in state.message
    assert {s: live(cluster, s) for s in ALL} == before
    assert not [r for r in audit_records(tmp_path) if r["event"] in ("rollback_requested", "rollback_executed")]


def test_staging_rolls_back_to_the_revision_that_ran_the_target(prefect_api, sandbox, cluster, tmp_path):
    state = release_run("v1.2.0", services=["user-service"], initiator="demo-ops", hotfix=True, security_patch=True).join(120)
    assert state.is_completed(), state.message
    assert cluster[0].image_of("staging", "user-service") == digest_image("user-service", "v1.2.0")
    run = rollback_run("v1.0.0", "staging regression", initiator="demo-ops", services=["user-service"], environment="staging")
    prefect_api.approve(run, "demo-lead")
    assert run.join(90).is_completed()
    assert cluster[0].image_of("staging", "user-service") == "acrtrpgenprod.azurecr.io/user-service:v1.0.0"
    assert live(cluster, "user-service")[1] == digest_image("user-service", "v1.2.0")  # production untouched
