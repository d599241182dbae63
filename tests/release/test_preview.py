"""R-BG-2 on a cluster that routes by Services alone: each release points `<service>-preview` (the validation
host's backend) at the idle color it deploys, so the pre-switch validation reaches the new version."""

from __future__ import annotations

import pytest

from tests.release.conftest import digest_image, live, release_run, set_fault
from tests.release.test_canary import approve_twice

SERVICE = "user-service"


def preview_color(cluster) -> str:
    return cluster[1].selected_color("production", f"{SERVICE}-preview")


@pytest.mark.parametrize("policy_changes", [{}])
def test_the_second_release_validates_its_own_version_through_the_moved_preview(prefect_api, sandbox, cluster, policy_changes):
    first = release_run("v1.2.0", services=[SERVICE], initiator="demo-ops", hotfix=True, security_patch=True).join(240)
    assert first.is_completed(), first.message
    assert live(cluster, SERVICE) == ("green", digest_image(SERVICE, "v1.2.0")) and preview_color(cluster) == "green"
    run = release_run("v1.3.0", services=[SERVICE], initiator="demo-dev")
    prefect_api.wait_for_pause(run)  # staging passed; now v1.3.0 fails every request, wherever it runs
    set_fault(sandbox, versions={f"{SERVICE}:v1.3.0": {"error_rate_percent": 100}})
    approve_twice(prefect_api, run)
    state = run.join(120)
    assert state.is_failed() and "validat" in state.message, state.message
    assert live(cluster, SERVICE) == ("green", digest_image(SERVICE, "v1.2.0"))  # the switch never happened
    assert preview_color(cluster) == "blue"  # where v1.3.0 was validated (the live green would have passed)
