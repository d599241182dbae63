"""The rollback flow (R-RB) on the sandbox: back to a version that ran, one approval, nothing through a shell."""

from __future__ import annotations

import pytest

from tests.release.conftest import audit_records, digest_image, live, push_image, release_run
from tests.release.driver import start_in_background

ALL = ["user-service", "location-service", "trip-service", "ai-service"]


def rollback_run(target, reason, initiator="demo-ops", **parameters):
    from flows.rollback import rollback

    return start_in_background(rollback, f"rollback-to-{target}", target_version=target, reason=reason, initiator=initiator, **parameters)


def hotfix(tag):
    state = release_run(tag, initiator="demo-ops", hotfix=True, security_patch=True).join(240)
    assert state.is_completed(), state.message


def test_rollback_switches_every_service_back_after_two_releases(prefect_api, sandbox, cluster, tmp_path):
    hotfix("v1.2.0")
    hotfix("v1.3.0")
    assert {live(cluster, s)[1] for s in ALL} == {digest_image(s, "v1.3.0") for s in ALL}
    run = rollback_run("v1.2.0", "checkout errors after v1.3.0", initiator="demo-ops")
    first = prefect_api.approve(run, "demo-ops")  # the initiator may not approve: asked again
    prefect_api.approve(run, "demo-lead", comment="go", after_key=first)
    state = run.join(120)
    assert state.is_completed(), state.message
    for service in ALL:
        assert live(cluster, service)[1] == digest_image(service, "v1.2.0")
    executed = [r for r in audit_records(tmp_path) if r["event"] == "rollback_executed"]
    assert sorted(r["details"]["service"] for r in executed) == sorted(ALL)
    assert all(r["details"]["reason"] == "checkout errors after v1.3.0" and r["actor"] == "demo-ops" for r in executed)
    refused = [r for r in audit_records(tmp_path) if r["event"] == "approval_refused"]
    assert refused and "started this release" in refused[0]["details"]["reason"]


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
